// Plain geometry and number formatting, in image pixels unless said otherwise.

export type XY = [number, number];
export type Poly = XY[];

/** Signed area by the shoelace formula (positive when clockwise in image coordinates). */
export function area(polygon: Poly): number {
  let sum = 0;
  for (let i = 0; i < polygon.length; i++) {
    const [x0, y0] = polygon[i];
    const [x1, y1] = polygon[(i + 1) % polygon.length];
    sum += x0 * y1 - x1 * y0;
  }
  return sum / 2;
}

export function distance(a: XY, b: XY): number {
  return Math.hypot(a[0] - b[0], a[1] - b[1]);
}

/**
 * Drops vertices closer than ``tolerance`` to the line through their neighbours kept
 * (Douglas-Peucker), so that a freehand stroke of hundreds of pointer events becomes a
 * polygon of its visible corners.
 */
export function simplify(points: Poly, tolerance: number): Poly {
  if (points.length <= 3) return points.slice();
  const keep = new Uint8Array(points.length);
  keep[0] = keep[points.length - 1] = 1;
  const stack: [number, number][] = [[0, points.length - 1]];
  while (stack.length) {
    const [first, last] = stack.pop() as [number, number];
    const [ax, ay] = points[first];
    const [bx, by] = points[last];
    const length = Math.hypot(bx - ax, by - ay);
    let worst = -1;
    let index = -1;
    for (let i = first + 1; i < last; i++) {
      const [px, py] = points[i];
      const d =
        length > 0
          ? Math.abs((bx - ax) * (ay - py) - (ax - px) * (by - ay)) / length
          : Math.hypot(px - ax, py - ay);
      if (d > worst) {
        worst = d;
        index = i;
      }
    }
    if (worst > tolerance && index > 0) {
      keep[index] = 1;
      stack.push([first, index], [index, last]);
    }
  }
  return points.filter((_, i) => keep[i]);
}

export function round2(polygon: Poly): Poly {
  return polygon.map(([x, y]) => [Math.round(x * 100) / 100, Math.round(y * 100) / 100]);
}

/** A number as a reader wants it on a colour bar: three significant digits, no float noise. */
export function formatNumber(value: number | null): string {
  if (value === null || !Number.isFinite(value)) return "?";
  if (value === 0) return "0";
  const magnitude = Math.abs(value);
  if (magnitude >= 1e5 || magnitude < 1e-3) return value.toExponential(2).replace("e+", "e");
  return String(Number(value.toPrecision(3)));
}

/** The largest 1, 2 or 5 x 10^k not above ``value``. */
export function niceBelow(value: number): number {
  const power = Math.pow(10, Math.floor(Math.log10(value)));
  for (const step of [5, 2, 1]) if (step * power <= value) return step * power;
  return power;
}

export function formatLength(micrometres: number): string {
  if (micrometres >= 1000) return `${Number((micrometres / 1000).toPrecision(3))} mm`;
  return `${Number(micrometres.toPrecision(3))} µm`;
}
