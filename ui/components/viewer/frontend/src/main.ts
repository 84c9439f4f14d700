// Streamlit wiring: render messages in, the drawing and the view out, and a hook
// (window.__viewer) through which the browser tests and the bench read the panes' views.

// The protocol alone, not the package index (which pulls in React for its React wrapper).
import { Streamlit, type RenderData } from "streamlit-component-lib/dist/streamlit";
import "./style.css";
import { LinkedViewer, type Args } from "./viewer";

const root = document.getElementById("root") as HTMLElement;
const viewer = new LinkedViewer(
  root,
  (value) => Streamlit.setComponentValue(value),
  (height) => Streamlit.setFrameHeight(height),
);

Streamlit.events.addEventListener(Streamlit.RENDER_EVENT, (event: Event) => {
  const data = (event as CustomEvent<RenderData>).detail;
  viewer.render(data.args as Args);
});
Streamlit.setComponentReady();

declare global {
  interface Window {
    __viewer: unknown;
  }
}

window.__viewer = {
  ready: () => viewer.ready(),
  settled: () => viewer.settled(),
  views: () => viewer.views(),
  imageToClient: (x: number, y: number, row?: string, column?: string) =>
    viewer.imageToClient(x, y, row, column),
  fit: (x: number, y: number, width: number, height: number) => viewer.fit(x, y, width, height),
  drawing: () => viewer.drawing.polygons,
  value: () => viewer.lastValue,
  stats: () => ({ ...viewer.stats }),
};
