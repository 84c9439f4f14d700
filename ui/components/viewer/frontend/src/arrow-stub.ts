// Stands in for streamlit-component-lib's ArrowTable (see vite.config.ts): this component
// never receives dataframes nor sends one, so Apache Arrow (~300 kB) stays out of the bundle.
// The library only tests `value instanceof ArrowTable`, which is then always false.
export class ArrowTable {
  constructor() {
    throw new Error("dataframes are not supported by this component");
  }
}
