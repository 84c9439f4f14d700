import { fileURLToPath } from "node:url";
import { defineConfig, type Plugin } from "vite";

// streamlit-component-lib's Streamlit object imports its ArrowTable (and so Apache Arrow) to
// handle dataframe arguments, which this component never gets: the import is pointed at a
// stub, which keeps ~300 kB out of the committed bundle.
function withoutArrow(): Plugin {
  const stub = fileURLToPath(new URL("./src/arrow-stub.ts", import.meta.url));
  return {
    name: "streamlit-lib-without-arrow",
    enforce: "pre",
    resolveId(source, importer) {
      if (source === "./ArrowTable" && importer?.includes("streamlit-component-lib")) return stub;
      return null;
    },
  };
}

// The build is committed (ui/components/viewer/build) and served by Streamlit from disk:
// relative paths, stable file names (a rebuild replaces files instead of adding hashed ones),
// no source maps (they would triple the committed size).
export default defineConfig({
  base: "./",
  plugins: [withoutArrow()],
  build: {
    outDir: "../build",
    emptyOutDir: true,
    target: "es2020",
    sourcemap: false,
    rollupOptions: {
      output: {
        entryFileNames: "js/viewer.js",
        chunkFileNames: "js/[name].js",
        assetFileNames: "css/[name][extname]",
      },
    },
  },
});
