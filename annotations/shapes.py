"""Regions as boolean masks, and their conversions to and from what readers and tools produce.

Coordinates. An image of width W and height H is a grid of pixels; pixel (row r, column c) covers
the square [c, c+1) x [r, r+1) of the continuous plane, so (0, 0) is the top-left corner of the
image and (W, H) the bottom-right one. A pixel belongs to a polygon when its centre (c + 0.5,
r + 0.5) lies inside it. This is QuPath's convention too, and it makes polygons traced along pixel
edges (`mask_to_geojson`) rasterise back to exactly the same pixels (`geojson_to_mask`).

Sizes passed as `image_size` / `canvas_size` are (width, height); masks are arrays of shape (H, W).
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError
from scipy import ndimage

# Points sampled on each Bezier segment of a canvas path. Freehand segments are a few canvas
# pixels long, so 8 samples keep the polyline within a small fraction of a pixel of the curve.
_CURVE_STEPS = 8

# fabric.js origins as fractions of the object's box (numbers are already fractions).
_ORIGIN_FRACTION = {"left": 0.0, "top": 0.0, "center": 0.5, "right": 1.0, "bottom": 1.0}

# Canvas objects that enclose no area: a line, or a text label placed on the drawing.
_AREALESS_TYPES = frozenset({"line", "text", "itext", "textbox"})

DEFAULT_CLASSIFICATION = {"name": "Region", "color": [255, 0, 0]}


# ---------------------------------------------------------------------------------------------
# Rasterisation


def _fill_rings(
    rings: Sequence[np.ndarray], size_hw: tuple[int, int], even_odd: bool
) -> np.ndarray:
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


# ---------------------------------------------------------------------------------------------
# streamlit-drawable-canvas (fabric.js 6) drawings


def _num(obj: dict, key: str, default: float) -> float:
    value = obj.get(key, default)
    if value is None:
        return default
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"canvas object field {key!r} is not a number: {value!r}") from None


def _origin(obj: dict, key: str, default: str) -> float:
    value = obj.get(key, default)
    if isinstance(value, str):
        if value not in _ORIGIN_FRACTION:
            raise ValueError(f"canvas object has an unknown {key} {value!r}")
        return _ORIGIN_FRACTION[value]
    return float(value)


def _sample_quad(p0: np.ndarray, p1: np.ndarray, p2: np.ndarray) -> np.ndarray:
    t = np.linspace(0.0, 1.0, _CURVE_STEPS + 1)[1:, None]
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2


def _sample_cubic(p0: np.ndarray, p1: np.ndarray, p2: np.ndarray, p3: np.ndarray) -> np.ndarray:
    t = np.linspace(0.0, 1.0, _CURVE_STEPS + 1)[1:, None]
    return (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t**2 * p2 + t**3 * p3


def _path_subpaths(commands: Sequence[Sequence[Any]]) -> list[np.ndarray]:
    """Flatten a fabric path (["M", x, y], ["Q", x1, y1, x, y], ["L", x, y], ["Z"], ...) to
    polylines: one (N, 2) array per subpath, curves sampled. Absolute and relative M L H V Q C Z
    are understood (fabric 6 only emits absolute M L Q C Z)."""
    subpaths: list[list[np.ndarray]] = []
    current = np.zeros(2)
    start = np.zeros(2)
    for command in commands:
        if not command or not isinstance(command[0], str):
            raise ValueError(f"canvas path has a malformed command: {command!r}")
        op = command[0]
        args = np.asarray(command[1:], dtype=np.float64)
        rel = op.islower() and op not in ("z",)
        base = current if rel else np.zeros(2)
        kind = op.upper()
        expected = {"M": 2, "L": 2, "H": 1, "V": 1, "Q": 4, "C": 6, "Z": 0}.get(kind)
        if expected is None:
            raise ValueError(f"canvas path command {op!r} is not supported")
        if args.size != expected:
            raise ValueError(
                f"canvas path command {op!r} needs {expected} numbers, got {args.size}"
            )
        if kind == "M":
            current = base + args
            start = current
            subpaths.append([current[None, :]])
            continue
        if not subpaths:
            raise ValueError("canvas path does not start with a move-to ('M') command")
        if kind == "L":
            new = base + args
            pts = new[None, :]
        elif kind == "H":
            new = np.array([(current[0] if rel else 0.0) + args[0], current[1]])
            pts = new[None, :]
        elif kind == "V":
            new = np.array([current[0], (current[1] if rel else 0.0) + args[0]])
            pts = new[None, :]
        elif kind == "Q":
            ctrl, new = base + args[:2], base + args[2:]
            pts = _sample_quad(current, ctrl, new)
        elif kind == "C":
            c1, c2, new = base + args[:2], base + args[2:4], base + args[4:]
            pts = _sample_cubic(current, c1, c2, new)
        else:  # Z: the ring closes on its start; every ring is filled as closed anyway.
            new = start
            pts = np.empty((0, 2))
        subpaths[-1].append(pts)
        current = new
    return [np.concatenate(parts) for parts in subpaths]


def _local_rings(obj: dict, kind: str, px_per_unit: float) -> list[np.ndarray]:
    """Geometry of one canvas object in its own frame (centred on the object's centre, before
    scale and rotation): a list of (N, 2) rings. `px_per_unit` (image pixels per local unit, the
    largest of the object and canvas-to-image scales) sets how finely round shapes are sampled."""
    if kind in ("rect", "labeledrect"):
        hw, hh = _num(obj, "width", 0) / 2, _num(obj, "height", 0) / 2
        return [np.array([[-hw, -hh], [hw, -hh], [hw, hh], [-hw, hh]])]
    if kind in ("circle", "ellipse"):
        if kind == "circle":
            rx = ry = _num(obj, "radius", _num(obj, "width", 0) / 2)
        else:
            rx, ry = _num(obj, "rx", 0), _num(obj, "ry", 0)
        # About one vertex per image pixel of circumference.
        n = int(np.clip(math.ceil(2 * math.pi * max(rx, ry) * px_per_unit), 16, 4096))
        theta = np.linspace(0, 2 * math.pi, n, endpoint=False)
        return [np.stack([rx * np.cos(theta), ry * np.sin(theta)], axis=1)]
    if kind in ("path", "polygon", "polyline"):
        if kind == "path":
            rings = _path_subpaths(obj.get("path") or [])
        else:
            pts = obj.get("points") or []
            rings = [np.array([[_num(p, "x", 0), _num(p, "y", 0)] for p in pts]).reshape(-1, 2)]
        rings = [r for r in rings if len(r)]
        if not rings:
            return []
        # fabric draws paths and polygons relative to pathOffset, the centre of their points'
        # bounding box; toObject() does not export it, so it is recomputed here.
        if isinstance(obj.get("pathOffset"), dict):
            offset = np.array([_num(obj["pathOffset"], "x", 0), _num(obj["pathOffset"], "y", 0)])
        else:
            allpts = np.concatenate(rings)
            offset = (allpts.min(axis=0) + allpts.max(axis=0)) / 2
        return [r - offset for r in rings]
    raise ValueError(
        f"canvas object type {obj.get('type')!r} is not a region "
        "(use rect, circle, freedraw or polygon)"
    )


def _object_rings(obj: dict, scale: tuple[float, float]) -> list[np.ndarray]:
    """Rings of one fabric object in image pixel coordinates (canvas coordinates times scale)."""
    kind = str(obj.get("type", "")).lower()
    if kind in _AREALESS_TYPES:
        return []
    if _num(obj, "skewX", 0) or _num(obj, "skewY", 0):
        raise ValueError("skewed canvas objects are not supported: undo the skew and save again")
    sx, sy = _num(obj, "scaleX", 1), _num(obj, "scaleY", 1)
    rings = _local_rings(obj, kind, max(abs(sx), abs(sy)) * max(scale))
    if not rings:
        return []
    # fabric's placement: (left, top) is the point at (originX, originY) of the object's box,
    # whose size includes the stroke (scaled with the object unless strokeUniform).
    sw = _num(obj, "strokeWidth", 1)
    width, height = _num(obj, "width", 0), _num(obj, "height", 0)
    if obj.get("strokeUniform"):
        dims = np.array([width * sx + sw, height * sy + sw])
    else:
        dims = np.array([(width + sw) * sx, (height + sw) * sy])
    frac = np.array([_origin(obj, "originX", "left"), _origin(obj, "originY", "top")])
    angle = math.radians(_num(obj, "angle", 0))
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    center = np.array([_num(obj, "left", 0), _num(obj, "top", 0)]) + rot @ ((0.5 - frac) * dims)
    flip = np.array([-1.0 if obj.get("flipX") else 1.0, -1.0 if obj.get("flipY") else 1.0])
    linear = rot @ np.diag(flip * (sx, sy))
    return [(center + r @ linear.T) * scale for r in rings]


def canvas_to_mask(
    canvas_json: dict, image_size: tuple[int, int], canvas_size: tuple[int, int]
) -> np.ndarray:
    """Rasterise a streamlit-drawable-canvas drawing onto the image it was drawn over.

    Takes `canvas_json`, the `json_data` of streamlit-drawable-canvas 0.13 (fabric.js 6 objects:
    `Rect`/`LabeledRect`, `Circle`/`Ellipse`, `Path` from freehand drawing, `Polygon` from the
    polygon tool, with their left/top/origin/scale/angle/flip), and the image and canvas sizes as
    (width, height). The canvas is assumed to stretch the image over its whole area (the
    component's default `background_image_fit="stretch"`), so canvas coordinates scale by
    image/canvas size per axis. Gives a bool (H, W) mask of the image: the union of the areas
    enclosed by the objects (the stroke's own width is ignored; a freehand stroke counts as the
    region it encloses, closed from its last point back to its first). Lines and text add nothing.
    Raises ValueError for an object that is not a region (e.g. an image) or is malformed.
    """
    img_w, img_h = (int(v) for v in image_size)
    can_w, can_h = (float(v) for v in canvas_size)
    if img_w <= 0 or img_h <= 0 or can_w <= 0 or can_h <= 0:
        raise ValueError(f"sizes must be positive, got image {image_size} and canvas {canvas_size}")
    objects = (canvas_json or {}).get("objects") or []
    if not isinstance(objects, list):
        # ValueError, not TypeError: callers treat every malformed drawing the same way.
        raise ValueError("canvas json 'objects' must be a list")  # noqa: TRY004
    scale = (img_w / can_w, img_h / can_h)
    mask = np.zeros((img_h, img_w), dtype=bool)
    for obj in objects:
        if not isinstance(obj, dict):
            raise ValueError(f"canvas object must be a dict, got {type(obj).__name__}")  # noqa: TRY004
        rings = _object_rings(obj, scale)
        if rings:
            mask |= _fill_rings(rings, (img_h, img_w), even_odd=False)
    return mask


# ---------------------------------------------------------------------------------------------
# GeoJSON (QuPath)


def _trace_boundaries(mask: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """Trace every boundary of a bool (H, W) mask along pixel edges.

    Gives (component label, ring) pairs, a ring being an (N + 1, 2) int array of (x, y) pixel
    corners, closed (last vertex = first), with collinear vertices dropped. Components are
    4-connected. Outer boundaries run clockwise on screen (positive shoelace area with y down),
    holes the other way. Where two pixels of a component touch only at a corner the boundary
    turns towards the pixel it is following, so diagonal neighbours stay separate polygons.
    """
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
    x, y, d = np.concatenate(xs), np.concatenate(ys), np.concatenate(ds)
    pr, pc = np.concatenate(rs), np.concatenate(cs)
    n = x.size
    if n == 0:
        return []
    step_x, step_y = np.array([1, 0, -1, 0]), np.array([0, 1, 0, -1])
    ex, ey = x + step_x[d], y + step_y[d]
    keys = (y * (w + 1) + x) * 4 + d
    order = np.argsort(keys)
    sorted_keys = keys[order]

    def edge_from(vx: np.ndarray, vy: np.ndarray, vd: np.ndarray) -> np.ndarray:
        q = (vy * (w + 1) + vx) * 4 + vd
        pos = np.minimum(np.searchsorted(sorted_keys, q), n - 1)
        return np.where(sorted_keys[pos] == q, order[pos], -1)

    # Successor of each edge: turn right (hug the pixel being followed), else straight, else left.
    nxt = edge_from(ex, ey, (d + 1) % 4)
    for turn in (0, 3):
        todo = nxt < 0
        nxt[todo] = edge_from(ex[todo], ey[todo], (d[todo] + turn) % 4)
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
        turns = d[idx] != np.roll(d[idx], 1)
        corners = np.stack([x[idx][turns], y[idx][turns]], axis=1)
        ring = np.concatenate([corners, corners[:1]])
        rings.append((int(labels[pr[first], pc[first]]), ring))
    return rings


def _shoelace(ring: np.ndarray) -> float:
    xr, yr = ring[:-1, 0].astype(np.float64), ring[:-1, 1].astype(np.float64)
    return float(np.sum(xr * np.roll(yr, -1) - np.roll(xr, -1) * yr) / 2)


def _as_mask(mask: np.ndarray) -> np.ndarray:
    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise ValueError(f"mask must be 2-D (H, W), got shape {arr.shape}")
    return arr.astype(bool)


def mask_to_geojson(mask: np.ndarray, properties: dict | None = None) -> dict:
    """Describe a region as a GeoJSON FeatureCollection that QuPath imports as annotations.

    Takes a bool (H, W) mask and optional feature properties. Gives one Polygon feature per
    4-connected component, exterior ring first then its holes, vertices at pixel corners in image
    pixel coordinates (so `geojson_to_mask` gives back exactly `mask`). Each feature's properties
    are {"objectType": "annotation", "classification": {"name": "Region", "color": [255, 0, 0]}}
    updated with `properties` (so a given "classification" replaces the default one).
    """
    arr = _as_mask(mask)
    props = {"objectType": "annotation", "classification": dict(DEFAULT_CLASSIFICATION)}
    props.update(properties or {})
    exteriors: dict[int, list] = {}
    holes: dict[int, list] = {}
    for label, ring in _trace_boundaries(arr):
        target = exteriors if _shoelace(ring) > 0 else holes
        target.setdefault(label, []).append(ring.tolist())
    features = []
    for label in sorted(exteriors):
        coords = exteriors[label] + holes.get(label, [])
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": coords},
                "properties": dict(props),
            }
        )
    return {"type": "FeatureCollection", "features": features}


def _ring(value: Any, where: str) -> np.ndarray:
    try:
        ring = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: positions must be lists of numbers") from None
    if ring.ndim != 2 or ring.shape[1] < 2:
        raise ValueError(f"{where}: a ring must be a list of [x, y] positions")
    ring = ring[:, :2]
    if not np.all(np.isfinite(ring)):
        raise ValueError(f"{where}: coordinates must be finite numbers")
    if len(ring) < 4:
        raise ValueError(f"{where}: a closed ring needs at least 4 positions, got {len(ring)}")
    if not np.array_equal(ring[0], ring[-1]):
        raise ValueError(f"{where}: ring is not closed (first and last positions differ)")
    return ring


def _polygons(obj: Any, where: str) -> list[list[np.ndarray]]:
    """Collect polygons (each a list of rings, exterior first) from any accepted GeoJSON form."""
    if isinstance(obj, list):
        return [p for i, f in enumerate(obj) for p in _polygons(f, f"{where}[{i}]")]
    if not isinstance(obj, dict):
        # ValueError, not TypeError: callers treat every malformed upload the same way.
        raise ValueError(f"{where}: expected a GeoJSON object, got {type(obj).__name__}")  # noqa: TRY004
    kind = obj.get("type")
    if kind == "FeatureCollection":
        features = obj.get("features")
        if not isinstance(features, list):
            raise ValueError(f"{where}: a FeatureCollection needs a 'features' list")
        return _polygons(features, f"{where}.features")
    if kind == "Feature":
        if obj.get("geometry") is None:
            raise ValueError(f"{where}: feature has no geometry")
        return _polygons(obj["geometry"], f"{where}.geometry")
    if kind in ("Polygon", "MultiPolygon"):
        coords = obj.get("coordinates")
        if not isinstance(coords, list):
            raise ValueError(f"{where}: {kind} needs a 'coordinates' list")
        polys = [coords] if kind == "Polygon" else coords
        out = []
        for i, poly in enumerate(polys):
            if not isinstance(poly, list) or not poly:
                raise ValueError(f"{where}: polygon {i} must be a non-empty list of rings")
            out.append([_ring(r, f"{where} polygon {i} ring {j}") for j, r in enumerate(poly)])
        return out
    raise ValueError(
        f"{where}: GeoJSON type {kind!r} does not describe a region; expected FeatureCollection, "
        "Feature, Polygon or MultiPolygon"
    )


def geojson_to_mask(geojson: dict | list, image_size: tuple[int, int]) -> np.ndarray:
    """Rasterise a GeoJSON region (e.g. a QuPath export) onto an image.

    Takes a FeatureCollection, a Feature, a list of Features, a Polygon or a MultiPolygon, in image
    pixel coordinates, and the image size (width, height). Gives a bool (H, W) mask: the union of
    all polygons, holes cut out (even-odd rule, so ring orientation does not matter), parts outside
    the image clipped. Raises ValueError naming the offending part for other geometry types
    (points, lines), missing geometry or malformed rings.
    """
    w, h = (int(v) for v in image_size)
    if w <= 0 or h <= 0:
        raise ValueError(f"image size must be positive, got {image_size}")
    mask = np.zeros((h, w), dtype=bool)
    for rings in _polygons(geojson, "geojson"):
        mask |= _fill_rings(rings, (h, w), even_odd=True)
    return mask


# ---------------------------------------------------------------------------------------------
# PNG masks and label masks


def _open_image(data: bytes) -> Image.Image:
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ValueError(f"not a readable image: {exc}") from None
    return img


def mask_to_png(mask: np.ndarray) -> bytes:
    """Encode a bool (H, W) mask as an 8-bit greyscale PNG, 255 inside and 0 outside."""
    arr = _as_mask(mask)
    buf = io.BytesIO()
    Image.fromarray(arr.astype(np.uint8) * 255).save(buf, format="PNG")
    return buf.getvalue()


def png_to_mask(data: bytes) -> np.ndarray:
    """Decode a mask image (PNG bytes, any mode) into a bool (H, W) mask: grey level > 127."""
    img = _open_image(data)
    if img.mode == "1":
        return np.asarray(img, dtype=bool).copy()
    return np.asarray(img.convert("L")) > 127


def label_mask_to_region(
    label_mask: np.ndarray, positive_values: Iterable[int] = (1, 2, 3)
) -> np.ndarray:
    """Gives the bool (H, W) region where a label mask (H, W) holds one of `positive_values`
    (default: every annotated BACH class, i.e. benign, in situ and invasive)."""
    arr = np.asarray(label_mask)
    if arr.ndim != 2:
        raise ValueError(f"label mask must be 2-D (H, W), got shape {arr.shape}")
    return np.isin(arr, list(positive_values))


def read_label_mask(
    data: bytes,
    expected_size: tuple[int, int] | None = None,
    allowed_values: Iterable[int] = (0, 1, 2, 3),
) -> np.ndarray:
    """Read a class-index mask image (BACH convention: 0 unannotated, 1 benign, 2 in situ,
    3 invasive).

    Takes the image bytes (PNG/TIFF; greyscale, palette indices, or RGB with equal channels), the
    size (width, height) it must have, if known, and the values it may contain. Gives a uint8
    (H, W) array. Raises ValueError saying what is wrong: unreadable, colour, wrong size (both
    sizes given) or unknown values (which ones).
    """
    img = _open_image(data)
    if img.mode in ("RGB", "RGBA"):
        rgb = np.asarray(img.convert("RGB"))
        grey = np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])
        if not grey:
            raise ValueError("label mask is a colour image; expected one channel of class indices")
        arr = rgb[..., 0]
    elif img.mode in ("1", "L", "P", "I", "I;16", "I;16B", "I;16L"):
        # Palette images hold class indices; their colours are only for display.
        arr = np.asarray(img)
    else:
        raise ValueError(f"label mask has image mode {img.mode!r}; expected a single channel")
    if expected_size is not None and tuple(img.size) != tuple(expected_size):
        raise ValueError(
            f"label mask is {img.size[0]} x {img.size[1]} px (width x height) but the image is "
            f"{expected_size[0]} x {expected_size[1]} px"
        )
    allowed = sorted(int(v) for v in allowed_values)
    present = np.unique(arr.astype(np.int64))
    unknown = sorted(set(present.tolist()) - set(allowed))
    if unknown:
        raise ValueError(f"label mask has values {unknown} outside the allowed {allowed}")
    return arr.astype(np.uint8)
