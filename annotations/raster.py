"""Rasterising rings to masks and tracing masks back to rings, by one pixel convention.

Coordinates. An image of width W and height H is a grid of pixels; pixel (row r, column c) covers
the square [c, c+1) x [r, r+1) of the continuous plane, so (0, 0) is the top-left corner of the
image and (W, H) the bottom-right one. A pixel belongs to a polygon when its centre (c + 0.5,
r + 0.5) lies inside it. This is QuPath's convention too, and it makes polygons traced along pixel
edges (`mask_to_geojson`) rasterise back to exactly the same pixels (`geojson_to_mask`).

Sizes passed as `image_size` / `canvas_size` are (width, height); masks are arrays of shape (H, W).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import ndimage


def fill_rings(rings: Sequence[np.ndarray], size_hw: tuple[int, int], even_odd: bool) -> np.ndarray:
    """Rasterise closed rings by the pixel-centre rule.

    Takes rings as (N, 2) float arrays of (x, y) vertices in image pixel coordinates (each ring is
    closed implicitly; a repeated last vertex is harmless) and the mask size (H, W). Gives a bool
    (H, W) mask. With `even_odd` a pixel is inside when a ray to its left crosses an odd number of
    edges (GeoJSON holes, whatever their orientation); otherwise when the winding number is
    non-zero (SVG's default rule, which keeps a self-overlapping freehand loop filled).
    """
    h, w = size_hw
    out = np.zeros((h, w), dtype=bool)
    rings = [np.asarray(r, dtype=np.float64).reshape(-1, 2) for r in rings if len(r) >= 3]
    if not rings or h == 0 or w == 0:
        return out
    allpts = np.concatenate(rings)
    # Only the bounding box can contain inside pixels: fill that window, not the whole image.
    r0 = max(0, math.floor(allpts[:, 1].min()))
    r1 = min(h, math.ceil(allpts[:, 1].max()))
    c0 = max(0, math.floor(allpts[:, 0].min()))
    c1 = min(w, math.ceil(allpts[:, 0].max()))
    if r1 <= r0 or c1 <= c0:
        return out
    wh, ww = r1 - r0, c1 - c0

    start = np.concatenate(rings) - (c0, r0)
    end = np.concatenate([np.roll(r, -1, axis=0) for r in rings]) - (c0, r0)
    x0, y0, x1, y1 = start[:, 0], start[:, 1], end[:, 0], end[:, 1]
    keep = y0 != y1
    x0, y0, x1, y1 = x0[keep], y0[keep], x1[keep], y1[keep]
    sign = np.where(y1 > y0, 1.0, -1.0)
    ylo, yhi = np.minimum(y0, y1), np.maximum(y0, y1)
    # An edge crosses row r when its half-open span [ylo, yhi) holds the row centre r + 0.5;
    # half-open so that a vertex shared by two edges is counted once.
    row_first = np.clip(np.ceil(ylo - 0.5), 0, wh).astype(np.int64)
    row_stop = np.clip(np.ceil(yhi - 0.5), 0, wh).astype(np.int64)
    counts = row_stop - row_first
    edge = np.repeat(np.arange(len(counts)), counts)
    offsets = np.arange(edge.size) - np.repeat(np.cumsum(counts) - counts, counts)
    rows = row_first[edge] + offsets
    t = (rows + 0.5 - y0[edge]) / (y1[edge] - y0[edge])
    xc = x0[edge] + t * (x1[edge] - x0[edge])
    # The crossing counts for every pixel whose centre is at or right of it.
    cols = np.clip(np.ceil(xc - 0.5), 0, ww).astype(np.int64)
    weights = np.ones(edge.size) if even_odd else sign[edge]
    diff = np.bincount(rows * (ww + 1) + cols, weights=weights, minlength=wh * (ww + 1))
    acc = np.rint(np.cumsum(diff.reshape(wh, ww + 1), axis=1)[:, :ww]).astype(np.int64)
    out[r0:r1, c0:c1] = (acc % 2 == 1) if even_odd else (acc != 0)
    return out


def trace_boundaries(mask: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """Trace every boundary of a bool (H, W) mask along pixel edges.

    Gives (component label, ring) pairs, a ring being an (N + 1, 2) int array of (x, y) pixel
    corners, closed (last vertex = first), with collinear vertices dropped. Components are
    4-connected. Outer boundaries run clockwise on screen (positive shoelace area with y down),
    holes the other way. Where two pixels of a component touch only at a corner the boundary
    turns towards the pixel it is following, so diagonal neighbours stay separate polygons.
    """
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return []
    cols = np.flatnonzero(mask.any(axis=0))
    y0, x0 = int(rows[0]), int(cols[0])
    box = mask[y0 : int(rows[-1]) + 1, x0 : int(cols[-1]) + 1]
    if box.shape != mask.shape:
        # Traced within the region's bounding box: the labels and edge arrays below are several
        # times the size of what they cover, and a region is often a small part of its image.
        offset = np.array([x0, y0])
        return [(label, ring + offset) for label, ring in trace_boundaries(box)]
    w = mask.shape[1]
    labels, _ = ndimage.label(mask)
    p = np.pad(mask, 1)
    core = p[1:-1, 1:-1]
    # (free neighbour, start-corner offset (dx, dy), direction) per side; directions are
    # 0 east, 1 south, 2 west, 3 north, so the foreground always lies to the right of travel.
    sides = (
        (~p[:-2, 1:-1], (0, 0), 0),  # top edge, west to east
        (~p[1:-1, 2:], (1, 0), 1),  # right edge, north to south
        (~p[2:, 1:-1], (1, 1), 2),  # bottom edge, east to west
        (~p[1:-1, :-2], (0, 1), 3),  # left edge, south to north
    )
    xs, ys, ds, rs, cs = [], [], [], [], []
    for free, (dx, dy), d in sides:
        r, c = np.nonzero(core & free)
        xs.append(c + dx)
        ys.append(r + dy)
        ds.append(np.full(r.size, d))
        rs.append(r)
        cs.append(c)
    x, y, dirs = np.concatenate(xs), np.concatenate(ys), np.concatenate(ds)
    pr, pc = np.concatenate(rs), np.concatenate(cs)
    n = x.size
    if n == 0:
        return []
    step_x, step_y = np.array([1, 0, -1, 0]), np.array([0, 1, 0, -1])
    ex, ey = x + step_x[dirs], y + step_y[dirs]
    keys = (y * (w + 1) + x) * 4 + dirs
    order = np.argsort(keys)
    sorted_keys = keys[order]

    def edge_from(vx: np.ndarray, vy: np.ndarray, vd: np.ndarray) -> np.ndarray:
        q = (vy * (w + 1) + vx) * 4 + vd
        pos = np.minimum(np.searchsorted(sorted_keys, q), n - 1)
        return np.where(sorted_keys[pos] == q, order[pos], -1)

    # Successor of each edge: turn right (hug the pixel being followed), else straight, else left.
    nxt = edge_from(ex, ey, (dirs + 1) % 4)
    for turn in (0, 3):
        todo = nxt < 0
        nxt[todo] = edge_from(ex[todo], ey[todo], (dirs[todo] + turn) % 4)
    nxt_list = nxt.tolist()
    seen = bytearray(n)
    rings: list[tuple[int, np.ndarray]] = []
    for first in range(n):
        if seen[first]:
            continue
        cycle = []
        e = first
        while not seen[e]:
            seen[e] = 1
            cycle.append(e)
            e = nxt_list[e]
        idx = np.asarray(cycle)
        turns = dirs[idx] != np.roll(dirs[idx], 1)
        corners = np.stack([x[idx][turns], y[idx][turns]], axis=1)
        ring = np.concatenate([corners, corners[:1]])
        rings.append((int(labels[pr[first], pc[first]]), ring))
    return rings


def shoelace_area(ring: np.ndarray) -> float:
    xr, yr = ring[:-1, 0].astype(np.float64), ring[:-1, 1].astype(np.float64)
    return float(np.sum(xr * np.roll(yr, -1) - np.roll(xr, -1) * yr) / 2)


def as_mask(mask: np.ndarray) -> np.ndarray:
    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise ValueError(f"mask must be 2-D (H, W), got shape {arr.shape}")
    return arr.astype(bool)
