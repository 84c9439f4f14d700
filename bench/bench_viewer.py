"""Benchmark of the map viewer component, run by hand: ``python bench/bench_viewer.py``.

Prints:

1. the Python side: how long ``ui.components.viewer`` takes to prepare the component's
   arguments for a synthetic tissue-like 6000 x 6000 image and three 2000 x 2000 maps (JPEG and
   PNG encoding, downsampling, content hashes), first call and cached call (a Streamlit rerun),
   and the bytes sent;
2. in Chromium (Playwright, Debian's /usr/bin/chromium) against ``streamlit run`` of this file:
   the time from navigation until every pane shows the image with its tiles loaded (a first
   load, while the server encodes, then loads with the server's cache warm), and the time from
   a mouse-wheel step over a map pane until every pane has finished animating (0.35 s of spring
   animation) and drawn its tiles at the new zoom (goal: under 1 s), for 14 steps of 1.3x from
   the whole image to beyond native resolution, then the same back out; and how much more memory
   Chromium holds with the page open.

``--rows 4`` shows four rows of maps (13 panes, as probability, CAM, attention and a gate of
three models would), instead of one row (4 panes).

Both tile sources are timed: the component's shared pyramid (one decoded image and its
halvings, cut into 256 px tiles for every pane) and OpenSeadragon's own image tile source
(``{type: "image", buildPyramid: true}``: every pane decodes the image and builds its own
levels), to show why the component does not use the latter. ``--tiles shared`` skips it.

This file is also the Streamlit page it serves (``streamlit run bench/bench_viewer.py``), with
BENCH_VIEWER_SIDE (default 6000) as the image's side.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from appserver import CHROMIUM, CHROMIUM_ARGS, StreamlitServer  # noqa: E402

from ui.components import viewer as component  # noqa: E402

COLUMNS = ["ResNet-18", "R-RAN", "R-LRAN"]
ROWS = ["CAM", "probability", "attention", "gate 1"]
MAP_SIDE = 2000
MPP = 0.25
IFRAME = "iframe[title*='lran_viewer']"


def tissue(side: int, seed: int = 0) -> np.ndarray:
    """A tissue-like (H&E colours, nuclei, gaps) ``side`` x ``side`` RGB image, made in a few
    seconds: smooth stain variation, ~side^2/250 nuclei drawn as ellipses, slight noise."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 1, (side // 300 + 2, side // 300 + 2)).astype(np.float32)
    field = np.asarray(
        Image.fromarray(coarse, "F").resize((side, side), Image.Resampling.BICUBIC), np.float32
    )
    pink = np.array([236, 186, 212], np.float32)
    pale = np.array([246, 228, 238], np.float32)
    weight = np.clip(field, 0, 1)[..., None]
    rgb = (pink * (1 - weight) + pale * weight).astype(np.uint8)
    image = Image.fromarray(rgb)
    draw = ImageDraw.Draw(image)
    count = side * side // 250
    xs, ys = rng.uniform(0, side, count), rng.uniform(0, side, count)
    rs = rng.uniform(3, 8, count)
    shades = rng.integers(0, 50, count)
    for x, y, r, s in zip(xs, ys, rs, shades, strict=True):
        draw.ellipse((x - r, y - r * 0.8, x + r, y + r * 0.8), fill=(70 + s, 40 + s, 130 + s))
    for _ in range(side // 600):
        x, y, r = rng.uniform(0, side), rng.uniform(0, side), rng.uniform(40, 160)
        draw.ellipse((x - r, y - r * 0.6, x + r, y + r * 0.6), fill=(248, 246, 250))
    image = image.filter(ImageFilter.GaussianBlur(0.8))
    out = np.asarray(image).astype(np.int16)
    out += rng.integers(-3, 4, out.shape[:2], dtype=np.int16)[..., None]
    return np.clip(out, 0, 255).astype(np.uint8)


def maps(side: int = MAP_SIDE, rows: int = 1) -> dict[tuple[str, str], component.Overlay]:
    """Three smooth RGBA maps per row (a blob each, turbo colours), ``side`` px square."""
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32) / side
    stops = np.array(
        [[int(c[i : i + 2], 16) for i in (1, 3, 5)] for c in component.COLOUR_STOPS["turbo"]]
    )
    overlays = {}
    for i, column in enumerate(COLUMNS):
        value = np.exp(-(((xx - 0.3 - 0.2 * i) / 0.2) ** 2 + ((yy - 0.5) / 0.25) ** 2))
        position = value * (len(stops) - 1)
        low = np.floor(position).astype(int).clip(0, len(stops) - 2)
        t = (position - low)[..., None]
        rgb = stops[low] * (1 - t) + stops[low + 1] * t
        rgba = np.dstack([rgb, np.full(value.shape, 255.0)]).round().astype(np.uint8)
        for row in ROWS[:rows]:
            # Each map distinct (its own encoding and tiles), as the real maps are.
            overlays[(row, column)] = component.Overlay(
                np.roll(rgba, 37 * ROWS.index(row), axis=1),
                component.Legend("turbo", 0.0, 1.0, row),
                0.5,
            )
    return overlays


def app() -> None:
    """The page the browser part loads."""
    import streamlit as st

    @st.cache_resource
    def inputs(side: int, rows: int) -> tuple[np.ndarray, dict[tuple[str, str], component.Overlay]]:
        return tissue(side), maps(rows=rows)

    st.set_page_config(page_title="Viewer bench", layout="wide")
    rows = int(os.environ.get("BENCH_VIEWER_ROWS", "1"))
    image, overlays = inputs(int(os.environ.get("BENCH_VIEWER_SIDE", "6000")), rows)
    component.viewer(
        image,
        mpp=MPP,
        columns=COLUMNS,
        rows=ROWS[:rows],
        overlays=overlays,
        outlines=[
            component.Outline(
                "reference", (255, 255, 255), [[(1000, 1000), (3000, 1200), (2500, 3500)]]
            )
        ],
        height=800,
        key="bench",
    )


def python_side(side: int, rows: int) -> None:
    started = time.perf_counter()
    image = tissue(side)
    overlays = maps(rows=rows)
    made = time.perf_counter() - started
    print(
        f"synthetic {side} x {side} image and {len(overlays)} maps of {MAP_SIDE} px"
        f" made in {made:.1f} s"
    )
    kwargs: dict[str, Any] = {"mpp": MPP, "columns": COLUMNS, "rows": ROWS[:rows]}
    times = []
    for run in range(4):
        if run == 0:
            component._CACHE.clear()
        started = time.perf_counter()
        args = component.component_args(image, overlays=overlays, **kwargs)
        times.append(time.perf_counter() - started)
    started = time.perf_counter()
    component._digest("image", image)
    digest = time.perf_counter() - started
    jpeg = len(args["image"])
    pngs = [len(args[f"overlay_{i}"]) for i in range(len(overlays))]
    cached = statistics.median(times[1:])
    print("1. Python: prepare the component's arguments (component_args)")
    print(f"   first call (JPEG q{component.JPEG_QUALITY}, {len(pngs)} PNG maps): {times[0]:.2f} s")
    print(f"   cached call (a rerun; content hashes only): median {cached:.3f} s")
    print(f"   (sha256 of the image alone: {digest:.3f} s)")
    print(
        f"   sent: image {jpeg / 1e6:.1f} MB ({jpeg * 8 / (side * side):.2f} bit/px),"
        f" maps {sum(pngs) / 1e3:.0f} kB in all (each at most {component.OVERLAY_MAX_SIDE} px)"
    )


def _load(browser: Any, url: str, tiles: str) -> tuple[Any, Any, float, float]:
    """A new page on the bench app with the given tile source; gives (page, frame, ms from
    navigation start until every pane has its tiles, ms of that from the component's arguments
    arriving: decoding and first tiles)."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(180_000)
    page.add_init_script(f"window.__LRAN_VIEWER_TILES = {tiles!r};")
    page.goto(url)
    started = page.evaluate("performance.timeOrigin")
    iframe = page.locator(IFRAME)
    iframe.wait_for()
    frame = iframe.element_handle().content_frame()
    frame.wait_for_function("() => window.__viewer && window.__viewer.ready()", polling=20)
    stats = frame.evaluate("window.__viewer.stats()")
    return page, frame, stats["firstLoadedAt"] - started, stats["firstLoadedAt"] - stats["buildAt"]


def _zoom(page: Any, frame: Any, steps: int, direction: int) -> list[float]:
    """ms from each wheel step until every pane has animated to the new zoom and drawn its
    tiles there."""
    # Playwright gives the box in the page's coordinates, the iframe's offset included.
    box = frame.locator("[data-testid=viewer-pane][data-kind=map]").nth(1).bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    times = []
    for _ in range(steps):
        before = frame.evaluate("window.__viewer.views()[2].zoom")
        started = frame.evaluate("performance.timeOrigin + performance.now()")
        page.mouse.wheel(0, -100 * direction)
        frame.wait_for_function(
            "z => { const v = window.__viewer; return Math.abs(v.views()[2].zoom / z - 1) > 0.2"
            " && v.settled(); }",
            arg=before,
            polling=10,
        )
        stats = frame.evaluate("window.__viewer.stats()")
        times.append(max(stats["settledAt"], stats["lastDrawAt"]) - started)
    return times


def _chromium_rss() -> float:
    """MB resident in all Chromium processes started by this one (shared pages counted once
    per process: an upper bound, good for comparisons)."""
    import psutil

    processes = psutil.Process().children(recursive=True)
    return sum(p.memory_info().rss for p in processes if "chrom" in p.name().lower()) / 1e6


def _mode(pw: Any, url: str, mode: str) -> None:
    """Loads and zooms with one tile source, in a browser of its own (so that its memory is
    this page's alone)."""
    browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
    try:
        idle = _chromium_rss()
        loads, decodes = [], []
        for attempt in range(4):
            page, frame, ms, decode = _load(browser, url, mode)
            loads.append(ms)
            decodes.append(decode)
            if attempt < 3:
                page.close()
        inward = _zoom(page, frame, 14, +1)
        memory = _chromium_rss() - idle
        outward = _zoom(page, frame, 14, -1)
        final = frame.evaluate("window.__viewer.views()[0].scale")
    finally:
        browser.close()
    print(
        f"   [{mode}] loads: median {statistics.median(loads):.0f} ms"
        f" ({', '.join(f'{x:.0f}' for x in loads)}); from the arguments' arrival to all"
        f" tiles: median {statistics.median(decodes):.0f} ms"
    )
    print(f"   [{mode}] Chromium's memory after zooming in, over an empty browser: {memory:.0f} MB")
    print(
        f"   [{mode}] wheel step until all panes are drawn, zooming in (14 steps of 1.3x):"
        f" median {statistics.median(inward):.0f} ms, max {max(inward):.0f} ms"
        f" ({', '.join(f'{x:.0f}' for x in inward)})"
    )
    print(
        f"   [{mode}] zooming out: median {statistics.median(outward):.0f} ms,"
        f" max {max(outward):.0f} ms; image pane back at {final:.3f} screen px per image px"
    )


def browser_side(side: int, rows: int, modes: list[str]) -> None:
    from playwright.sync_api import sync_playwright

    env = {**os.environ, "BENCH_VIEWER_SIDE": str(side), "BENCH_VIEWER_ROWS": str(rows)}
    log = Path(tempfile.gettempdir()) / "bench-viewer-streamlit.log"
    with StreamlitServer(Path(__file__).resolve(), env, log) as server:
        server.wait(timeout_s=60)
        url = server.url
        with sync_playwright() as pw:
            print(f"2. Chromium: navigation until every pane has its tiles ({1 + 3 * rows} panes)")
            browser = pw.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
            )
            try:
                _, _, first, _ = _load(browser, url, "shared")
                print(f"   first load (the server makes and encodes the image): {first:.0f} ms")
            finally:
                browser.close()
            for mode in modes:
                _mode(pw, url, mode)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--side", type=int, default=6000, help="the image's side, px")
    parser.add_argument("--rows", type=int, default=1, choices=[1, 2, 3, 4], help="map rows")
    parser.add_argument(
        "--tiles", choices=["both", "shared"], default="both", help="tile sources to time"
    )
    args = parser.parse_args()
    python_side(args.side, args.rows)
    modes = ["shared", "osd"] if args.tiles == "both" else ["shared"]
    browser_side(args.side, args.rows, modes)


def _in_streamlit() -> bool:
    try:
        from streamlit import runtime

        return runtime.exists()
    except ImportError:
        return False


if __name__ == "__main__":
    if _in_streamlit():
        app()
    else:
        main()
