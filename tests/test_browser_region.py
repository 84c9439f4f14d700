"""End to end: region review in `streamlit run app.py`, driven by Chromium through Playwright.

An open study is created in a fresh database before the server starts. A reader enters their
name, picks that study in the sidebar and adds a real BACH tile (1000 x 1000 px at 0.47 um/px,
a PNG without resolution tags) on the Worklist page, opens it in Review and types its um/px.
The shipped `idc` models map the region (a column per model in the viewer's grid: probability,
CAM and attention rows); the pathologists' label mask is imported as the reference and its
scores are stored; the reader draws a polygon with the mouse in the viewer, picks a diagnosis
and saves. The test then reads both reviews, the reader's region and every model's scores back
from the database.

Needs /usr/bin/chromium (Playwright's own browser download is never used), the shipped weights
and the BACH tile and its mask under ../shared/data/bach-a03; skips with the reason otherwise.
Screenshots of every step go to test-artifacts/browser-region/ (1600 x 1000).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from appserver import CHROMIUM, CHROMIUM_ARGS
from conftest import TIMEOUT_MS, VARIANTS, streamlit_run
from PIL import Image, ImageDraw
from test_browser_viewer import IFRAME

from annotations.store import Store

ROOT = Path(__file__).resolve().parent.parent
TILES = ROOT.parent / "shared" / "data" / "bach-a03" / "tiles"
TILE = TILES / "A03_8_1.png"
MASK = TILES / "A03_8_1_mask.png"
WEIGHTS = ROOT / "lran_core" / "weights" / "idc"
MPP = 0.47
SIDE = 1000
STUDY = "BACH regions (e2e)"
READER = "dr-e2e"
TITLES = ["ResNet-18", "R-RAN", "R-LRAN"]
ARTIFACTS = ROOT / "test-artifacts" / "browser-region"
# Mapping a megapixel region with three models takes tens of seconds on a busy 2-core machine.
MAP_TIMEOUT_MS = 420_000
# Every model's probability and CAM, and the attention of R-RAN and R-LRAN.
MAP_ROWS = (
    {(v, "probability") for v in VARIANTS}
    | {(v, "cam") for v in VARIANTS}
    | {("resnet18-ran", "attention"), ("resnet18-lran", "attention")}
)
# The region drawn (image px, full resolution): a pentagon over the tumour cells in the tile's
# bottom right, inside the reference (invasive: below the diagonal from (998, 260) to
# (498, 999)).
CORNERS = [(650.0, 700.0), (950.0, 620.0), (960.0, 950.0), (700.0, 960.0), (620.0, 850.0)]

sync_api = pytest.importorskip("playwright.sync_api")
# Retries until the page shows it (5 s by default): the viewer has settled before each check.
expect = sync_api.expect
pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM}"),
    pytest.mark.skipif(
        not (TILE.is_file() and MASK.is_file()),
        reason=f"no BACH tile {TILE.name} and its mask under {TILES} (shared data)",
    ),
    pytest.mark.skipif(
        not all((WEIGHTS / f"{v}.safetensors").is_file() for v in VARIANTS),
        reason=f"the shipped weights of the three idc models are not all in {WEIGHTS}",
    ),
]


def shoelace(polygon: list[tuple[float, float]]) -> float:
    """The area of a polygon (its vertices in order)."""
    return 0.5 * abs(
        sum(
            x0 * y1 - x1 * y0
            for (x0, y0), (x1, y1) in zip(polygon, [*polygon[1:], polygon[0]], strict=True)
        )
    )


@pytest.fixture
def app(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """An open study in a fresh SQLite database, then `streamlit run app.py` on a free port
    over it with the shipped weights; gives (the app's URL, the database URL)."""
    db = f"sqlite:///{tmp_path / 'reviews.sqlite'}"
    Store(db).create_study(STUDY, "IDC", "open", "idc")
    env = {**os.environ, "LRAN_REVIEW_DB": db}
    # The shipped models, local mode, the default tolerance (15 um).
    for name in ("LRAN_MODELS_DIR", "LRAN_AUTH", "LRAN_TOLERANCE_UM"):
        env.pop(name, None)
    log_path = tmp_path / "streamlit.log"
    try:
        with streamlit_run(
            "app.py", env, log_path, args=("--server.fileWatcherType", "none")
        ) as port:
            yield f"http://127.0.0.1:{port}", db
    finally:
        text = log_path.read_text()
        if "Traceback" in text:
            print(text)


def test_reader_reviews_a_bach_region_against_its_reference(app: tuple[str, str]) -> None:
    url, db = app
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()
    timings: dict[str, float] = {}
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.set_default_timeout(TIMEOUT_MS)
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            main = page.get_by_test_id("stMain")

            def shot(name: str) -> None:
                page.screenshot(path=str(ARTIFACTS / f"{name}.png"))

            def settle(timeout: float = TIMEOUT_MS) -> None:
                """Waits for the rerun an action caused to finish."""
                page.wait_for_timeout(700)
                page.wait_for_function(
                    "() => !document.querySelector('[data-testid^=stStatusWidgetRunning]')",
                    timeout=timeout,
                )
                page.wait_for_timeout(300)

            def viewer(columns: int = 0, outlines: int = 0) -> Any:
                """The viewer's frame once its (single) iframe shows ``columns`` model columns
                and ``outlines`` outline checkboxes and every pane has its image. A new layout
                (the maps, an outline) rebuilds the viewer, or Streamlit mounts it again at its
                new height: a frame that goes away meanwhile is looked up again."""
                deadline = time.monotonic() + TIMEOUT_MS / 1000
                while True:
                    try:
                        page.wait_for_function(
                            f'() => document.querySelectorAll("{IFRAME}").length == 1'
                        )
                        frame = page.locator(IFRAME).element_handle().content_frame()
                        frame.wait_for_function(
                            """([columns, outlines]) => window.__viewer
                                && window.__viewer.settled()
                                && document.querySelectorAll(
                                    '[data-testid=column-header]').length == columns
                                && document.querySelectorAll(
                                    '[data-testid=outline-toggle]').length == outlines""",
                            arg=[columns, outlines],
                            timeout=10_000,
                        )
                        return frame
                    except sync_api.Error:
                        if time.monotonic() > deadline:
                            raise
                        page.wait_for_timeout(200)

            page.goto(url)
            page.get_by_role("heading", name="LRAN Review").wait_for()
            reader = page.get_by_role("textbox", name="Reader")
            reader.fill(READER)
            reader.press("Enter")
            settle()

            # The open study, from the sidebar's chooser.
            page.get_by_test_id("stSidebar").get_by_test_id("stSelectbox").click()
            page.get_by_role("option", name=STUDY).click()
            main.get_by_role("heading", name=STUDY).wait_for()
            main.get_by_text("open (maps visible)").wait_for()
            settle()

            page.get_by_text("Add images to this study").click()
            page.locator("input[type=file]").set_input_files(str(TILE))
            page.get_by_role("button", name="Add them").click()
            page.get_by_text("Added 1 case.").wait_for()
            settle()
            # The tile is the study's one case, unread.
            main.get_by_text("0 of 1 done").wait_for()
            shot("01-worklist")

            page.get_by_role("button", name="Next unread case").click()
            page.wait_for_url("**/review*")
            # A PNG has no resolution tags: the page asks for the microns per pixel.
            page.get_by_text("microns per pixel of the image are unknown").wait_for()
            viewer()
            settle()
            assert "Case 1 of 1" in main.inner_text()
            shot("02-mpp-unknown")

            started = time.monotonic()
            mpp = page.get_by_label("µm/px of this image", exact=True)
            mpp.fill(str(MPP))
            mpp.press("Enter")
            # The region's table (one row per model) once every model has mapped it.
            main.get_by_test_id("stTable").get_by_text("R-LRAN", exact=True).wait_for(
                timeout=MAP_TIMEOUT_MS
            )
            settle(MAP_TIMEOUT_MS)
            viewer(columns=3)
            timings["mapping"] = time.monotonic() - started
            ui = page.frame_locator(IFRAME)
            expect(ui.get_by_test_id("column-header")).to_have_text(TITLES)
            expect(ui.get_by_test_id("row-header")).to_have_text(
                ["image", "probability (IDC-positive)", "CAM (IDC-positive)", "attention"]
            )
            # The image, 3 probability maps, 3 CAMs and 2 attention maps (not ResNet-18's).
            expect(ui.get_by_test_id("viewer-pane")).to_have_count(1 + 3 + 3 + 2)
            empty = ui.locator("[data-testid=viewer-empty][data-row=attention]")
            expect(empty).to_have_attribute("data-column", "ResNet-18")
            expect(ui.get_by_test_id("scale-bar")).to_have_count(9)
            expect(page.get_by_test_id("stException")).to_have_count(0)
            shot("03-maps")

            started = time.monotonic()
            reference_uploader = main.get_by_test_id("stFileUploader").filter(
                has_text="Reference annotation"
            )
            reference_uploader.locator("input[type=file]").set_input_files(str(MASK))
            main.get_by_role("heading", name="Agreement with the reference").wait_for(
                timeout=MAP_TIMEOUT_MS
            )
            main.get_by_text(f"Reference: {MASK.name}").wait_for()
            settle(MAP_TIMEOUT_MS)
            timings["reference"] = time.monotonic() - started
            viewer(columns=3, outlines=1)
            # The reference is outlined over every pane, with its checkbox.
            expect(
                ui.get_by_role("checkbox", name="Show outline reference (invasive)")
            ).to_be_checked()
            expect(
                ui.locator("[data-testid=viewer-outline][data-outline^=reference]")
            ).to_have_count(9)
            shot("04-reference")

            page.get_by_role("button", name="Store the reference's scores").click()
            main.get_by_text("Reference scores stored as read 1").wait_for()
            settle()
            expect(main.get_by_role("button", name="Store the reference's scores")).to_have_count(0)
            shot("05-reference-stored")

            # The reader's region: a polygon clicked corner by corner in the image pane.
            iframe = page.locator(IFRAME)
            frame = viewer(columns=3, outlines=1)

            def at(x: float, y: float) -> tuple[float, float]:
                """Page coordinates of image pixel (x, y) in the viewer's image pane."""
                client = frame.evaluate(
                    "([x, y]) => window.__viewer.imageToClient(x, y, '', '')", [x, y]
                )
                box = iframe.bounding_box()
                assert box is not None and client["inside"], client
                return box["x"] + client["x"], box["y"] + client["y"]

            iframe.scroll_into_view_if_needed()
            ui.get_by_role("button", name="Polygon").click()
            for x, y in CORNERS:
                page.mouse.click(*at(x, y))
                page.wait_for_timeout(250)
            page.mouse.click(*at(*CORNERS[0]))  # the first corner again closes it
            frame.wait_for_function("() => window.__viewer.drawing().length == 1")
            settle()
            drawn = frame.evaluate("() => window.__viewer.drawing()")
            assert len(drawn) == 1 and len(drawn[0]) == len(CORNERS), drawn
            for (x, y), (dx, dy) in zip(CORNERS, drawn[0], strict=True):
                assert abs(x - dx) <= 3 and abs(y - dy) <= 3, drawn
            # Filled in the image pane, outlined in the eight map panes.
            expect(ui.locator("[data-kind=image] polygon.drawn.filled")).to_have_count(1)
            expect(ui.locator("[data-kind=map] polygon.drawn")).to_have_count(8)

            # The label buttons' names end with their key ("IDC-positive 2").
            main.get_by_role("button", name=re.compile(r"^IDC-positive")).click()
            settle()
            shot("06-drawn")
            page.get_by_role("button", name="Save read").click()
            main.get_by_text("Saved as read 2, version 1").wait_for(timeout=MAP_TIMEOUT_MS)
            settle()
            expect(page.get_by_test_id("stException")).to_have_count(0)
            shot("07-saved")
            assert not errors, errors
        except Exception:
            shot("failure")
            raise
        finally:
            browser.close()
    print(f"timings (s): {timings}")

    store = Store(db)
    reviews = store.reviews_frame()
    assert len(reviews) == 2, reviews
    reference_row, reader_row = reviews.iloc[0], reviews.iloc[1]
    assert reference_row.reader.startswith("reference:"), reference_row.reader
    assert reference_row.reader == f"reference:{MASK.name}" and reference_row.is_reference
    assert reference_row.imported_by == READER and reference_row.label == "invasive"
    assert (reader_row.reader, reader_row.label) == (READER, "IDC-positive")
    assert not reader_row.is_reference
    assert set(reviews["kind"]) == {"region"} and set(reviews["mpp"]) == {MPP}
    assert set(reviews["filename"]) == {TILE.name}
    assert set(reviews["width"]) == {SIDE} and set(reviews["height"]) == {SIDE}

    reference = np.asarray(Image.open(MASK)) > 0
    np.testing.assert_array_equal(store.get_mask(int(reference_row.review_id)), reference)
    # The reader's region, in the tile's own (full-resolution) pixels: the pentagon clicked,
    # give or take the mouse's rounding (under 2 image px at the image pane's zoom).
    mask = store.get_mask(int(reader_row.review_id))
    assert mask.shape == (SIDE, SIDE)
    canvas = Image.new("1", (SIDE, SIDE), 0)
    ImageDraw.Draw(canvas).polygon(CORNERS, fill=1)
    expected = np.asarray(canvas, bool)
    area = shoelace(CORNERS)
    assert abs(int(mask.sum()) - area) <= 0.03 * area, (int(mask.sum()), area)
    iou = (mask & expected).sum() / (mask | expected).sum()
    assert iou >= 0.97, iou
    rows, cols = np.nonzero(mask)
    assert abs(rows.min() - 620) <= 4 and abs(rows.max() - 960) <= 4, (rows.min(), rows.max())
    assert abs(cols.min() - 620) <= 4 and abs(cols.max() - 960) <= 4, (cols.min(), cols.max())
    # Drawn over the tumour: almost all of it inside the reference.
    assert (mask & reference).sum() >= 0.95 * mask.sum()

    scores = store.scores_frame()
    for who in (reference_row.reader, READER):
        mine = scores[scores["reader"] == who]
        assert len(mine) == len(MAP_ROWS), mine[["model", "map"]]
        assert set(zip(mine["model"], mine["map"], strict=True)) == MAP_ROWS
        assert (mine["tolerance_um"] == 15.0).all(), mine["tolerance_um"]
        # 15 um at 0.47 um/px, in the region's own pixels.
        assert np.allclose(mine["tolerance_px"], 15 / MPP), mine["tolerance_px"]
        assert mine["auroc"].notna().all()
    predictions = store.predictions_frame()
    assert set(predictions["reader"]) == {READER}
    assert set(predictions["model"]) == set(VARIANTS)
