"""End to end: `streamlit run app.py` driven by Chromium through Playwright (sync API).

A reader enters their name and adds two real IDC patches to the default (blinded) study, opens
the next unread case, and sees only the image; draws two rectangles with the mouse, undoes the
second with the canvas toolbar, gives the diagnosis with the key 2 and saves with Ctrl+Enter;
the maps are then revealed. The page is reloaded: the reader, the study and the case are back,
and the read is saved. The keys J and K move between cases. The test reads the read, its mask
and its scores back from the database.

Needs /usr/bin/chromium (Debian package; Playwright's own browser download is never used) and
the real data under ../shared/data/idc; skips with the reason otherwise. Screenshots of every
step go to test-artifacts/browser-review/ (1600 x 1000, the window the layout is made for).
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
TITLES = ("ResNet-18", "R-RAN", "R-LRAN")

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM}"),
    pytest.mark.skipif(not DATA.is_dir(), reason=f"no IDC patches at {DATA} (shared data)"),
]


def real_patches(n: int = 2) -> list[Path]:
    """Full-size (50 x 50) IDC-positive patches from the shared data."""
    found = []
    for path in sorted(DATA.rglob("*_class1.png")):
        with Image.open(path) as img:
            if img.size == (50, 50):
                found.append(path)
        if len(found) == n:
            return found
    pytest.skip(f"fewer than {n} 50 x 50 IDC-positive patches under {DATA}")


def test_a_blinded_read_with_mouse_and_keys_survives_a_reload(server: tuple[str, str]) -> None:
    url, db = server
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    patches = real_patches()
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.set_default_timeout(TIMEOUT_MS)

            def shot(name: str) -> None:
                page.screenshot(path=str(ARTIFACTS / f"{name}.png"))

            def settle() -> None:
                """Waits for the rerun an action caused to finish."""
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
            page.get_by_text("Add images to this study").click()
            page.locator("input[type=file]").set_input_files([str(p) for p in patches])
            page.get_by_role("button", name="Add them").click()
            page.get_by_text("Added 2 cases.").wait_for()
            settle()
            shot("01-worklist")
            page.get_by_role("button", name="Next unread case").click()
            canvas = page.locator("canvas.upper-canvas")
            canvas.wait_for()
            settle()
            # Blinded: no model output anywhere on the page.
            body = page.locator("[data-testid=stMain]").inner_text()
            assert not any(t in body for t in (*TITLES, "CAM", "attention"))
            assert page.get_by_test_id("stTable").count() == 0
            shot("02-blinded")

            page.get_by_text("Rectangle", exact=True).click()
            settle()

            def drag(fx0: float, fy0: float, fx1: float, fy1: float) -> None:
                """Draws with the mouse between two points given as fractions of the canvas."""
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
            canvas.hover()
            page.get_by_role("button", name="Undo").click()
            settle()
            # The whole read fits the 1600 x 1000 window: canvas, diagnosis and Save.
            save = page.get_by_role("button", name="Save unaided read")
            for element in (canvas, save):
                box = element.bounding_box()
                assert box is not None and box["y"] + box["height"] <= 1000, box
            page.evaluate("document.activeElement && document.activeElement.blur()")
            page.keyboard.press("2")  # IDC-positive
            settle()
            page.keyboard.press("Control+Enter")
            page.get_by_text("Saved as read").wait_for()
            settle()
            shot("03-saved-and-revealed")
            table = page.get_by_test_id("stTable")
            for title in TITLES:
                table.get_by_text(title, exact=True).first.wait_for()
            page.wait_for_function(
                "() => document.querySelectorAll('[data-testid=stMain] [data-testid=stImage] img')"
                ".length >= 7"
            )

            # A reload: the same reader, study and case, and the read saved.
            page.reload()
            page.get_by_text("unaided read saved").first.wait_for()
            settle()
            assert page.get_by_role("textbox", name="Reader").input_value() == "dr-e2e"
            assert "Case 1 of 2" in page.locator("[data-testid=stMain]").inner_text()
            shot("04-after-reload")
            # The keys move between cases.
            page.evaluate("document.activeElement && document.activeElement.blur()")
            page.keyboard.press("j")
            page.get_by_text("Case 2 of 2").wait_for()
            settle()
            page.keyboard.press("k")
            page.get_by_text("Case 1 of 2").wait_for()
            shot("05-keys")
        except Exception:
            shot("failure")
            raise
        finally:
            browser.close()

    from annotations.store import Store

    store = Store(db)
    reads = store.reviews_frame()
    assert len(reads) == 1
    read = reads.iloc[0]
    assert (read.reader, read.label, read.read_kind, read.blinded) == (
        "dr-e2e", "IDC-positive", "unaided", True)
    assert (read.width, read.height, read.version) == (50, 50, 1)
    mask = store.get_mask(int(read.review_id))
    # Drawn from 25% to 75% across and 25% to 50% down: image columns ~12-37, rows ~12-25.
    # The second rectangle (bottom left) was undone with the canvas toolbar.
    assert mask[15:23, 15:35].all()
    assert not mask[30:, :].any() and not mask[:, :10].any() and not mask[:, 40:].any()
    assert 150 <= int(np.count_nonzero(mask)) <= 400
    scores = store.scores_frame()
    maps = set(zip(scores["model"], scores["map"], strict=True))
    assert {("resnet18", "cam"), ("resnet18-ran", "attention"), ("resnet18-lran", "gate1")} <= maps
    assert set(store.predictions_frame()["model"]) == set(VARIANTS)
