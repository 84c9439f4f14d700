// One decoded image and its halvings, shared by every pane that shows it, cut into tiles on
// demand for OpenSeadragon.
//
// OpenSeadragon's own ImageTileSource (type "image", buildPyramid) gives each viewer its own
// <img> and, per level, one canvas the size of the whole level: with a 6000 x 6000 image in a
// dozen linked panes that is a dozen decoded copies (~144 MB each) and full-level canvases per
// pane. Here the image is decoded once (createImageBitmap, off the main thread), each halving is
// made once and kept, and every viewer gets small tiles cut from them.

import OpenSeadragon from "openseadragon";

// Small tiles: a pane of a few hundred pixels needs a handful, and a dozen panes' tile caches
// stay small (a 256 px tile is 256 kB decoded).
export const TILE_SIZE = 256;
// Halvings stop here: smaller levels are drawn straight from this one.
const MIN_SIDE = 256;

export class Pyramid {
  readonly key: string;
  private readonly blob: Blob;
  private levels: Promise<ImageBitmap>[] = [];
  private objectUrl: string | null = null;
  private closed = false;

  constructor(key: string, data: Uint8Array, type: string) {
    this.key = key;
    this.blob = new Blob([data as BlobPart], { type });
  }

  /** The full-resolution bitmap, decoded on first use. */
  get decoded(): Promise<ImageBitmap> {
    return this.level(0);
  }

  /** The encoded image as a URL (for OpenSeadragon's own image tile source, in the bench). */
  url(): string {
    this.objectUrl ??= URL.createObjectURL(this.blob);
    return this.objectUrl;
  }

  /** The source halved ``j`` times, made once from the previous halving. */
  private level(j: number): Promise<ImageBitmap> {
    if (j === 0) {
      this.levels[0] ??= createImageBitmap(this.blob);
      return this.levels[0];
    }
    let made = this.levels[j];
    if (!made) {
      made = this.level(j - 1).then((previous) =>
        createImageBitmap(previous, {
          resizeWidth: Math.max(1, Math.round(previous.width / 2)),
          resizeHeight: Math.max(1, Math.round(previous.height / 2)),
          resizeQuality: "medium",
        }),
      );
      this.levels[j] = made;
    }
    return made;
  }

  /**
   * A tile of the image shown as ``width`` x ``height`` logical pixels (the base image's size,
   * whatever this bitmap's resolution), at ``scale`` level pixels per logical pixel: column
   * ``x``, row ``y`` of ``TILE_SIZE`` level pixels. Drawn from the smallest halving that still
   * has at least the level's resolution, so that no tile is drawn from far more pixels than it
   * shows (aliasing) or far fewer (blur).
   */
  async tile(
    width: number,
    height: number,
    scale: number,
    x: number,
    y: number,
  ): Promise<CanvasRenderingContext2D> {
    const base = await this.decoded;
    const deepest = Math.max(0, Math.floor(Math.log2(Math.max(base.width, base.height) / MIN_SIDE)));
    const wanted = Math.floor(Math.log2(base.width / (width * scale)) + 1e-6);
    const source = await this.level(Math.min(Math.max(wanted, 0), deepest));
    if (this.closed) throw new Error("pyramid closed");
    const fx = source.width / width;
    const fy = source.height / height;
    const left = (x * TILE_SIZE) / scale;
    const top = (y * TILE_SIZE) / scale;
    const right = Math.min(((x + 1) * TILE_SIZE) / scale, width);
    const bottom = Math.min(((y + 1) * TILE_SIZE) / scale, height);
    const canvas = document.createElement("canvas");
    canvas.width = Math.max(1, Math.ceil((right - left) * scale - 1e-6));
    canvas.height = Math.max(1, Math.ceil((bottom - top) * scale - 1e-6));
    const context = canvas.getContext("2d");
    if (!context) throw new Error("no 2D canvas");
    context.imageSmoothingQuality = "medium";
    context.drawImage(
      source,
      left * fx,
      top * fy,
      (right - left) * fx,
      (bottom - top) * fy,
      0,
      0,
      canvas.width,
      canvas.height,
    );
    return context;
  }

  close(): void {
    this.closed = true;
    if (this.objectUrl) URL.revokeObjectURL(this.objectUrl);
    for (const level of this.levels) level.then((b) => b.close()).catch(() => undefined);
  }
}

interface TileJob {
  postData: { level: number; x: number; y: number };
  finish(data: unknown, request: null, type: string): void;
  fail(message: string, request: null): void;
}

// OpenSeadragon's TileSource is a prototype-based constructor; its typings do not describe
// subclassing it, so the class below is typed loosely.
const TileSourceBase = OpenSeadragon.TileSource as any;

/**
 * A tile source of ``pyramid`` laid out as ``width`` x ``height`` image pixels. An overlay
 * uses the base image's size whatever its own resolution, so that it is stretched exactly
 * over the image and shares its coordinates.
 */
export function pyramidSource(
  pyramid: Pyramid,
  width: number,
  height: number,
  transparent: boolean,
): OpenSeadragon.TileSource {
  class PyramidSource extends TileSourceBase {
    constructor() {
      super({ width, height, tileSize: TILE_SIZE, tileOverlap: 0, minLevel: 0, ready: true });
    }

    supports(): boolean {
      return false;
    }

    configure(options: object): object {
      return options;
    }

    getTileUrl(level: number, x: number, y: number): string {
      // Only a cache key: tiles are never fetched.
      return `lran-viewer:${pyramid.key}/${level}/${x}_${y}`;
    }

    getTilePostData(level: number, x: number, y: number): object {
      return { level, x, y };
    }

    hasTransparency(): boolean {
      return transparent;
    }

    downloadTileStart(job: TileJob): void {
      const { level, x, y } = job.postData;
      const scale = this.getLevelScale(level) as number;
      pyramid.tile(width, height, scale, x, y).then(
        (context) => job.finish(context, null, "context2d"),
        (error: unknown) => job.fail(String(error), null),
      );
    }

    downloadTileAbort(): void {
      // Tiles are cut locally in a few milliseconds: nothing worth aborting.
    }
  }
  return new PyramidSource() as unknown as OpenSeadragon.TileSource;
}
