"""A small Streamlit page of the map viewer alone, with synthetic images, served by
tests/test_browser_viewer.py (and usable by hand: ``streamlit run tests/viewer_app.py``).

A 1200 x 900 tissue-like image, three models x two map types (probability on one shared
scale, CAM on a scale of its own per model), a reference outline and a hidden saved region;
the component's returned state is written below it as JSON for the test to read.

Query parameters: ``mpp=none`` (scale unknown), ``attention=1`` (a third row in which the base
model has no map), ``side=50`` (a square image of that many pixels, as an IDC patch).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import streamlit as st

# Run as a script by `streamlit run`: the project root is not on the path by itself.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ui.components.viewer import COLOUR_STOPS, Legend, Outline, Overlay, viewer

WIDTH, HEIGHT = 1200, 900
MPP = 0.5
COLUMNS = ["ResNet-18", "R-RAN", "R-LRAN"]
CAM_HIGH = {"ResNet-18": 2.5, "R-RAN": 3.75, "R-LRAN": 5.0}
# The reference: a pentagon around the dense blob at (700, 420).
REFERENCE = [(600.0, 330.0), (760.0, 300.0), (860.0, 420.0), (790.0, 540.0), (620.0, 520.0)]
SAVED = [(150.0, 600.0), (350.0, 600.0), (350.0, 800.0), (150.0, 800.0)]


@st.cache_data
def tissue(width: int, height: int, seed: int = 0) -> np.ndarray:
    """An H&E-like image: pink stroma, purple nuclei (dense around (700, 420)), white gaps."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    rgb = np.empty((height, width, 3), np.float32)
    rgb[...] = (236, 190, 215)
    texture = rng.normal(0, 6, (height, width, 1)).astype(np.float32)
    rgb += texture
    dense = np.exp(-(((xx - 700) / 140) ** 2 + ((yy - 420) / 110) ** 2))
    nuclei = rng.uniform(0, 1, (height, width)) < 0.0025 + 0.01 * dense
    centres = np.argwhere(nuclei)
    for y, x in centres[:4000]:
        r = int(rng.integers(3, 7))
        y0, y1, x0, x1 = max(0, y - r), min(height, y + r), max(0, x - r), min(width, x + r)
        disk = (yy[y0:y1, x0:x1] - y) ** 2 + (xx[y0:y1, x0:x1] - x) ** 2 <= r * r
        rgb[y0:y1, x0:x1][disk] = (92, 60, 150)
    gap = np.exp(-(((xx - 250) / 90) ** 2 + ((yy - 220) / 60) ** 2)) > 0.5
    rgb[gap] = (248, 246, 250)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def colourise(values: np.ndarray, cmap: str, alpha: np.ndarray | None = None) -> np.ndarray:
    """Values in [0, 1] through the legend's colour stops: an RGBA (h, w, 4) uint8 map."""
    stops = np.array([[int(c[i : i + 2], 16) for i in (1, 3, 5)] for c in COLOUR_STOPS[cmap]])
    position = np.clip(values, 0, 1) * (len(stops) - 1)
    low = np.floor(position).astype(int).clip(0, len(stops) - 2)
    t = (position - low)[..., None]
    rgb = stops[low] * (1 - t) + stops[low + 1] * t
    a = np.full(values.shape, 255.0) if alpha is None else alpha * 255
    return np.dstack([rgb, a]).round().astype(np.uint8)


@st.cache_data
def maps(attention: bool) -> dict[tuple[str, str], Overlay]:
    """Coarse maps (as a model's grid would give), peaking at the dense blob, a little
    different per model."""
    h, w = 90, 120
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    overlays: dict[tuple[str, str], Overlay] = {}
    for i, column in enumerate(COLUMNS):
        spread = 12 + 4 * i
        peak = np.exp(-(((xx - 70 - 2 * i) / spread) ** 2 + ((yy - 42) / spread) ** 2))
        overlays[("probability", column)] = Overlay(
            colourise(peak, "jet"), Legend("jet", 0.0, 1.0, "probability"), 0.5
        )
        cam = peak**1.5
        overlays[("CAM", column)] = Overlay(
            colourise(cam, "inferno", alpha=0.3 + 0.7 * cam),
            Legend("inferno", 0.0, CAM_HIGH[column], "CAM (a.u.)"),
            0.7,
        )
        if attention and column != "ResNet-18":
            overlays[("attention", column)] = Overlay(
                colourise(1 - peak, "viridis"), Legend("viridis", 0.0, 1.0, "attention"), 0.5
            )
    return overlays


def main() -> None:
    st.set_page_config(page_title="Viewer test", layout="wide")
    params = st.query_params
    mpp = None if params.get("mpp") == "none" else float(params.get("mpp", MPP))
    attention = params.get("attention") == "1"
    rows = ["probability", "CAM", *(["attention"] if attention else [])]
    side = int(params.get("side", 0))
    state = viewer(
        tissue(side, side) if side else tissue(WIDTH, HEIGHT),
        mpp=mpp,
        columns=COLUMNS,
        rows=rows,
        overlays=maps(attention),
        outlines=[
            Outline("reference", (255, 255, 255), [REFERENCE]),
            Outline("saved region", (255, 200, 0), [SAVED], visible=False),
        ],
        height=760,
        key="viewer",
    )
    st.code(json.dumps({"polygons": state.polygons}), language="json")


main()
