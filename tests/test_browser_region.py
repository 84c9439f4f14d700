"""End to end: region review in `streamlit run app.py`, driven by Chromium through Playwright.

A reader uploads a real BACH tile (1000 x 1000 px at 0.47 um/px, no resolution tags, so the
reader types the mpp), imports its pathologists' label mask as the reference, sees the three
models' stitched probability, CAM and attention maps with the reference outlined, stores the
reference's scores, draws a region (freehand), labels and saves; the test then finds both
reviews and their scores in the database.

Needs /usr/bin/chromium and the BACH tiles under ../shared/data/bach-a03; skips with the reason
otherwise. Screenshots of every step go to test-artifacts/browser-region/.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from conftest import CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS, VARIANTS
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
TILES = ROOT.parent / "shared" / "data" / "bach-a03" / "tiles"
TILE = TILES / "A03_8_1.png"
MASK = TILES / "A03_8_1_mask.png"
MPP = 0.47
ARTIFACTS = ROOT / "test-artifacts" / "browser-region"
MAP_ROWS = (
    {(v, "probability") for v in VARIANTS}
    | {(v, "cam") for v in VARIANTS}
    | {("resnet18-ran", "attention"), ("resnet18-lran", "attention")}
)

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM}"),
    pytest.mark.skipif(
        not (TILE.is_file() and MASK.is_file()),
        reason=f"no BACH tile {TILE.name} and its mask under {TILES} (shared data)",
    ),
]


def test_reader_reviews_a_bach_region_against_its_reference(server: tuple[str, str]) -> None:
    url, db = server
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(TIMEOUT_MS)
            # The canvas reports how it fitted its background once it is mounted, and that
            # report is a rerun of its own: an action made meanwhile may be lost in it.
            fitted: list[bool] = []
            page.on(
                "websocket",
                lambda ws: ws.on(
                    "framesent",
                    lambda frame: fitted.append(
                        "backgroundFit"
                        in (frame if isinstance(frame, str) else frame.decode("latin-1"))
                    ),
                ),
            )

            def shot(name: str) -> None:
                page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

            def settle() -> None:
                """Waits for the rerun an action caused (see tests/test_browser_review.py)."""
                page.wait_for_timeout(700)
                page.wait_for_function(
                    "() => !document.querySelector('[data-testid^=stStatusWidgetRunning]')"
                )
                page.wait_for_timeout(300)

            def images(count: int) -> None:
                page.wait_for_function(
                    "n => document.querySelectorAll('[data-testid=stMain] [data-testid=stImage] "
                    "img').length >= n",
                    arg=count,
                )

            page.goto(url)
            page.get_by_role("heading", name="LRAN Review").wait_for()
            reader = page.get_by_role("textbox", name="Reader")
            reader.fill("dr-e2e")
            reader.press("Enter")
            settle()

            page.locator("input[type=file]").set_input_files(str(TILE))
            page.get_by_text("larger than the models' patch").wait_for()
            shot("01-uploaded")

            page.get_by_role("link", name="Review these images").click()
            # A PNG has no resolution tags: the page asks for the microns per pixel.
            page.get_by_text("microns per pixel of the image are unknown").wait_for()
            shot("02-mpp-unknown")
            mpp = page.get_by_label("µm/px of this image", exact=True)
            mpp.fill(str(MPP))
            mpp.press("Enter")
            # The region, then 3 probability maps, 3 CAMs and 2 attention maps.
            images(9)
            deadline = time.monotonic() + TIMEOUT_MS / 1000
            while not any(fitted):
                assert time.monotonic() < deadline, "the canvas never reported its mount"
                page.wait_for_timeout(100)
            settle()
            started = time.monotonic()
            page.locator("input[type=file]").set_input_files(str(MASK))
            page.get_by_text("region, reference outlined").wait_for()
            page.get_by_text("Agreement with the reference").wait_for()
            images(9)
            settle()
            reference_s = time.monotonic() - started
            for caption in (
                "ResNet-18 probability (IDC-positive)",
                "R-RAN CAM (IDC-positive)",
                "R-LRAN attention",
            ):
                assert page.get_by_text(caption, exact=True).count() == 1
            # The page scrolls inside Streamlit's main container: one shot per part of it.
            shot("03-region-with-reference")
            page.get_by_text("R-RAN CAM (IDC-positive)", exact=True).scroll_into_view_if_needed()
            shot("04-maps")
            page.get_by_text("R-LRAN attention", exact=True).scroll_into_view_if_needed()
            shot("05-attention")

            page.get_by_role("button", name="Store the reference's scores").click()
            page.get_by_text("Reference scores stored as review").wait_for()
            settle()
            shot("06-reference-stored")

            canvas = page.locator("canvas.upper-canvas")
            canvas.scroll_into_view_if_needed()
            box = canvas.bounding_box()
            assert box is not None
            x0, y0, w, h = box["x"], box["y"], box["width"], box["height"]
            # A freehand loop (the default tool, so no tool switch to wait for) around the
            # right half of the tile's top third; the region is what it encloses.
            corners = [(0.5, 0.05), (0.95, 0.05), (0.95, 0.33), (0.5, 0.33), (0.5, 0.05)]
            page.mouse.move(x0 + corners[0][0] * w, y0 + corners[0][1] * h)
            page.mouse.down()
            for fx, fy in corners[1:]:
                page.mouse.move(x0 + fx * w, y0 + fy * h, steps=12)
            page.mouse.up()
            settle()
            diagnosis = page.get_by_test_id("stRadio").filter(has_text="Your diagnosis")
            diagnosis.get_by_text("IDC-positive", exact=True).click()
            settle()
            page.get_by_role("button", name="Save review").click()
            page.get_by_text("Saved as review").wait_for()
            shot("07-saved")
        except Exception:
            shot("failure")
            raise
        finally:
            browser.close()
    print(f"reference import to maps outlined and scored: {reference_s:.1f} s")

    from annotations.store import Store

    store = Store(db)
    reviews = store.reviews_frame().set_index("reader")
    assert list(reviews.index) == ["reference:A03_8_1_mask.png", "dr-e2e"]
    assert set(reviews["kind"]) == {"region"} and set(reviews["mpp"]) == {MPP}
    assert set(reviews["width"]) == {1000} and set(reviews["filename"]) == {TILE.name}
    assert reviews.loc["reference:A03_8_1_mask.png", "label"] == "invasive"
    assert reviews.loc["dr-e2e", "label"] == "IDC-positive"
    reference = np.asarray(Image.open(MASK)) > 0
    np.testing.assert_array_equal(
        store.get_mask(int(reviews.loc["reference:A03_8_1_mask.png", "review_id"])), reference
    )
    drawn = store.get_mask(int(reviews.loc["dr-e2e", "review_id"]))
    assert drawn[100:300, 550:900].all() and not drawn[400:].any() and not drawn[:, :450].any()
    scores = store.scores_frame()
    for reader in reviews.index:
        mine = scores[scores["reader"] == reader]
        assert set(zip(mine["model"], mine["map"], strict=True)) == MAP_ROWS
        assert mine["auroc"].notna().all()
