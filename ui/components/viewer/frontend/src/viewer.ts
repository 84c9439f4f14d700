// The grid of linked OpenSeadragon panes: the image (with the drawing tools) on top, then one
// row per map type with one pane per model, colour bars, scale bars and outlines.

import OpenSeadragon from "openseadragon";
import { Drawing, REPEAT_PX, type Tool } from "./drawing";
import { formatLength, formatNumber, niceBelow, type Poly, type XY } from "./geometry";
import { Pyramid, pyramidSource, TILE_SIZE } from "./pyramid";

export interface LegendArg {
  label: string;
  low: number | null;
  high: number | null;
  cmap: string;
  stops: string[];
}

export interface CellArg {
  row: string;
  column: string;
  arg: string;
  key: string;
  opacity: number;
  legend: LegendArg;
}

export interface OutlineArg {
  name: string;
  colour: string;
  visible: boolean;
  polygons: Poly[];
}

export interface Args {
  image: Uint8Array;
  image_key: string;
  image_type: string;
  image_width: number;
  image_height: number;
  mpp: number | null;
  columns: string[];
  rows: string[];
  cells: CellArg[];
  outlines: OutlineArg[];
  drawing: Poly[] | null;
  draw: boolean;
  height: number;
  /** The name the reader's view is kept under in the tab (null: not kept). */
  view_key: string | null;
  [overlay: string]: unknown;
}

// Only the drawing goes back to the app: a zoom or pan is the browser's business, and
// reporting it would rerun the whole page at each one.
export interface Value {
  polygons: Poly[];
}

export interface PaneView {
  kind: "image" | "map";
  row: string;
  column: string;
  /** OpenSeadragon's viewport zoom (1: the image's width fills the pane). */
  zoom: number;
  /** Screen (CSS) pixels per image pixel. */
  scale: number;
  center: XY;
  /** x, y, width, height of the visible region, image px. */
  bounds: [number, number, number, number];
  loaded: boolean;
}

interface Pane {
  kind: "image" | "map";
  row: string;
  column: string;
  element: HTMLElement;
  viewer: OpenSeadragon.Viewer;
  items: number;
  opened: boolean;
  animating: boolean;
  /** Screen px per image px, and the screen position of the image's origin. */
  s: number;
  tx: number;
  ty: number;
  world: SVGGElement;
  outlines: SVGGElement;
  drawing: SVGGElement;
  draft: SVGGElement;
  scaleBar: HTMLElement | null;
  /** The reader moved this pane (wheel, drag, keys) and its animation has not finished. */
  moved: boolean;
}

const SVG = "http://www.w3.org/2000/svg";
const DRAW_COLOUR = "#00e5ff";
const LEGEND_HEIGHT = 40;
const MIN_IMAGE_HEIGHT = 200;
const MIN_MAP_HEIGHT = 120;
const IMAGE_SHARE = 0.42;
// How long a key waits after closing a polygon before it reaches the page (Save, a diagnosis,
// another case): the polygon's message is handled in a few milliseconds.
const SAVE_AFTER_MS = 100;
// The keys of the page's shortcuts (a diagnosis per digit, Enter for Ctrl+Enter, J/K/U); the
// viewer's own keys (arrows, w/a/s/d, +/-) pan and zoom while a polygon is drawn.
const PAGE_KEYS = /^([0-9]|Enter|[jkuJKU])$/;
// Zoom stops at 4 screen pixels per image pixel, or 4 times fit-to-pane where that is more:
// a 50 px patch fits its pane at about 10 screen pixels per pixel, and must still zoom in.
const MAX_PIXEL_RATIO = 4;
const MAX_OVER_FIT = 4;

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  text?: string,
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function svg<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
): SVGElementTagNameMap[K] {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

function points(polygon: Poly): string {
  return polygon.map(([x, y]) => `${x},${y}`).join(" ");
}

function now(): number {
  return performance.timeOrigin + performance.now();
}

/** What makes a rebuild necessary: everything but the outlines and the drawing. */
function layoutKey(args: Args): string {
  return JSON.stringify([
    args.image_key,
    args.columns,
    args.rows,
    args.cells,
    args.draw,
    args.height,
    args.mpp,
    args.outlines.map((o) => o.name),
  ]);
}

export class LinkedViewer {
  private readonly root: HTMLElement;
  private readonly report: (value: Value) => void;
  private readonly resize: (height: number) => void;
  private args: Args | null = null;
  private key = "";
  private panes: Pane[] = [];
  private pyramids = new Map<string, Pyramid>();
  private leader: Pane | null = null;
  /** The leader's own bounds when it last moved the others (viewport coordinates). */
  private leaderBounds: OpenSeadragon.Rect | null = null;
  /** The linked region every pane shows fitted (viewport coordinates; null: each pane's home),
   * kept to restore after a rebuild. */
  private bounds: OpenSeadragon.Rect | null = null;
  private drawingArg: string | undefined = undefined;
  private resizeTimer = 0;
  private visible = new Map<string, boolean>();
  private statusLine: HTMLElement | null = null;
  private toolButtons = new Map<string, HTMLButtonElement>();
  readonly drawing: Drawing;
  // Timings for the tests and the bench (epoch ms).
  readonly stats = {
    builds: 0,
    renders: 0,
    buildAt: 0,
    firstLoadedAt: 0,
    settledAt: 0,
    lastDrawAt: 0,
    reports: 0,
  };
  lastValue: Value | null = null;

  constructor(root: HTMLElement, report: (value: Value) => void, resize: (h: number) => void) {
    this.root = root;
    this.report = report;
    this.resize = resize;
    this.drawing = new Drawing({
      toImage: (position) => this.toImage(this.imagePane(), position),
      scale: () => this.imagePane()?.s ?? 1,
      changed: () => this.send(),
      redraw: () => this.renderDrawing(),
      status: (text) => {
        if (this.statusLine) this.statusLine.textContent = text;
      },
    });
    window.addEventListener("resize", () => {
      this.layout();
      // Each pane keeps its own view through a resize: line them up again afterwards.
      window.clearTimeout(this.resizeTimer);
      this.resizeTimer = window.setTimeout(() => {
        this.fitAll(null);
        this.leader = null; // the next pane acted on leads from where it is now
      }, 150);
    });
    // A polygon the reader has not closed is part of their read: Enter closes it; any key the
    // page uses (a diagnosis, Ctrl+Enter to save, J/K/U) closes it first; and so does leaving
    // the viewer (a click on Save, a diagnosis or the note blurs this frame first). The
    // polygon reaches the app by a posted message, a key by a direct dispatch: the key waits,
    // so that the rerun it causes has the polygon.
    let heldUntil = 0;
    const pass = (event: KeyboardEvent): void => {
      const wait = heldUntil - performance.now();
      if (wait > 0) window.setTimeout(() => forwardKey(event), wait);
      else forwardKey(event);
    };
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        this.drawing.cancel();
        return;
      }
      if (PAGE_KEYS.test(event.key) && this.drawing.tool === "polygon" && this.drawing.closePolygon()) {
        heldUntil = performance.now() + SAVE_AFTER_MS;
      }
      const plainEnter = event.key === "Enter" && !event.ctrlKey && !event.metaKey;
      if (!(plainEnter && this.drawing.tool === "polygon")) pass(event);
    });
    document.addEventListener("keyup", pass);
    window.addEventListener("blur", () => {
      if (this.drawing.tool === "polygon") this.drawing.closePolygon();
    });
  }

  /** A render message from Streamlit: rebuilds only when the image, the maps or the layout
   * changed; outlines and the drawing are updated in place. */
  render(args: Args): void {
    this.stats.renders++;
    const key = layoutKey(args);
    if (key !== this.key) {
      this.build(args);
      this.key = key;
    }
    this.args = args;
    this.renderOutlines();
    const incoming = JSON.stringify(args.drawing ?? null);
    if (incoming !== this.drawingArg) {
      const first = this.drawingArg === undefined;
      this.drawingArg = incoming;
      if (args.drawing && incoming !== JSON.stringify(this.drawing.polygons)) {
        this.drawing.replace(args.drawing);
        // The app's earlier value (what the reader drew before) is stale now.
        if (!first) this.send();
      }
    }
    this.renderDrawing();
  }

  // ---- building ---------------------------------------------------------------------------

  private build(args: Args): void {
    this.stats.builds++;
    this.stats.buildAt = now();
    this.stats.firstLoadedAt = 0;
    // The same image: the view on screen. Another: where the reader left this view_key in
    // the tab, if anywhere: the aided read's viewer is a new one and must not reset the zoom.
    const keepBounds = this.args?.image_key === args.image_key ? this.bounds : recall(args.view_key);
    this.destroyPanes();
    this.args = args;
    this.bounds = keepBounds;
    this.root.replaceChildren();
    this.toolButtons.clear();

    const wanted = new Set([args.image_key, ...args.cells.map((c) => c.key)]);
    for (const [key, pyramid] of this.pyramids) {
      if (!wanted.has(key)) {
        pyramid.close();
        this.pyramids.delete(key);
      }
    }
    const pyramid = (key: string, data: unknown, type: string): Pyramid => {
      let found = this.pyramids.get(key);
      if (!found) {
        found = new Pyramid(key, data as Uint8Array, type);
        this.pyramids.set(key, found);
      }
      return found;
    };
    const base = pyramid(args.image_key, args.image, args.image_type);
    for (const o of args.outlines) if (!this.visible.has(o.name)) this.visible.set(o.name, o.visible);

    const frame = el("div", { class: "viewer", "data-testid": "viewer" });
    frame.append(this.toolbar(args));
    const grid = el("div", { class: "grid", "data-testid": "viewer-grid" });
    grid.style.gridTemplateColumns = `max-content repeat(${Math.max(1, args.columns.length)}, minmax(0, 1fr))`;
    frame.append(grid);
    this.root.append(frame);

    const span = `2 / span ${Math.max(1, args.columns.length)}`;
    grid.append(el("div", { class: "rowhead", "data-testid": "row-header", "data-row": "" }, "image"));
    const imageCell = el("div", { class: "cell image-cell" });
    imageCell.style.gridColumn = span;
    grid.append(imageCell);
    // Panes are sized before their viewers exist: OpenSeadragon fits the image to the size its
    // container has when it opens.
    const viewers: (() => void)[] = [];
    viewers.push(this.addPane(imageCell, "image", "", "", base, null, args));

    if (args.rows.length && args.columns.length) {
      grid.append(el("div", { class: "corner" }));
      for (const column of args.columns) {
        grid.append(
          el("div", { class: "colhead", "data-testid": "column-header", "data-column": column }, column),
        );
      }
    }
    const cells = new Map(args.cells.map((c) => [`${c.row}\u0000${c.column}`, c]));
    for (const row of args.rows) {
      grid.append(el("div", { class: "rowhead", "data-testid": "row-header", "data-row": row }, row));
      const rowCells = args.columns.map((column) => cells.get(`${row}\u0000${column}`));
      const legends = rowCells.filter((c): c is CellArg => c !== undefined).map((c) => c.legend);
      // One colour bar under the row when its maps share a scale; else one under each map.
      const shared = legends.length > 0 && legends.every((l) => JSON.stringify(l) === JSON.stringify(legends[0]));
      args.columns.forEach((column, i) => {
        const cell = el("div", { class: "cell" });
        grid.append(cell);
        const found = rowCells[i];
        if (!found) {
          cell.append(
            el("div", { class: "pane empty", "data-testid": "viewer-empty", "data-row": row, "data-column": column }, "no map"),
          );
        } else {
          const overlay = pyramid(found.key, args[found.arg], "image/png");
          viewers.push(this.addPane(cell, "map", row, column, base, { pyramid: overlay, opacity: found.opacity }, args));
        }
        if (found && !shared) cell.append(colourBar(found.legend, row, column));
        else if (!shared) cell.append(el("div", { class: "legend-spacer" }));
      });
      if (shared) {
        grid.append(el("div", { class: "corner" }));
        const bar = colourBar(legends[0], row, "");
        bar.style.gridColumn = span;
        grid.append(bar);
      }
    }
    this.layout();
    for (const create of viewers) create();
  }

  private toolbar(args: Args): HTMLElement {
    const bar = el("div", { class: "toolbar", role: "toolbar", "aria-label": "Viewer tools" });
    if (args.draw) {
      const tools = el("div", { class: "group", "data-testid": "drawing-tools" });
      const tool = (name: string, value: Tool, title: string): void => {
        const button = el("button", { type: "button", "aria-label": name, "data-testid": `tool-${name.toLowerCase()}`, "aria-pressed": "false", title }, name);
        button.addEventListener("click", () => {
          this.drawing.setTool(this.drawing.tool === value ? null : value);
          this.updateButtons();
        });
        this.toolButtons.set(name, button);
        tools.append(button);
      };
      tool("Pan", null, "Drag to pan, scroll to zoom");
      tool("Polygon", "polygon", "Click the corners; double-click or click the first corner to close");
      tool("Rectangle", "rectangle", "Press, drag to the opposite corner, release");
      tool("Freehand", "freehand", "Press and draw around the region; releasing closes it");
      const action = (name: string, title: string, run: () => void): void => {
        const button = el("button", { type: "button", "aria-label": name, "data-testid": `tool-${name.toLowerCase()}`, title }, name);
        button.addEventListener("click", () => {
          run();
          this.updateButtons();
        });
        this.toolButtons.set(name, button);
        tools.append(button);
      };
      action("Undo", "Undo the last corner or the last change", () => this.drawing.undo());
      action("Clear", "Remove every drawn region", () => this.drawing.clear());
      bar.append(tools);
    }
    if (args.outlines.length) {
      const group = el("div", { class: "group outlines", "data-testid": "outline-toggles" });
      for (const outline of args.outlines) {
        const label = el("label", { class: "toggle" });
        const box = el("input", { type: "checkbox", "data-testid": "outline-toggle", "data-outline": outline.name, "aria-label": `Show outline ${outline.name}` });
        box.checked = this.visible.get(outline.name) ?? outline.visible;
        box.addEventListener("change", () => {
          this.visible.set(outline.name, box.checked);
          this.renderOutlines();
        });
        const swatch = el("span", { class: "swatch" });
        swatch.style.borderColor = outline.colour;
        label.append(box, swatch, document.createTextNode(outline.name));
        group.append(label);
      }
      bar.append(group);
    }
    this.statusLine = el("div", { class: "status", "data-testid": "viewer-status", "aria-live": "polite" }, "Drag to pan, scroll to zoom; every pane follows.");
    bar.append(this.statusLine);
    return bar;
  }

  private updateButtons(): void {
    const active: Record<string, Tool> = { Pan: null, Polygon: "polygon", Rectangle: "rectangle", Freehand: "freehand" };
    for (const [name, button] of this.toolButtons) {
      if (name in active) button.setAttribute("aria-pressed", String(this.drawing.tool === active[name]));
    }
    const undo = this.toolButtons.get("Undo");
    if (undo) undo.disabled = !this.drawing.canUndo;
    const clear = this.toolButtons.get("Clear");
    if (clear) clear.disabled = this.drawing.polygons.length === 0 && this.drawing.draft === null;
    const pane = this.imagePane();
    if (pane) pane.viewer.canvas.style.cursor = this.drawing.tool ? "crosshair" : "";
  }

  private addPane(
    parent: HTMLElement,
    kind: "image" | "map",
    row: string,
    column: string,
    base: Pyramid,
    overlay: { pyramid: Pyramid; opacity: number } | null,
    args: Args,
  ): () => void {
    const label = kind === "image" ? "image" : `${row} of ${column}`;
    const element = el("div", { class: `pane ${kind}`, "data-testid": "viewer-pane", "data-kind": kind, "data-row": row, "data-column": column, role: "group", "aria-label": label });
    const host = el("div", { class: "osd" });
    element.append(host);
    parent.append(element);
    return () => this.createViewer(element, host, kind, row, column, base, overlay, args);
  }

  private createViewer(
    element: HTMLElement,
    host: HTMLElement,
    kind: "image" | "map",
    row: string,
    column: string,
    base: Pyramid,
    overlay: { pyramid: Pyramid; opacity: number } | null,
    args: Args,
  ): void {
    const W = args.image_width;
    const H = args.image_height;
    // OpenSeadragon's own per-viewer image pyramid, only for the bench's comparison.
    const own = (window as { __LRAN_VIEWER_TILES?: string }).__LRAN_VIEWER_TILES === "osd";
    const source = (pyramid: Pyramid, transparent: boolean): unknown =>
      own ? { type: "image", url: pyramid.url(), buildPyramid: true } : pyramidSource(pyramid, W, H, transparent);
    const sources: object[] = [{ tileSource: source(base, false), x: 0, y: 0, width: 1 }];
    if (overlay) {
      sources.push({ tileSource: source(overlay.pyramid, true), x: 0, y: 0, width: 1, opacity: overlay.opacity });
    }
    const viewer = OpenSeadragon({
      element: host,
      tileSources: sources as never,
      // Canvas 2D: a dozen panes would exhaust the browser's WebGL contexts (about 16).
      drawer: "canvas",
      showNavigationControl: false,
      animationTime: 0.35,
      blendTime: 0,
      springStiffness: 9,
      visibilityRatio: 0.2,
      constrainDuringPan: false,
      minZoomImageRatio: 0.5,
      zoomPerScroll: 1.3,
      maxImageCacheCount: cacheSize(host, sources.length),
      gestureSettingsMouse: { clickToZoom: false, dblClickToZoom: true, flickEnabled: false },
      // Two clicks are a double-click (closing a polygon) only at one spot: two corners clicked
      // quickly a few pixels apart are two corners.
      dblClickDistThreshold: REPEAT_PX,
      gestureSettingsTouch: { pinchRotate: false },
    } as OpenSeadragon.Options);

    const overlaySvg = svg("svg", { class: "overlay", "aria-hidden": "true" });
    const world = svg("g", { class: "world" });
    const outlines = svg("g", { class: "outlines" });
    const drawing = svg("g", { class: "drawing" });
    const draft = svg("g", { class: "draft" });
    world.append(outlines, drawing);
    overlaySvg.append(world, draft);
    viewer.canvas.append(overlaySvg);

    let scaleBar: HTMLElement | null = null;
    if (args.mpp) {
      scaleBar = el("div", { class: "scalebar", "data-testid": "scale-bar" });
      scaleBar.append(el("div", { class: "bar" }), el("span"));
      element.append(scaleBar);
    } else if (kind === "image") {
      element.append(el("div", { class: "scale-unknown", "data-testid": "scale-unknown" }, "scale unknown"));
    }

    const pane: Pane = {
      kind, row, column, element, viewer, items: sources.length, opened: false, animating: false,
      s: 1, tx: 0, ty: 0, world, outlines, drawing, draft, scaleBar, moved: false,
    };
    this.panes.push(pane);

    const lead = (): void => {
      if (this.leader === pane) return;
      this.leader = pane;
      this.leaderBounds = viewer.viewport.getBounds(true);
    };
    // The pane the reader acts on leads; merely passing over a pane does not take the lead,
    // which would stop the leader's animation halfway.
    for (const name of ["pointerdown", "wheel", "keydown", "focusin"]) {
      element.addEventListener(name, lead, { capture: true, passive: true });
    }
    // No rotation or flipping from the keyboard: every pane must keep the same orientation.
    viewer.addHandler("canvas-key", (e) => {
      const code = (e.originalEvent as KeyboardEvent).keyCode;
      if (code === 82 || code === 70) e.preventDefaultAction = true;
    });
    const limitZoom = (): void => {
      const item = viewer.world.getItemAt(0);
      if (!item) return;
      // A field of OpenSeadragon's Viewport that its type declarations leave out.
      (viewer.viewport as OpenSeadragon.Viewport & { maxZoomLevel: number }).maxZoomLevel = Math.max(
        item.imageToViewportZoom(MAX_PIXEL_RATIO),
        MAX_OVER_FIT * viewer.viewport.getHomeZoom(),
      );
    };
    viewer.addHandler("after-resize", limitZoom);
    viewer.addHandler("open", () => {
      pane.opened = true;
      limitZoom();
      if (this.bounds) viewer.viewport.fitBounds(this.bounds, true);
      this.renderOutlines();
      this.renderDrawing();
    });
    viewer.addHandler("viewport-change", () => {
      if (this.leader === pane) this.follow(pane);
    });
    viewer.addHandler("update-viewport", () => {
      this.stats.lastDrawAt = now();
      this.place(pane);
    });
    viewer.addHandler("animation-start", () => {
      pane.animating = true;
    });
    // Where the reader takes the view (not a fit or a resize, which only show more of it) is
    // kept under the page's view_key for a new viewer: the aided read's, or the case's when
    // the reader returns to it.
    for (const name of ["canvas-scroll", "canvas-drag"] as const) {
      viewer.addHandler(name, () => {
        pane.moved = true;
      });
    }
    viewer.addHandler("canvas-key", (e) => {
      // Only OpenSeadragon's own moving keys: a diagnosis key or Ctrl+Enter also passes here.
      if (MOVING_KEYS.has((e.originalEvent as KeyboardEvent).key)) pane.moved = true;
    });
    viewer.addHandler("animation-finish", () => {
      pane.animating = false;
      if (this.leader === pane) this.follow(pane);
      if (pane.moved) {
        pane.moved = false;
        this.remember(viewer.viewport.getBounds(true));
      }
      this.checkSettled();
    });
    viewer.addHandler("fully-loaded-change", () => this.checkSettled());
    if (kind === "image" && args.draw) this.drawing.attach(viewer);
  }

  private destroyPanes(): void {
    for (const pane of this.panes) pane.viewer.destroy();
    this.panes = [];
    this.leader = null;
  }

  // ---- layout -----------------------------------------------------------------------------

  private layout(): void {
    const args = this.args;
    if (!args) return;
    const toolbar = this.root.querySelector<HTMLElement>(".toolbar");
    const heads = this.root.querySelector<HTMLElement>(".colhead");
    const fixed = (toolbar?.offsetHeight ?? 0) + (heads?.offsetHeight ?? 0) + 16;
    const rows = args.rows.length && args.columns.length ? args.rows.length : 0;
    const available = args.height - fixed - rows * (LEGEND_HEIGHT + 8);
    let imageHeight = rows ? Math.max(MIN_IMAGE_HEIGHT, available * IMAGE_SHARE) : Math.max(MIN_IMAGE_HEIGHT, available);
    let mapHeight = rows ? Math.max(MIN_MAP_HEIGHT, (available - imageHeight) / rows) : 0;
    imageHeight = Math.floor(imageHeight);
    mapHeight = Math.floor(mapHeight);
    for (const pane of this.root.querySelectorAll<HTMLElement>(".pane")) {
      pane.style.height = `${pane.classList.contains("image") ? imageHeight : mapHeight}px`;
    }
    const frame = this.root.querySelector<HTMLElement>(".viewer");
    this.resize(Math.max(args.height, Math.ceil(frame?.scrollHeight ?? 0)));
  }

  // ---- linking ----------------------------------------------------------------------------

  /** Moves the linked region as ``source`` (the leader) has just moved (the same zoom factor
   * about the same point), and fits every other pane to it, so panes of another shape show at
   * least that region. The region moves with the leader's change, not to the leader's bounds:
   * a pane of another shape shows more than the region, and taking that as the region would
   * widen it at each change of leader (zooming in on a map zoomed the image pane out). */
  private follow(source: Pane): void {
    const now = source.viewer.viewport.getBounds(true);
    const before = this.leaderBounds;
    this.leaderBounds = now;
    if (!before || before.width <= 0) return;
    const k = now.width / before.width;
    const base = this.bounds ?? this.imageIn(before);
    this.bounds = new OpenSeadragon.Rect(
      now.x + (base.x - before.x) * k,
      now.y + (base.y - before.y) * k,
      base.width * k,
      base.height * k,
    );
    this.fitAll(source);
  }

  /** Keeps ``b`` as the view under ``view_key`` in the tab's session storage (see recall). */
  private remember(b: OpenSeadragon.Rect): void {
    const name = this.args?.view_key;
    if (!name) return;
    try {
      window.sessionStorage.setItem(VIEW_KEY + name, JSON.stringify([b.x, b.y, b.width, b.height]));
    } catch {
      // No storage (a browser that refuses it to frames): the view is kept while mounted only.
    }
  }

  /** Fits every opened pane but ``except`` to the linked region. */
  private fitAll(except: Pane | null): void {
    if (!this.bounds) return;
    for (const pane of this.panes) {
      if (pane !== except && pane.opened) pane.viewer.viewport.fitBounds(this.bounds, true);
    }
  }

  /** The part of ``bounds`` that is image (viewport coordinates), ``bounds`` if none. */
  private imageIn(bounds: OpenSeadragon.Rect): OpenSeadragon.Rect {
    const W = this.args?.image_width ?? 1;
    const H = this.args?.image_height ?? W;
    const x0 = Math.max(bounds.x, 0);
    const y0 = Math.max(bounds.y, 0);
    const x1 = Math.min(bounds.x + bounds.width, 1);
    const y1 = Math.min(bounds.y + bounds.height, H / W);
    return x1 > x0 && y1 > y0 ? new OpenSeadragon.Rect(x0, y0, x1 - x0, y1 - y0) : bounds;
  }

  private send(): void {
    const value: Value = { polygons: this.drawing.polygons };
    this.lastValue = value;
    this.stats.reports++;
    this.updateButtons();
    this.report(value);
  }

  private checkSettled(): void {
    if (!this.panes.length) return;
    const loaded = this.panes.every((p) => p.opened && this.loaded(p));
    if (loaded && !this.stats.firstLoadedAt) this.stats.firstLoadedAt = now();
    if (loaded && this.panes.every((p) => !p.animating)) this.stats.settledAt = now();
  }

  private loaded(pane: Pane): boolean {
    const world = pane.viewer.world;
    if (world.getItemCount() < pane.items) return false;
    for (let i = 0; i < world.getItemCount(); i++) {
      if (!world.getItemAt(i).getFullyLoaded()) return false;
    }
    return true;
  }

  // ---- coordinates ------------------------------------------------------------------------

  private imagePane(): Pane | undefined {
    return this.panes.find((p) => p.kind === "image");
  }

  private toImage(pane: Pane | undefined, position: OpenSeadragon.Point): XY {
    if (!pane || !this.args) return [0, 0];
    const point = pane.viewer.viewport.pointFromPixel(position, true);
    // Viewport coordinates are image coordinates divided by the image's width (both axes).
    return [point.x * this.args.image_width, point.y * this.args.image_width];
  }

  /** Recomputes the pane's image-to-screen transform after OpenSeadragon drew a frame. */
  private place(pane: Pane): void {
    if (!this.args) return;
    const viewport = pane.viewer.viewport;
    const origin = viewport.pixelFromPoint(new OpenSeadragon.Point(0, 0), true);
    const unit = viewport.pixelFromPoint(new OpenSeadragon.Point(1, 0), true);
    const s = (unit.x - origin.x) / this.args.image_width;
    if (s === pane.s && origin.x === pane.tx && origin.y === pane.ty) return;
    pane.s = s;
    pane.tx = origin.x;
    pane.ty = origin.y;
    pane.world.setAttribute("transform", `matrix(${s} 0 0 ${s} ${origin.x} ${origin.y})`);
    this.renderDraft(pane);
    this.renderScaleBar(pane);
  }

  // ---- outlines, drawing, scale -----------------------------------------------------------

  private renderOutlines(): void {
    const args = this.args;
    if (!args) return;
    for (const pane of this.panes) {
      pane.outlines.replaceChildren();
      for (const outline of args.outlines) {
        const group = svg("g", { "data-testid": "viewer-outline", "data-outline": outline.name });
        if (this.visible.get(outline.name) === false) group.setAttribute("display", "none");
        for (const polygon of outline.polygons) {
          // A dark halo under the line keeps it visible over every colour map.
          group.append(
            svg("polygon", { points: points(polygon), class: "halo" }),
            svg("polygon", { points: points(polygon), class: "line", stroke: outline.colour }),
          );
        }
        pane.outlines.append(group);
      }
    }
  }

  private renderDrawing(): void {
    for (const pane of this.panes) {
      pane.drawing.replaceChildren();
      for (const polygon of this.drawing.polygons) {
        const filled = pane.kind === "image";
        pane.drawing.append(
          svg("polygon", { points: points(polygon), class: "halo" }),
          svg("polygon", { points: points(polygon), class: filled ? "drawn filled" : "drawn", stroke: DRAW_COLOUR, "data-testid": "drawn-polygon" }),
        );
      }
      this.renderDraft(pane);
    }
    this.updateButtons();
  }

  /** The shape being drawn, in screen pixels (its vertex dots keep their size at any zoom). */
  private renderDraft(pane: Pane): void {
    pane.draft.replaceChildren();
    const draft = this.drawing.draft;
    if (!draft || !draft.length) return;
    const screen = (p: XY): XY => [p[0] * pane.s + pane.tx, p[1] * pane.s + pane.ty];
    const shown = draft.map(screen);
    const hover = this.drawing.tool === "polygon" && this.drawing.hover ? [screen(this.drawing.hover)] : [];
    const closed = this.drawing.tool !== "polygon";
    pane.draft.append(svg(closed ? "polygon" : "polyline", { points: points([...shown, ...hover]), class: "draft-line", stroke: DRAW_COLOUR }));
    if (this.drawing.tool === "polygon" && pane.kind === "image") {
      for (const [x, y] of shown) pane.draft.append(svg("circle", { cx: String(x), cy: String(y), r: "3.5", class: "vertex" }));
    }
  }

  private renderScaleBar(pane: Pane): void {
    const mpp = this.args?.mpp;
    if (!pane.scaleBar || !mpp || !(pane.s > 0)) return;
    // About 100 screen pixels, rounded down to 1, 2 or 5 x 10^k micrometres.
    const micrometres = niceBelow((100 / pane.s) * mpp);
    const pixels = (micrometres / mpp) * pane.s;
    const bar = pane.scaleBar.firstElementChild as HTMLElement;
    bar.style.width = `${pixels.toFixed(1)}px`;
    (pane.scaleBar.lastElementChild as HTMLElement).textContent = formatLength(micrometres);
  }

  // ---- hooks for tests and the bench ------------------------------------------------------

  private viewOf(pane: Pane): PaneView {
    const W = this.args?.image_width ?? 1;
    const viewport = pane.viewer.viewport;
    const b = viewport.getBounds(true);
    const c = viewport.getCenter(true);
    return {
      kind: pane.kind,
      row: pane.row,
      column: pane.column,
      zoom: viewport.getZoom(true),
      scale: pane.s,
      center: [c.x * W, c.y * W],
      bounds: [b.x * W, b.y * W, b.width * W, b.height * W],
      loaded: pane.opened && this.loaded(pane),
    };
  }

  views(): PaneView[] {
    return this.panes.map((p) => this.viewOf(p));
  }

  ready(): boolean {
    return this.panes.length > 0 && this.panes.every((p) => p.opened && this.loaded(p));
  }

  settled(): boolean {
    return this.ready() && this.panes.every((p) => !p.animating);
  }

  private find(row?: string, column?: string): Pane {
    const pane =
      row === undefined || row === "" ? this.imagePane() : this.panes.find((p) => p.row === row && p.column === column);
    if (!pane) throw new Error(`no pane ${row} / ${column}`);
    return pane;
  }

  /** Client (CSS) pixels in this frame of image pixel (x, y) in a pane (default: the image). */
  imageToClient(x: number, y: number, row?: string, column?: string): { x: number; y: number; inside: boolean } {
    const pane = this.find(row, column);
    const W = this.args?.image_width ?? 1;
    const pixel = pane.viewer.viewport.pixelFromPoint(new OpenSeadragon.Point(x / W, y / W), true);
    const box = pane.viewer.canvas.getBoundingClientRect();
    const inside = pixel.x >= 0 && pixel.y >= 0 && pixel.x <= box.width && pixel.y <= box.height;
    return { x: box.left + pixel.x, y: box.top + pixel.y, inside };
  }

  /** Shows the image rectangle (image px) in every pane, at once. */
  fit(x: number, y: number, width: number, height: number): void {
    const W = this.args?.image_width ?? 1;
    this.bounds = new OpenSeadragon.Rect(x / W, y / W, width / W, height / W);
    this.fitAll(null);
    this.leader = null;
    this.remember(this.bounds);
  }
}

const VIEW_KEY = "lran-viewer-view:";
// The keys OpenSeadragon pans and zooms with (arrows, w/a/s/d, +/-, 0 for home).
const MOVING_KEYS = new Set([
  "ArrowUp", "ArrowDown", "ArrowLeft", "ArrowRight",
  "w", "a", "s", "d", "W", "A", "S", "D", "+", "-", "=", "_", "0",
]);

/** The view last kept under ``name`` in this tab (viewport coordinates), or null. */
function recall(name: string | null | undefined): OpenSeadragon.Rect | null {
  if (!name) return null;
  try {
    const stored: unknown = JSON.parse(window.sessionStorage.getItem(VIEW_KEY + name) ?? "null");
    if (
      Array.isArray(stored) &&
      stored.length === 4 &&
      stored.every((n) => typeof n === "number" && Number.isFinite(n)) &&
      stored[2] > 0 &&
      stored[3] > 0
    ) {
      return new OpenSeadragon.Rect(stored[0], stored[1], stored[2], stored[3]);
    }
  } catch {
    // No storage, or not ours: the image's home view.
  }
  return null;
}

function colourBar(legend: LegendArg, row: string, column: string): HTMLElement {
  const box = el("div", { class: "legend", "data-testid": "colour-bar", "data-row": row, "data-column": column });
  const bar = el("div", { class: "ramp", role: "img", "aria-label": `${legend.label}: ${legend.cmap} from ${formatNumber(legend.low)} to ${formatNumber(legend.high)}` });
  bar.style.background = `linear-gradient(to right, ${legend.stops.join(", ")})`;
  const numbers = el("div", { class: "numbers" });
  numbers.append(
    el("span", { class: "low", "data-testid": "legend-low" }, formatNumber(legend.low)),
    el("span", { class: "label", "data-testid": "legend-label" }, legend.label),
    el("span", { class: "high", "data-testid": "legend-high" }, formatNumber(legend.high)),
  );
  box.append(bar, numbers);
  return box;
}

/**
 * Tiles each viewer keeps: four screens' worth of its pane (a level being drawn, the next one
 * loading, and some panning), at least 64. A tile is cut again from the shared pyramid in a
 * millisecond, so a larger cache would only hold memory, a dozen times over.
 */
function cacheSize(host: HTMLElement, layers: number): number {
  const across = Math.ceil(host.clientWidth / TILE_SIZE) + 1;
  const down = Math.ceil(host.clientHeight / TILE_SIZE) + 1;
  return Math.max(64, 4 * across * down * layers);
}

/** The page's shortcuts (a diagnosis per digit, Ctrl+Enter to save, J/K/U between cases) listen
 * on the app's document, and a reader who has just drawn has the focus in this frame: every key
 * but Escape, and Enter while drawing a polygon (the drawing's), is passed up to the app's document, which
 * Streamlit serves from this frame's origin. The viewer's own keys (arrows, w/a/s/d, +/-, 0, r,
 * f) are none of the page's shortcuts. */
function forwardKey(event: KeyboardEvent): void {
  let parent: Window & typeof globalThis;
  try {
    parent = window.parent as Window & typeof globalThis;
    if (parent === window) return;
    parent.document.dispatchEvent(
      new parent.KeyboardEvent(event.type, {
        key: event.key,
        code: event.code,
        ctrlKey: event.ctrlKey,
        metaKey: event.metaKey,
        shiftKey: event.shiftKey,
        altKey: event.altKey,
        repeat: event.repeat,
        bubbles: true,
        cancelable: true,
      }),
    );
  } catch {
    // Another origin: the page's shortcuts then need a click outside the viewer first.
  }
}
