"""End to end: `streamlit run app.py` driven by Chromium through Playwright (sync API).

A reader enters their name, uploads a real IDC patch, sees three models' predictions and the
maps, draws two rectangles on the Review page's canvas with the mouse, undoes the second with
the canvas toolbar, gives a label and saves; the test then reads the review, its mask and its
scores back from the database.

Needs /usr/bin/chromium (Debian package; Playwright's own browser download is never used) and
the real data under ../shared/data/idc; skips with the reason otherwise. Screenshots of every
step go to test-artifacts/browser-review/.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS, VARIANTS
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "idc"
ARTIFACTS = ROOT / "test-artifacts" / "browser-review"

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM}"),
    pytest.mark.skipif(not DATA.is_dir(), reason=f"no IDC patches at {DATA} (shared data)"),
]


def real_patch() -> Path:
    """A full-size (50 x 50) IDC-positive patch from the shared data."""
    for path in sorted(DATA.rglob("*_class1.png")):
        with Image.open(path) as img:
            if img.size == (50, 50):
                return path
    pytest.skip(f"no 50 x 50 IDC-positive patch under {DATA}")


def test_reader_draws_labels_and_saves_a_review(server: tuple[str, str]) -> None:
    url, db = server
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    patch = real_patch()
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(TIMEOUT_MS)

            def shot(name: str) -> None:
                page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

            def settle() -> None:
                """Waits for the rerun an action caused: a gesture made while the page still
                runs can land on widgets about to change (a tool switch mid-drag)."""
                page.wait_for_timeout(700)
                page.wait_for_function(
                    "() => !document.querySelector('[data-testid^=stStatusWidgetRunning]')"
                )
                page.wait_for_timeout(300)

            page.goto(url)
            page.get_by_role("heading", name="LRAN Review").wait_for()
            reader = page.get_by_role("textbox", name="Reader")
            reader.fill("dr-e2e")
            reader.press("Enter")
            settle()
            shot("01-start")

            page.locator("input[type=file]").set_input_files(str(patch))
            # One row per model in the probability table.
            table = page.get_by_test_id("stTable")
            for title in ("ResNet-18", "R-RAN", "R-LRAN"):
                table.get_by_text(title, exact=True).wait_for()
            main = page.get_by_test_id("stMain")
            images = main.get_by_test_id("stImage")
            # The patch itself, 3 CAMs, 2 attention maps, and at least one gate.
            page.wait_for_function(
                "() => document.querySelectorAll('[data-testid=stMain] [data-testid=stImage] img')"
                ".length >= 7"
            )
            assert images.count() >= 7
            assert page.get_by_text(patch.name).count() >= 1
            shot("02-uploaded")

            page.get_by_role("link", name="Review these images").click()
            canvas = page.locator("canvas.upper-canvas")
            canvas.wait_for()
            page.get_by_text("Rectangle", exact=True).click()
            settle()
            shot("03-review")

            def drag(fx0: float, fy0: float, fx1: float, fy1: float) -> None:
                """Draws with the mouse between two points given as fractions of the canvas."""
                canvas.scroll_into_view_if_needed()
                box = canvas.bounding_box()
                assert box is not None
                x0, y0, w, h = box["x"], box["y"], box["width"], box["height"]
                page.mouse.move(x0 + fx0 * w, y0 + fy0 * h)
                page.mouse.down()
                page.mouse.move(x0 + fx1 * w, y0 + fy1 * h, steps=12)
                page.mouse.up()
                settle()

            drag(0.25, 0.25, 0.75, 0.5)
            drag(0.1, 0.7, 0.4, 0.95)
            shot("04-drawn-twice")
            canvas.hover()
            page.get_by_role("button", name="Undo").click()
            settle()
            page.get_by_text("IDC-positive", exact=True).last.click()
            settle()
            shot("05-undone-labelled")

            page.get_by_role("button", name="Save review").click()
            page.get_by_text("Saved as review").wait_for()
            shot("06-saved")
        finally:
            browser.close()

    from annotations.store import Store

    store = Store(db)
    reviews = store.reviews_frame()
    assert len(reviews) == 1
    review = reviews.iloc[0]
    assert (review.reader, review.label, review.filename) == ("dr-e2e", "IDC-positive", patch.name)
    assert (review.width, review.height, review.version) == (50, 50, 1)
    mask = store.get_mask(int(review.review_id))
    # Drawn from 25% to 75% across and 25% to 50% down: image columns ~12-37, rows ~12-25.
    # The second rectangle (bottom left) was undone with the canvas toolbar.
    assert mask.shape == (50, 50)
    assert mask[15:23, 15:35].all()
    assert not mask[30:, :].any() and not mask[:, :10].any() and not mask[:, 40:].any()
    assert 150 <= int(np.count_nonzero(mask)) <= 400
    scores = store.scores_frame()
    maps = set(zip(scores["model"], scores["map"], strict=True))
    assert {
        ("resnet18", "cam"),
        ("resnet18-ran", "cam"),
        ("resnet18-ran", "attention"),
        ("resnet18-lran", "cam"),
        ("resnet18-lran", "attention"),
        ("resnet18-lran", "gate1"),
    } <= maps
    assert set(store.predictions_frame()["model"]) == set(VARIANTS)
