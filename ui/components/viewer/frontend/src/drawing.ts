// The reader's drawing on the image pane: polygon, rectangle and freehand tools, undo, clear.
// Everything is kept in image pixels; the panes render it (see viewer.ts).

import OpenSeadragon from "openseadragon";
import { area, distance, round2, simplify, type Poly, type XY } from "./geometry";

export type Tool = "polygon" | "rectangle" | "freehand" | null;

// Screen pixels: how near the first vertex a click closes the polygon, how near the last one
// a click is taken as the second half of a double-click, how far a freehand stroke moves
// before a new point is kept, and how much detail its simplification may drop.
const CLOSE_PX = 10;
export const REPEAT_PX = 4;
const STROKE_STEP_PX = 2;
const STROKE_TOLERANCE_PX = 0.75;
const MIN_SIDE_PX = 3;

interface Handlers {
  /** Image pixels of an OpenSeadragon element position. */
  toImage(position: OpenSeadragon.Point): XY;
  /** Screen (CSS) pixels per image pixel in the image pane, now. */
  scale(): number;
  changed(polygons: Poly[]): void;
  redraw(): void;
  status(text: string): void;
}

interface PointerEventArgs {
  position: OpenSeadragon.Point;
  quick?: boolean;
  preventDefaultAction: boolean;
}

export class Drawing {
  polygons: Poly[] = [];
  tool: Tool = null;
  /** The shape being drawn (image px), or null. */
  draft: Poly | null = null;
  /** Where the pointer is, for the polygon's rubber band (image px). */
  hover: XY | null = null;
  private history: Poly[][] = [];
  private dragStart: XY | null = null;
  private readonly on: Handlers;

  constructor(on: Handlers) {
    this.on = on;
  }

  get canUndo(): boolean {
    return this.history.length > 0 || (this.draft !== null && this.tool === "polygon");
  }

  /** Listens to the image pane's pointer events; drawing tools take over drag and click. */
  attach(viewer: OpenSeadragon.Viewer): void {
    const on = (name: string, handler: (e: PointerEventArgs) => void): void => {
      viewer.addHandler(name as keyof OpenSeadragon.ViewerEventMap, handler as never);
    };
    on("canvas-press", (e) => {
      if (this.tool === "rectangle" || this.tool === "freehand") {
        this.dragStart = this.on.toImage(e.position);
        this.draft = [this.dragStart];
      }
    });
    on("canvas-drag", (e) => {
      if (!this.dragStart) return;
      e.preventDefaultAction = true;
      const point = this.on.toImage(e.position);
      if (this.tool === "rectangle") {
        this.draft = rectangle(this.dragStart, point);
      } else if (this.draft) {
        const last = this.draft[this.draft.length - 1];
        if (distance(last, point) * this.on.scale() >= STROKE_STEP_PX) this.draft.push(point);
      }
      this.on.redraw();
    });
    on("canvas-drag-end", (e) => {
      // No flick: the drag drew, it did not pan.
      if (this.dragStart) e.preventDefaultAction = true;
    });
    on("canvas-release", (e) => {
      if (!this.dragStart) return;
      const start = this.dragStart;
      const point = this.on.toImage(e.position);
      const scale = this.on.scale();
      this.dragStart = null;
      if (this.tool === "rectangle") {
        const wide = Math.abs(point[0] - start[0]) * scale >= MIN_SIDE_PX;
        const high = Math.abs(point[1] - start[1]) * scale >= MIN_SIDE_PX;
        this.draft = null;
        if (wide && high) this.commit(rectangle(start, point));
        else this.on.redraw();
      } else {
        const stroke = this.draft ?? [start];
        stroke.push(point);
        this.draft = null;
        // A stroke is closed by joining its ends: the reader circles a region.
        const polygon = simplify(stroke, STROKE_TOLERANCE_PX / scale);
        const big = Math.abs(area(polygon)) * scale * scale >= MIN_SIDE_PX * MIN_SIDE_PX;
        if (polygon.length >= 3 && big) this.commit(polygon);
        else this.on.redraw();
      }
    });
    on("canvas-click", (e) => {
      if (this.tool === "rectangle" || this.tool === "freehand") {
        e.preventDefaultAction = true;
        return;
      }
      if (this.tool !== "polygon" || !e.quick) return;
      e.preventDefaultAction = true;
      this.click(this.on.toImage(e.position));
    });
    on("canvas-double-click", (e) => {
      if (this.tool === null) return;
      e.preventDefaultAction = true;
      if (this.tool === "polygon") this.closePolygon();
    });
    const element = viewer.canvas;
    element.addEventListener("pointermove", (event) => {
      if (this.tool !== "polygon" || !this.draft) return;
      const box = element.getBoundingClientRect();
      this.hover = this.on.toImage(
        new OpenSeadragon.Point(event.clientX - box.left, event.clientY - box.top),
      );
      this.on.redraw();
    });
    element.addEventListener("pointerleave", () => {
      if (this.hover) {
        this.hover = null;
        this.on.redraw();
      }
    });
  }

  /** A polygon vertex at ``point`` (image px); near the first vertex, closes the polygon. */
  click(point: XY): void {
    const scale = this.on.scale();
    if (!this.draft) {
      this.draft = [point];
      this.on.status("Click the next corner; double-click or click the first corner to close.");
    } else if (this.draft.length >= 3 && distance(point, this.draft[0]) * scale <= CLOSE_PX) {
      this.closePolygon();
      return;
    } else if (distance(point, this.draft[this.draft.length - 1]) * scale > REPEAT_PX) {
      this.draft.push(point);
    }
    this.on.redraw();
  }

  /** Closes the polygon being drawn when it has 3 corners or more; gives whether it did. */
  closePolygon(): boolean {
    if (this.tool === "polygon" && this.draft && this.draft.length >= 3) {
      this.commit(this.draft);
      return true;
    }
    this.on.redraw();
    return false;
  }

  setTool(tool: Tool): void {
    // A polygon the reader has not closed is part of their region: another tool keeps it.
    if (tool !== this.tool) this.closePolygon();
    this.tool = tool;
    this.draft = null;
    this.hover = null;
    this.dragStart = null;
    this.on.status(HINTS[tool ?? "pan"]);
    this.on.redraw();
  }

  cancel(): void {
    if (this.draft) {
      this.draft = null;
      this.dragStart = null;
      this.on.redraw();
    }
  }

  undo(): void {
    if (this.draft && this.tool === "polygon") {
      this.draft.pop();
      if (this.draft.length === 0) this.draft = null;
      this.on.redraw();
      return;
    }
    const previous = this.history.pop();
    if (previous === undefined) return;
    this.polygons = previous;
    this.on.redraw();
    this.on.changed(this.polygons);
  }

  clear(): void {
    this.draft = null;
    if (this.polygons.length === 0) {
      this.on.redraw();
      return;
    }
    this.history.push(this.polygons);
    this.polygons = [];
    this.on.redraw();
    this.on.changed(this.polygons);
  }

  /** The drawing given by the app: replaces the reader's, and starts a new undo history. */
  replace(polygons: Poly[]): void {
    this.polygons = polygons.map((p) => p.map(([x, y]) => [x, y] as XY));
    this.history = [];
    this.draft = null;
    this.on.redraw();
  }

  private commit(polygon: Poly): void {
    this.history.push(this.polygons);
    this.polygons = [...this.polygons, round2(polygon)];
    this.draft = null;
    this.hover = null;
    this.on.status(`${this.polygons.length} region(s) drawn. ${HINTS[this.tool ?? "pan"]}`);
    this.on.redraw();
    this.on.changed(this.polygons);
  }
}

const HINTS: Record<string, string> = {
  pan: "Drag to pan, scroll to zoom; every pane follows.",
  polygon: "Polygon: click the corners; double-click or click the first corner to close.",
  rectangle: "Rectangle: press, drag to the opposite corner, release.",
  freehand: "Freehand: press and draw around the region; releasing closes it.",
};

function rectangle(a: XY, b: XY): Poly {
  const [x0, x1] = [Math.min(a[0], b[0]), Math.max(a[0], b[0])];
  const [y0, y1] = [Math.min(a[1], b[1]), Math.max(a[1], b[1])];
  return [
    [x0, y0],
    [x1, y0],
    [x1, y1],
    [x0, y1],
  ];
}
