"""The map viewer component in Chromium: `streamlit run tests/viewer_app.py` (a synthetic
1200 x 900 image, three models x two map types, two outlines) driven through Playwright.

Checks the grid's alignment and colour bars, linked zoom across panes, outline toggles, the
scale bar, and that polygons, rectangles and freehand strokes come back to Python in image
pixels. Coordinates are converted image px -> screen through the viewer's own viewport
(``window.__viewer`` inside the component's iframe). Screenshots go to test-artifacts/viewer/.

The browser tests need /usr/bin/chromium and Playwright's Python package, and skip with the
reason otherwise; the tests of the Python wrapper (encoding, downsampling, caching, the value
coming back) run without them.
"""

from __future__ import annotations

import io
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from appserver import CHROMIUM, CHROMIUM_ARGS
from conftest import streamlit_run
from PIL import Image

from ui.components import viewer as component

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "tests" / "viewer_app.py"
ARTIFACTS = ROOT / "test-artifacts" / "viewer"
COLUMNS = ["ResNet-18", "R-RAN", "R-LRAN"]
MPP = 0.5
IFRAME = "iframe[title*='lran_viewer']"
TIMEOUT_MS = 60_000

try:
    from playwright import sync_api
except ImportError:  # the browser tests skip; the wrapper's tests still run
    sync_api = None


@pytest.fixture(scope="module")
def viewer_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`streamlit run tests/viewer_app.py` on a free port, for the whole module."""
    log_path = tmp_path_factory.mktemp("viewer-app") / "streamlit.log"
    with streamlit_run(APP, dict(os.environ), log_path, startup_s=60) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if sync_api is None:
        pytest.skip("playwright is not installed (pip install playwright; no browser download)")
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


class Viewer:
    """A page showing the viewer app, its component's frame, and conversions to the page."""

    def __init__(self, browser: Any, url: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page = browser.new_page(viewport={"width": 1400, "height": 1000})
        self.page.set_default_timeout(TIMEOUT_MS)
        self.errors: list[str] = []
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.goto(url)
        self.iframe = self.page.locator(IFRAME)
        self.iframe.wait_for()
        self.frame = self.iframe.element_handle().content_frame()
        self.ui = self.page.frame_locator(IFRAME)
        self.frame.wait_for_function("() => window.__viewer && window.__viewer.ready()")
        self.page.get_by_test_id("stCode").wait_for()

    def hook(self, expression: str, arg: Any = None) -> Any:
        """Evaluates ``expression`` (a function of ``v``, the hook, and ``a``) in the frame."""
        return self.frame.evaluate(
            f"([a]) => {{ const v = window.__viewer; return {expression}; }}", [arg]
        )

    def views(self) -> list[dict[str, Any]]:
        return self.hook("v.views()")

    def settle(self) -> None:
        """Waits until no pane animates and every pane has its tiles."""
        self.page.wait_for_timeout(150)
        self.frame.wait_for_function("() => window.__viewer.settled()")

    def to_page(self, x: float, y: float, row: str = "", column: str = "") -> tuple[float, float]:
        """Page coordinates of image pixel (x, y) in a pane (the image pane by default)."""
        client = self.hook("v.imageToClient(a[0], a[1], a[2], a[3])", [x, y, row, column])
        assert client["inside"], f"image px ({x}, {y}) is outside the pane {row}/{column}"
        box = self.iframe.bounding_box()
        assert box is not None
        return box["x"] + client["x"], box["y"] + client["y"]

    def state(self) -> dict[str, Any]:
        """What the app received from the component (its st.code block)."""
        return json.loads(self.page.get_by_test_id("stCode").inner_text())

    def wait_state(self, accept: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        deadline = time.monotonic() + TIMEOUT_MS / 1000
        while True:
            try:
                state = self.state()
                if accept(state):
                    return state
            except (json.JSONDecodeError, sync_api.Error):
                pass  # the block is being redrawn by a rerun
            assert time.monotonic() < deadline, f"the app never got the expected value: {state}"
            self.page.wait_for_timeout(100)

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    def close(self) -> None:
        assert not self.errors, self.errors
        self.page.close()


@pytest.fixture
def viewer(request: pytest.FixtureRequest, browser: Any, viewer_url: str) -> Iterator[Viewer]:
    """A fresh page of the viewer app; a screenshot is kept when the test fails."""
    failed = request.session.testsfailed
    v = Viewer(browser, viewer_url)
    yield v
    if request.session.testsfailed > failed:
        v.shot(f"failure-{request.node.name}")
    v.close()


def shoelace(polygon: list[list[float]] | list[tuple[float, float]]) -> float:
    return 0.5 * abs(
        sum(
            x0 * y1 - x1 * y0
            for (x0, y0), (x1, y1) in zip(polygon, [*polygon[1:], polygon[0]], strict=True)
        )
    )


def test_grid_aligns_models_and_shows_colour_bars_and_scale(viewer: Viewer) -> None:
    ui = viewer.ui
    headers = ui.get_by_test_id("column-header")
    assert headers.all_inner_texts() == COLUMNS
    boxes = [headers.nth(i).bounding_box() for i in range(3)]
    assert all(b is not None for b in boxes)
    assert max(b["y"] for b in boxes) - min(b["y"] for b in boxes) < 0.5
    assert boxes[0]["x"] < boxes[1]["x"] < boxes[2]["x"]
    # Under each header, the panes of that model, one per row, in the same column.
    for i, column in enumerate(COLUMNS):
        for row in ("probability", "CAM"):
            pane = ui.locator(
                f"[data-testid=viewer-pane][data-row='{row}'][data-column='{column}']"
            )
            box = pane.bounding_box()
            assert box is not None
            assert abs(box["x"] + box["width"] / 2 - (boxes[i]["x"] + boxes[i]["width"] / 2)) < 2
    assert ui.get_by_test_id("viewer-pane").count() == 7
    assert ui.get_by_test_id("row-header").all_inner_texts() == ["image", "probability", "CAM"]

    # Probability: one scale for the row; CAM: one per model.
    shared = ui.locator("[data-testid=colour-bar][data-row=probability]")
    assert shared.count() == 1
    assert shared.get_by_test_id("legend-low").inner_text() == "0"
    assert shared.get_by_test_id("legend-high").inner_text() == "1"
    assert shared.get_by_test_id("legend-label").inner_text() == "probability"
    cams = ui.locator("[data-testid=colour-bar][data-row=CAM]")
    assert cams.count() == 3
    assert [cams.nth(i).get_attribute("data-column") for i in range(3)] == COLUMNS
    assert cams.get_by_test_id("legend-high").all_inner_texts() == ["2.5", "3.75", "5"]
    assert set(cams.get_by_test_id("legend-low").all_inner_texts()) == {"0"}
    assert set(cams.get_by_test_id("legend-label").all_inner_texts()) == {"CAM (a.u.)"}
    ramp = shared.locator(".ramp").evaluate("e => getComputedStyle(e).backgroundImage")
    assert ramp.startswith("linear-gradient") and "rgb(0, 0, 128)" in ramp  # jet's first stop

    # The scale bar's length is its label at the pane's magnification.
    image_view = viewer.views()[0]
    scale_bar = ui.locator("[data-testid=viewer-pane][data-kind=image] [data-testid=scale-bar]")
    label = scale_bar.locator("span").inner_text()
    value, unit = label.split()
    assert unit == "µm"
    width = scale_bar.locator(".bar").bounding_box()["width"]
    assert width == pytest.approx(float(value) / MPP * image_view["scale"], abs=1.0)
    assert ui.get_by_test_id("scale-bar").count() == 7
    assert ui.get_by_test_id("scale-unknown").count() == 0
    viewer.shot("01-grid")


def test_unknown_scale_and_a_missing_map(browser: Any, viewer_url: str) -> None:
    v = Viewer(browser, f"{viewer_url}/?mpp=none&attention=1")
    try:
        ui = v.ui
        assert ui.get_by_test_id("scale-unknown").inner_text() == "scale unknown"
        assert ui.get_by_test_id("scale-bar").count() == 0
        empty = ui.locator("[data-testid=viewer-empty][data-row=attention]")
        assert empty.get_attribute("data-column") == "ResNet-18"
        assert empty.inner_text() == "no map"
        # The empty cell keeps the row aligned: same top and size as its neighbours.
        boxes = [empty.bounding_box()] + [
            ui.locator(
                f"[data-testid=viewer-pane][data-row=attention][data-column='{c}']"
            ).bounding_box()
            for c in COLUMNS[1:]
        ]
        assert max(b["y"] for b in boxes) - min(b["y"] for b in boxes) < 0.5
        assert max(b["height"] for b in boxes) - min(b["height"] for b in boxes) < 0.5
        assert boxes[0]["x"] < boxes[1]["x"] < boxes[2]["x"]
        v.shot("02-scale-unknown-missing-map")
    finally:
        v.close()


def test_zooming_one_pane_zooms_all(viewer: Viewer) -> None:
    before = viewer.views()
    x, y = viewer.to_page(700, 420, "CAM", "R-RAN")
    viewer.page.mouse.move(x, y)
    for _ in range(3):
        viewer.page.mouse.wheel(0, -120)
        viewer.page.wait_for_timeout(50)
    viewer.frame.wait_for_function(
        "z => window.__viewer.views().every((p, i) => p.zoom > z[i] * 1.5)",
        arg=[p["zoom"] for p in before],
    )
    viewer.settle()
    after = viewer.views()
    source = next(p for p in after if p["row"] == "CAM" and p["column"] == "R-RAN")
    previous = next(p for p in before if p["row"] == "CAM" and p["column"] == "R-RAN")
    # Three wheel steps of 1.3 each, towards the pointer.
    assert source["zoom"] == pytest.approx(previous["zoom"] * 1.3**3, rel=0.02)
    maps = [p for p in after if p["kind"] == "map"]
    assert len(maps) == 6
    for pane in maps:
        assert pane["zoom"] == pytest.approx(source["zoom"], rel=1e-9)
        assert pane["bounds"] == pytest.approx(source["bounds"], abs=1e-6)
    image = after[0]
    assert image["kind"] == "image"
    assert image["center"] == pytest.approx(source["center"], abs=1e-6)
    # The image pane, of another shape, zoomed in by the same factor about the same point.
    assert image["zoom"] == pytest.approx(before[0]["zoom"] * 1.3**3, rel=0.02)
    # The point under the pointer stays under it (zoom about the pointer).
    assert viewer.to_page(700, 420, "CAM", "R-RAN") == pytest.approx((x, y), abs=2)
    viewer.shot("03-zoomed")

    # Zooming stays in the browser: no value is sent, so the page does not run again.
    viewer.page.wait_for_timeout(600)
    assert viewer.hook("v.stats().reports") == 0

    # Panning the image pane (a drag) moves every map too.
    ax, ay = viewer.to_page(600, 450)
    viewer.page.mouse.move(ax, ay)
    viewer.page.mouse.down()
    viewer.page.mouse.move(ax - 120, ay - 40, steps=8)
    viewer.page.mouse.up()
    viewer.settle()
    panned = viewer.views()
    assert panned[0]["center"][0] > image["center"][0] + 50
    for pane in panned[1:]:
        assert pane["center"] == pytest.approx(panned[0]["center"], abs=1e-6)
    # A pan changes no pane's zoom, whichever pane leads (the maps used to take the image
    # pane's wider bounds as theirs, and zoomed out).
    for pane, earlier in zip(panned, after, strict=True):
        assert pane["zoom"] == pytest.approx(earlier["zoom"], rel=0.01), pane

    # Zooming in on the image pane now zooms every map in by the same factor (fitting one
    # pane's bounds into panes of another shape had widened the view at each change of pane:
    # the maps zoomed out).
    ix, iy = viewer.to_page(600, 450)
    viewer.page.mouse.move(ix, iy)
    viewer.page.mouse.wheel(0, -120)
    viewer.frame.wait_for_function(
        "z => window.__viewer.views()[0].zoom > z * 1.2", arg=panned[0]["zoom"]
    )
    viewer.settle()
    for pane, earlier in zip(viewer.views(), panned, strict=True):
        assert pane["zoom"] == pytest.approx(earlier["zoom"] * 1.3, rel=0.02), pane


def test_a_small_patch_zooms_past_fit(browser: Any, viewer_url: str) -> None:
    # A 50 px patch fits its pane at about 10 screen pixels per pixel; the zoom used to stop
    # there (OpenSeadragon's 4 px per pixel), so its cells could not be looked at closer.
    v = Viewer(browser, f"{viewer_url}/?side=50")
    try:
        before = v.views()
        box = v.ui.locator("[data-testid=viewer-pane][data-kind=image]").bounding_box()
        assert box is not None
        v.page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        for _ in range(12):
            v.page.mouse.wheel(0, -120)
            v.page.wait_for_timeout(50)
        v.settle()
        after = v.views()
        for pane, fit in zip(after, before, strict=True):
            # 1.3 ** 12 = 23 asked for; stopped at 4 times fit, in every pane.
            assert pane["zoom"] == pytest.approx(4 * fit["zoom"], rel=0.02), pane
        v.shot("03b-small-patch-zoomed")
    finally:
        v.close()


def test_outline_checkbox_hides_it_in_every_pane(viewer: Viewer) -> None:
    ui = viewer.ui
    reference = ui.locator("[data-testid=viewer-outline][data-outline=reference]")
    saved = ui.locator("[data-testid=viewer-outline][data-outline='saved region']")
    assert reference.count() == 7 and saved.count() == 7
    for i in range(7):
        sync_api.expect(reference.nth(i)).to_be_visible()
        sync_api.expect(saved.nth(i)).to_be_hidden()
    # Drawn where it is in every pane: its box is the reference's (600..860, 300..540 image
    # px) on screen, give or take the lines' width.
    for i, pane in enumerate(viewer.views()):
        left, top = viewer.to_page(600, 300, pane["row"], pane["column"])
        right, bottom = viewer.to_page(860, 540, pane["row"], pane["column"])
        box = reference.nth(i).bounding_box()
        assert box is not None
        assert [box["x"], box["y"]] == pytest.approx([left, top], abs=3)
        assert [box["x"] + box["width"], box["y"] + box["height"]] == pytest.approx(
            [right, bottom], abs=3
        )
    box = ui.get_by_role("checkbox", name="Show outline reference")
    assert box.is_checked()
    box.uncheck()
    for i in range(7):
        sync_api.expect(reference.nth(i)).to_be_hidden()
    ui.get_by_role("checkbox", name="Show outline saved region").check()
    for i in range(7):
        sync_api.expect(saved.nth(i)).to_be_visible()
    viewer.shot("04-outlines-toggled")
    box.check()
    for i in range(7):
        sync_api.expect(reference.nth(i)).to_be_visible()


def test_drawn_shapes_come_back_in_image_pixels(viewer: Viewer) -> None:
    ui = viewer.ui
    page = viewer.page
    # Zoomed in so that the shapes are drawn at about 0.7 screen px per image px.
    viewer.hook("v.fit(450, 250, 500, 350)")
    viewer.settle()

    ui.get_by_role("button", name="Polygon").click()
    placed = [(500.0, 300.0), (800.0, 280.0), (900.0, 450.0), (700.0, 560.0), (520.0, 500.0)]
    for x, y in placed:
        page.mouse.click(*viewer.to_page(x, y))
    page.mouse.move(*viewer.to_page(560, 330))
    assert ui.locator("[data-kind=image] .draft .vertex").count() == len(placed)
    viewer.shot("05-polygon-draft")
    # Clicking the first vertex again closes the polygon.
    page.mouse.click(*viewer.to_page(*placed[0]))
    state = viewer.wait_state(lambda s: len(s["polygons"]) == 1)
    polygon = state["polygons"][0]
    assert len(polygon) == len(placed)
    for (x, y), (px, py) in zip(polygon, placed, strict=True):
        assert math.hypot(x - px, y - py) <= 2, (polygon, placed)
    assert shoelace(polygon) == pytest.approx(shoelace(placed), rel=0.02)

    ui.get_by_role("button", name="Rectangle").click()
    page.mouse.move(*viewer.to_page(100, 300))
    page.mouse.down()
    page.mouse.move(*viewer.to_page(250, 340), steps=6)
    page.mouse.move(*viewer.to_page(400, 390), steps=6)
    page.mouse.up()
    state = viewer.wait_state(lambda s: len(s["polygons"]) == 2)
    rectangle = state["polygons"][1]
    corners = [(100, 300), (400, 300), (400, 390), (100, 390)]
    assert len(rectangle) == 4
    for x, y in corners:
        assert min(math.hypot(x - rx, y - ry) for rx, ry in rectangle) <= 2, rectangle
    assert shoelace(rectangle) == pytest.approx(300 * 90, rel=0.02)

    # A freehand loop around (1000, 420), radius 50, not closed by hand: it closes itself.
    ui.get_by_role("button", name="Freehand").click()
    loop = [
        (1000 + 50 * math.cos(2 * math.pi * k / 60), 420 + 50 * math.sin(2 * math.pi * k / 60))
        for k in range(58)
    ]
    page.mouse.move(*viewer.to_page(*loop[0]))
    page.mouse.down()
    for point in loop[1:]:
        page.mouse.move(*viewer.to_page(*point))
    page.mouse.up()
    state = viewer.wait_state(lambda s: len(s["polygons"]) == 3)
    stroke = state["polygons"][2]
    assert len(stroke) >= 8
    assert shoelace(stroke) == pytest.approx(math.pi * 50**2, rel=0.05)

    # Filled in the image pane, outlined in the six map panes.
    assert ui.locator("[data-kind=image] polygon.drawn.filled").count() == 3
    assert ui.locator("[data-kind=map] polygon.drawn").count() == 18
    assert ui.locator("[data-kind=map] polygon.drawn.filled").count() == 0
    viewer.shot("06-drawn")

    ui.get_by_role("button", name="Undo").click()
    state = viewer.wait_state(lambda s: len(s["polygons"]) == 2)
    assert state["polygons"][1] == rectangle
    ui.get_by_role("button", name="Clear").click()
    viewer.wait_state(lambda s: s["polygons"] == [])
    assert ui.locator("polygon.drawn").count() == 0

    # Corners clicked in quick succession a few pixels apart (the third and fourth: 18 image
    # px, about 5 screen px at this zoom) are corners, not a double-click that closes the
    # polygon. OpenSeadragon pairs clicks (1-2, 3-4) when it looks for double-clicks.
    ui.get_by_role("button", name="Polygon").click()
    corners = [(500.0, 300.0), (800.0, 300.0), (800.0, 482.0), (800.0, 500.0), (650.0, 500.0)]
    for x, y in [viewer.to_page(x, y) for x, y in corners]:
        page.mouse.click(x, y)
    assert ui.locator("[data-kind=image] .draft .vertex").count() == 5
    assert viewer.hook("v.drawing().length") == 0
    # Left open, the polygon is closed and sent when the reader leaves the viewer (here a
    # click on the page below it; a click on Save or on a diagnosis does the same).
    page.get_by_test_id("stCode").click()
    state = viewer.wait_state(lambda s: len(s["polygons"]) == 1)
    assert len(state["polygons"][0]) == 5


# ---- the Python wrapper, without a browser ---------------------------------------------------


def test_arguments_are_compact_and_cached() -> None:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (900, 1200, 3), dtype=np.uint8)
    big_map = rng.integers(0, 255, (2000, 3000, 4), dtype=np.uint8)
    small_map = rng.integers(0, 255, (60, 80, 4), dtype=np.uint8)
    legend = component.Legend("jet", 0.0, 1.0, "probability")
    overlays = {
        ("probability", "R-RAN"): component.Overlay(big_map, legend, 0.5),
        ("CAM", "R-LRAN"): component.Overlay(small_map, legend, 1.5),
    }
    kwargs: dict[str, Any] = {
        "mpp": 0.5,
        "columns": COLUMNS,
        "rows": ["probability", "CAM"],
        "overlays": overlays,
        "outlines": [component.Outline("ref", (255, 0, 0), [[(1, 2), (3.333, 4), (5, 6)]])],
    }
    args = component.component_args(image, **kwargs)
    assert args["image"][:3] == b"\xff\xd8\xff" and args["image_type"] == "image/jpeg"
    assert (args["image_width"], args["image_height"]) == (1200, 900)
    # Maps: at most 1024 px on the longer side, aspect kept; small ones as they are.
    big = Image.open(io.BytesIO(args["overlay_0"]))
    assert (big.format, big.mode, big.size) == ("PNG", "RGBA", (1024, 683))
    assert Image.open(io.BytesIO(args["overlay_1"])).size == (80, 60)
    cells = {(c["row"], c["column"]): c for c in args["cells"]}
    assert set(cells) == set(overlays)  # the other four cells are empty
    assert cells[("CAM", "R-LRAN")]["opacity"] == 1.0
    assert cells[("probability", "R-RAN")]["legend"]["stops"][0] == "#000080"
    assert args["outlines"][0] == {
        "name": "ref",
        "colour": "#ff0000",
        "visible": True,
        "polygons": [[[1.0, 2.0], [3.33, 4.0], [5.0, 6.0]]],
    }
    # A rerun sends the very same encoded bytes, without encoding again.
    again = component.component_args(image, **kwargs)
    assert again["image"] is args["image"] and again["overlay_0"] is args["overlay_0"]
    changed = image.copy()
    changed[0, 0, 0] ^= 1
    assert component.component_args(changed, **kwargs)["image_key"] != args["image_key"]
    # A tiny patch is sent lossless.
    patch = component.component_args(image[:50, :50], **{**kwargs, "overlays": {}})
    assert patch["image_type"] == "image/png"
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(patch["image"]))), image[:50, :50])


def test_arguments_are_checked() -> None:
    image = np.zeros((10, 10, 3), np.uint8)
    legend = component.Legend("jet", 0.0, 1.0, "p")
    overlay = component.Overlay(np.zeros((4, 4, 4), np.uint8), legend)
    base: dict[str, Any] = {"mpp": None, "columns": ["a"], "rows": ["r"]}
    with pytest.raises(ValueError, match="not in the rows x columns"):
        component.component_args(image, overlays={("r", "b"): overlay}, **base)
    with pytest.raises(ValueError, match="image must be"):
        component.component_args(image[..., 0], overlays={}, **base)
    with pytest.raises(ValueError, match="unknown colour map"):
        component.Legend("nope", 0, 1, "p").colours()
    assert component.Legend("nope", 0, 1, "p", ("#000", "#fff")).colours() == ("#000", "#fff")
    assert component.component_args(image, overlays={}, **base)["mpp"] is None


def test_the_value_comes_back_as_a_state() -> None:
    drawing = [[(1.0, 2.0), (3.0, 4.0), (5.0, 0.0)]]
    before = component._state(None, drawing)
    assert before == component.ViewerState(polygons=drawing, sent=False)
    value = {
        "polygons": [[[0, 0], [10, 0], [10, 5]], [[1, 1]], "junk", [[0, 0], [1, "x"], [2, 2]]],
    }
    state = component._state(value, drawing)
    assert state.polygons == [[(0.0, 0.0), (10.0, 0.0), (10.0, 5.0)]]
    assert state.sent
