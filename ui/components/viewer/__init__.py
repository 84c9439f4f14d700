"""A zoomable, linked viewer of a histology image and its maps, as a Streamlit custom component.

The frontend (``frontend/``, built into ``build/``) shows the image in one OpenSeadragon pane
with drawing tools, and below it a grid of map panes: one column per model, one row per map
type. Every pane shows the same image with its map on top; zooming or panning one pane moves
all of them. Outlines (a reference, the reader's region) are drawn over every pane, a scale bar
gives micrometres when the image's resolution is known, and what the reader draws comes back in
image pixels.

Coordinates: everything crossing this module is in image pixels of the full-resolution image,
x to the right and y down, origin at the top-left corner of the top-left pixel.

Only numpy, PIL and Streamlit are used here: the UI never reaches the model.
"""

from __future__ import annotations

import hashlib
import io
import math
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st
import streamlit.components.v1 as components
from PIL import Image

BUILD_DIR = Path(__file__).resolve().parent / "build"
# Maps are smooth and coarse (a model's grid upsampled): more pixels than this only cost
# transfer and decode time; the frontend stretches the map over the whole image anyway.
OVERLAY_MAX_SIDE = 1024
# Photographic tissue compresses ~10x better as JPEG at a quality a reader cannot tell from
# the original; tiny patches go lossless, since they are viewed enlarged, pixel by pixel.
JPEG_QUALITY = 90
LOSSLESS_MAX_PIXELS = 512 * 512
# Encoded images kept per process, so that a rerun (every click in Streamlit) re-sends the
# same bytes instead of re-encoding a 36-megapixel image.
CACHE_MAX_BYTES = 256 * 1024 * 1024
DEFAULT_KEY = "lran-viewer"

Polygon = list[tuple[float, float]]
"""Vertices (x, y) in image pixels (floats), closed implicitly (last vertex joins the first)."""

# Nine evenly spaced stops of the colour maps the app offers (matplotlib's tables, sampled),
# so that a legend shows the same colours as the map without the UI importing matplotlib.
_STOPS = {
    "jet": "000080 0000ff 0080ff 16ffe1 7dff7a e4ff13 ff9400 ff1e00 800000",
    "turbo": "30123b 466be3 28bceb 32f298 a4fc3c eecf3a fb7e21 d02f05 7a0403",
    "viridis": "440154 472d7b 3b528b 2c728e 21918c 28ae80 5ec962 addc30 fde725",
    "inferno": "000004 210c4a 57106e 8a226a bc3754 e45a31 f98e09 f9cb35 fcffa4",
    "magma": "000004 1d1147 51127c 832681 b73779 e75263 fc8961 fec488 fcfdbf",
    "gray": "000000 202020 404040 606060 808080 a0a0a0 c0c0c0 e0e0e0 ffffff",
    "plasma": "0d0887 4c02a1 7e03a8 aa2395 cc4778 e66c5c f89540 fdc527 f0f921",
    "cividis": "00224e 1a386f 434e6c 61656f 7d7c78 9b9476 bcae6c dec958 fee838",
    "hot": "0b0000 5f0000 b30000 ff0800 ff5c00 ffb000 ffff07 ffff85 ffffff",
    "coolwarm": "3b4cc0 6282ea 8db0fe b9d0f9 dddcdc f5c4ac f4987a dd5f4b b40426",
    "RdBu_r": "053061 2a71b2 6bacd1 c2ddec f7f6f6 fbccb4 e48066 ba2832 67001f",
}
COLOUR_STOPS: dict[str, tuple[str, ...]] = {
    name: tuple(f"#{c}" for c in stops.split()) for name, stops in _STOPS.items()
}


@dataclass(frozen=True)
class Legend:
    """What a map's colours mean: shown as a colour bar with its numbers.

    ``cmap`` names the colour map (a key of ``COLOUR_STOPS`` unless ``stops`` is given);
    ``low`` and ``high`` are the values at its two ends, in the map's own unit (a probability,
    a normalised activation); ``label`` says what the values are. ``stops`` are CSS colours
    spaced evenly from ``low`` to ``high``, for a colour map not in ``COLOUR_STOPS``.
    """

    cmap: str
    low: float
    high: float
    label: str
    stops: tuple[str, ...] | None = None

    def colours(self) -> tuple[str, ...]:
        """The colour bar's stops, from ``low`` to ``high``."""
        if self.stops:
            return tuple(self.stops)
        if self.cmap not in COLOUR_STOPS:
            raise ValueError(
                f"unknown colour map {self.cmap!r}: give its stops, or one of {list(COLOUR_STOPS)}"
            )
        return COLOUR_STOPS[self.cmap]


@dataclass(frozen=True, eq=False)
class Overlay:
    """A map, already colour-mapped, laid over the whole image.

    ``rgba`` is (h, w, 4) uint8 (or (h, w, 3), then opaque) at any resolution: the frontend
    stretches it over the full image, so h / w should match the image's aspect. Its alpha is
    multiplied by ``opacity`` (0 to 1) in the viewer.
    """

    rgba: np.ndarray
    legend: Legend
    opacity: float = 0.6


@dataclass(frozen=True)
class Outline:
    """Polygons drawn over every pane (a reference annotation, the reader's saved region).

    ``colour`` is (r, g, b), 0 to 255; ``polygons`` are in image pixels; ``visible`` is whether
    its checkbox starts ticked.
    """

    name: str
    colour: tuple[int, int, int]
    polygons: Sequence[Polygon]
    visible: bool = True


@dataclass(frozen=True)
class ViewerState:
    """What the viewer gives back.

    ``polygons``: the reader's drawing in image pixels (rectangles and freehand strokes come
    back as polygons too); before the reader has drawn, the ``drawing`` that was passed in.
    ``sent``: whether this came from the browser (False: nothing was sent yet, and
    ``polygons`` is what was passed in). Zooming and panning stay in the browser.
    """

    polygons: list[Polygon]
    sent: bool = True


class _ByteCache:
    """A small LRU of encoded images, bounded in bytes, shared by the sessions' threads."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, tuple[bytes, str]] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> tuple[bytes, str] | None:
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
            return item

    def put(self, key: str, item: tuple[bytes, str]) -> None:
        with self._lock:
            if key in self._items:
                return
            self._items[key] = item
            self._size += len(item[0])
            while self._size > self.max_bytes and len(self._items) > 1:
                _, (data, _) = self._items.popitem(last=False)
                self._size -= len(data)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._size = 0


_CACHE = _ByteCache(CACHE_MAX_BYTES)


def _digest(kind: str, array: np.ndarray) -> str:
    """A key for ``array``'s content (sha256: ~0.06 s for a 6000 x 6000 RGB image)."""
    data = np.ascontiguousarray(array)
    h = hashlib.sha256(f"{kind}:{data.shape}:{data.dtype}".encode())
    h.update(data.data.cast("B"))
    return h.hexdigest()[:32]


def encode_image(image: np.ndarray) -> tuple[str, bytes, str]:
    """The base image, encoded once per content: gives (its key, the bytes, their MIME type).

    ``image`` is (H, W, 3) uint8. JPEG at quality 90, PNG for images of at most 512 x 512 px.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    key = _digest("image", image)
    cached = _CACHE.get(key)
    if cached is None:
        buffer = io.BytesIO()
        pil = Image.fromarray(np.ascontiguousarray(image))
        if image.shape[0] * image.shape[1] <= LOSSLESS_MAX_PIXELS:
            pil.save(buffer, format="PNG")
            cached = (buffer.getvalue(), "image/png")
        else:
            pil.save(buffer, format="JPEG", quality=JPEG_QUALITY)
            cached = (buffer.getvalue(), "image/jpeg")
        _CACHE.put(key, cached)
    return key, cached[0], cached[1]


def encode_overlay(rgba: np.ndarray) -> tuple[str, bytes]:
    """A map as PNG, at most ``OVERLAY_MAX_SIDE`` px on its longer side (area-averaged, alpha
    premultiplied so that transparent pixels do not darken their neighbours): (key, bytes)."""
    if rgba.ndim != 3 or rgba.shape[2] not in (3, 4) or rgba.dtype != np.uint8:
        raise ValueError(f"overlay must be (h, w, 4) or (h, w, 3) uint8, got {rgba.shape}")
    key = _digest("overlay", rgba)
    cached = _CACHE.get(key)
    if cached is None:
        pil = Image.fromarray(np.ascontiguousarray(rgba), "RGBA" if rgba.shape[2] == 4 else "RGB")
        scale = OVERLAY_MAX_SIDE / max(pil.width, pil.height)
        if scale < 1:
            size = (max(1, round(pil.width * scale)), max(1, round(pil.height * scale)))
            pil = pil.resize(size, Image.Resampling.BOX)
        buffer = io.BytesIO()
        # Level 1: about 1.5x the bytes of level 6 but 3-4x faster (~50 ms a 1024 px map),
        # which matters more than size next to the image's JPEG when a dozen maps are shown.
        pil.save(buffer, format="PNG", compress_level=1)
        cached = (buffer.getvalue(), "image/png")
        _CACHE.put(key, cached)
    return key, cached[0]


def _hex(colour: Sequence[int]) -> str:
    r, g, b = (max(0, min(255, int(c))) for c in colour)
    return f"#{r:02x}{g:02x}{b:02x}"


def _polygon_json(polygon: Polygon) -> list[list[float]]:
    return [[round(float(x), 2), round(float(y), 2)] for x, y in polygon]


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def component_args(
    image: np.ndarray,
    *,
    mpp: float | None,
    columns: Sequence[str],
    rows: Sequence[str],
    overlays: Mapping[tuple[str, str], Overlay],
    outlines: Sequence[Outline] = (),
    drawing: Sequence[Polygon] | None = None,
    draw: bool = True,
    height: int = 800,
    view_key: str | None = None,
) -> dict[str, Any]:
    """The keyword arguments the frontend receives (see ``viewer``): JSON values, and the
    encoded images as top-level bytes arguments (Streamlit sends those as binary, not JSON)."""
    for row, column in overlays:
        if row not in rows or column not in columns:
            raise ValueError(f"overlay for ({row!r}, {column!r}) is not in the rows x columns")
    if len(set(columns)) != len(columns) or len(set(rows)) != len(rows):
        raise ValueError("column and row names must be unique")
    image_key, image_bytes, image_type = encode_image(image)
    args: dict[str, Any] = {
        "image": image_bytes,
        "image_key": image_key,
        "image_type": image_type,
        "image_width": int(image.shape[1]),
        "image_height": int(image.shape[0]),
        "mpp": _finite(mpp) if mpp is not None and mpp > 0 else None,
        "columns": list(columns),
        "rows": list(rows),
        "draw": bool(draw),
        "height": int(height),
        "view_key": view_key,
        "drawing": None if drawing is None else [_polygon_json(p) for p in drawing],
        "outlines": [
            {
                "name": o.name,
                "colour": _hex(o.colour),
                "visible": bool(o.visible),
                "polygons": [_polygon_json(p) for p in o.polygons if len(p) >= 2],
            }
            for o in outlines
        ],
    }
    cells = []
    for i, ((row, column), overlay) in enumerate(overlays.items()):
        key, data = encode_overlay(overlay.rgba)
        name = f"overlay_{i}"
        args[name] = data
        legend = overlay.legend
        cells.append(
            {
                "row": row,
                "column": column,
                "arg": name,
                "key": key,
                "opacity": max(0.0, min(1.0, float(overlay.opacity))),
                "legend": {
                    "label": legend.label,
                    "low": _finite(legend.low),
                    "high": _finite(legend.high),
                    "cmap": legend.cmap,
                    "stops": list(legend.colours()),
                },
            }
        )
    args["cells"] = cells
    return args


def _state(value: Any, drawing: Sequence[Polygon] | None) -> ViewerState:
    """The frontend's value ({"polygons": [[[x, y], ...], ...]}) as a ViewerState; anything
    malformed is dropped rather than trusted."""
    if not isinstance(value, dict):
        polygons = [[(float(x), float(y)) for x, y in p] for p in drawing or []]
        return ViewerState(polygons=polygons, sent=False)
    polygons = []
    for raw in value.get("polygons") or []:
        try:
            polygon = [(float(x), float(y)) for x, y in raw]
        except (TypeError, ValueError):
            continue
        if len(polygon) >= 3 and all(math.isfinite(c) for xy in polygon for c in xy):
            polygons.append(polygon)
    return ViewerState(polygons=polygons)


def sent_state(key: str) -> ViewerState | None:
    """What the viewer under widget ``key`` last sent, read from session state (a callback
    runs before the page draws the viewer again); None before it sent anything."""
    value = st.session_state.get(key)
    return _state(value, None) if isinstance(value, dict) else None


_component: Any = None


def _declared() -> Any:
    """The component, declared on first use (so importing this module needs no build)."""
    global _component
    if _component is None:
        if not (BUILD_DIR / "index.html").is_file():
            raise FileNotFoundError(
                f"the viewer's frontend is not built ({BUILD_DIR}): "
                "cd ui/components/viewer/frontend && npm ci && npm run build"
            )
        _component = components.declare_component("lran_viewer", path=str(BUILD_DIR))
    return _component


def viewer(
    image: np.ndarray,
    *,
    mpp: float | None,
    columns: list[str],
    rows: list[str],
    overlays: dict[tuple[str, str], Overlay],
    outlines: Sequence[Outline] = (),
    drawing: list[Polygon] | None = None,
    draw: bool = True,
    height: int = 800,
    key: str | None = None,
    view_key: str | None = None,
) -> ViewerState:
    """Shows ``image`` and a grid of maps with deep zoom, linked views, outlines, a scale bar
    and (when ``draw``) polygon, rectangle and freehand drawing; gives what the reader drew.

    ``image``: (H, W, 3) uint8 at full resolution (up to ~6000 x 6000; sent once as JPEG, the
    browser builds the zoom pyramid). ``mpp``: micrometres per image pixel, or None when
    unknown (then no scale bar, and the viewer says "scale unknown"). ``columns``: one header
    per model; ``rows``: one header per map type; ``overlays``: (row, column) -> Overlay, a
    missing pair is an empty cell ("no map"). ``outlines``: polygons (image px) drawn over
    every pane, each with a checkbox. ``drawing``: the reader's current polygons (image px), to
    show and edit; a new value replaces the drawing in the browser. ``height``: of the
    component in CSS pixels (it grows when the rows need more room). ``key``: the component's
    key (default "lran-viewer"); give distinct keys to several viewers on one page. Without a
    key Streamlit would tie the component's identity to its arguments, remounting the browser
    side (and losing zoom and drawing) whenever a map or the drawing changes. ``view_key``:
    where the reader zooms and pans is kept in the browser tab under this name, and a viewer
    mounted later with the same name opens there (the Review page names it per reader, study
    and case, so that the next reader in the tab starts from the whole image); None keeps
    nothing.
    """
    args = component_args(
        image,
        mpp=mpp,
        columns=columns,
        rows=rows,
        overlays=overlays,
        outlines=outlines,
        drawing=drawing,
        draw=draw,
        height=height,
        view_key=view_key,
    )
    value = _declared()(**args, key=key or DEFAULT_KEY, default=None)
    return _state(value, drawing)
