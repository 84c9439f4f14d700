"""streamlit-drawable-canvas (fabric.js 6) drawings to region masks (see :mod:`annotations.raster`
for the pixel convention)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from annotations.raster import fill_rings

# Points sampled on each Bezier segment of a canvas path. Freehand segments are a few canvas
# pixels long, so 8 samples keep the polyline within a small fraction of a pixel of the curve.
_CURVE_STEPS = 8

# fabric.js origins as fractions of the object's box (numbers are already fractions).
_ORIGIN_FRACTION = {"left": 0.0, "top": 0.0, "center": 0.5, "right": 1.0, "bottom": 1.0}

# Canvas objects that enclose no area: a line, or a text label placed on the drawing.
_AREALESS_TYPES = frozenset({"line", "text", "itext", "textbox"})


def _num(obj: dict[str, Any], key: str, default: float) -> float:
    value = obj.get(key, default)
    if value is None:
        return default
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"canvas object field {key!r} is not a number: {value!r}") from None


def _origin(obj: dict[str, Any], key: str, default: str) -> float:
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


def _local_rings(obj: dict[str, Any], kind: str, px_per_unit: float) -> list[np.ndarray]:
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


def _object_rings(obj: dict[str, Any], scale: tuple[float, float]) -> list[np.ndarray]:
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
    canvas_json: dict[str, Any], image_size: tuple[int, int], canvas_size: tuple[int, int]
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
        raise ValueError("canvas json 'objects' must be a list")
    scale = (img_w / can_w, img_h / can_h)
    mask = np.zeros((img_h, img_w), dtype=bool)
    for obj in objects:
        if not isinstance(obj, dict):
            raise ValueError(f"canvas object must be a dict, got {type(obj).__name__}")
        rings = _object_rings(obj, scale)
        if rings:
            mask |= fill_rings(rings, (img_h, img_w), even_odd=False)
    return mask
