"""End to end: `streamlit run app.py` driven by Chromium through Playwright (sync API).

A reader enters their name and adds two real IDC patches to the default (blinded) study, opens
the next unread case, and sees only the image; draws two rectangles with the mouse in the
viewer, undoes the second, clicks the corners of a polygon without closing it, gives the
diagnosis with the key 2 and saves with Ctrl+Enter, which closes the polygon first;
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
from appserver import CHROMIUM, CHROMIUM_ARGS
from conftest import TIMEOUT_MS, VARIANTS
from PIL import Image, ImageDraw
from test_browser_viewer import IFRAME

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "idc"
ARTIFACTS = ROOT / "test-artifacts" / "browser-review"
TITLES = ("ResNet-18", "R-RAN", "R-LRAN")
# Image pixels of an open polygon's corners (bottom right, away from the undone rectangle).
TRIANGLE = [(30.0, 35.0), (47.0, 35.0), (47.0, 48.0)]

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
            iframe = page.locator(IFRAME)
            iframe.wait_for()
            frame = iframe.element_handle().content_frame()
            ui = page.frame_locator(IFRAME)
            frame.wait_for_function("() => window.__viewer && window.__viewer.ready()")
            settle()
            # Blinded: no model output anywhere on the page, and the viewer shows the image only.
            body = page.locator("[data-testid=stMain]").inner_text()
            assert not any(t in body for t in (*TITLES, "CAM", "attention"))
            assert page.get_by_test_id("stTable").count() == 0
            assert ui.locator("[data-testid=viewer-pane]").count() == 1
            shot("02-blinded")

            def at(x: float, y: float) -> tuple[float, float]:
                """Page coordinates of image pixel (x, y) in the viewer's image pane."""
                client = frame.evaluate(
                    "([x, y]) => window.__viewer.imageToClient(x, y, '', '')", [x, y]
                )
                box = iframe.bounding_box()
                assert box is not None and client["inside"], client
                return box["x"] + client["x"], box["y"] + client["y"]

            def drag(x0: float, y0: float, x1: float, y1: float) -> None:
                """Draws a rectangle with the mouse between two image pixels."""
                page.mouse.move(*at(x0, y0))
                page.mouse.down()
                page.mouse.move(*at((x0 + x1) / 2, (y0 + y1) / 2), steps=6)
                page.mouse.move(*at(x1, y1), steps=6)
                page.mouse.up()
                settle()

            ui.get_by_role("button", name="Rectangle").click()
            drag(12.5, 12.5, 37.5, 25)
            drag(5, 35, 20, 47.5)
            ui.get_by_role("button", name="Undo").click()
            settle()
            # A triangle at the bottom right, its corners clicked but the polygon left open:
            # Ctrl+Enter below closes it and saves it with the read.
            ui.get_by_role("button", name="Polygon").click()
            for corner in TRIANGLE:
                page.mouse.click(*at(*corner))
                page.wait_for_timeout(300)
            assert frame.evaluate("() => window.__viewer.drawing().length") == 1
            # The whole read fits the 1600 x 1000 window: canvas, diagnosis and Save.
            save = page.get_by_role("button", name="Save unaided read")
            for element in (iframe, save):
                box = element.bounding_box()
                assert box is not None and box["y"] + box["height"] <= 1000, box
            # The focus is still in the viewer's frame, where the reader drew: the keys must
            # reach the page's shortcuts all the same.
            assert page.evaluate("document.activeElement.tagName") == "IFRAME"
            # The reader zooms in on the centre before saving: the reveal keeps that view.
            page.mouse.move(*at(25, 25))
            for _ in range(3):
                page.mouse.wheel(0, -100)
                page.wait_for_timeout(150)
            frame.wait_for_function(
                "() => window.__viewer.settled() && window.__viewer.views()[0].zoom > 1.5"
            )
            unaided_view = frame.evaluate("() => window.__viewer.views()[0]")
            assert unaided_view["bounds"][2] < 40, unaided_view  # zoomed in: under 40 of 50 px
            page.keyboard.press("2")  # IDC-positive
            # As a reader would: save once the diagnosis shows as chosen.
            page.get_by_test_id("stBaseButton-primary").get_by_text("IDC-positive").first.wait_for()
            settle()
            page.keyboard.press("Control+Enter")
            page.get_by_text("Saved as read").wait_for()
            settle()
            shot("03-saved-and-revealed")
            table = page.get_by_test_id("stTable")
            for title in TITLES:
                table.get_by_text(title, exact=True).first.wait_for()
            # The maps: one column per model, rows CAM, attention and the gates.
            # The viewer grows by its map rows: Streamlit mounts it again at its new height.
            page.wait_for_function(f'() => document.querySelectorAll("{IFRAME}").length == 1')
            frame = page.locator(IFRAME).element_handle().content_frame()
            frame.wait_for_function("() => window.__viewer && window.__viewer.ready()")
            panes = page.frame_locator(IFRAME).locator("[data-testid=viewer-pane]")
            # The image, 3 CAMs, 2 attention maps (R-RAN, R-LRAN), 2 gate maps (R-LRAN).
            assert panes.count() == 1 + 3 + 2 + 2
            # The new viewer opens where the reader was, not at the whole image.
            frame.wait_for_function("() => window.__viewer.settled()")
            aided_view = frame.evaluate("() => window.__viewer.views()[0]")
            for axis in (0, 1):
                assert abs(aided_view["center"][axis] - unaided_view["center"][axis]) < 1.5, (
                    unaided_view,
                    aided_view,
                )
            # Fitted to a pane of another shape, it shows the same region along one side
            # (more along the other); the whole image would be 1.7 times as much.
            fitted = min(aided_view["bounds"][i] / unaided_view["bounds"][i] for i in (2, 3))
            assert 0.97 < fitted < 1.03, (unaided_view, aided_view)
            # The aided read starts from the unaided one: its region is the new viewer's
            # drawing, to edit, and stays so when the reader zooms (the view is reported).
            assert frame.evaluate("() => window.__viewer.drawing().length") == 2
            page.mouse.move(*at(25, 25))
            page.mouse.wheel(0, -200)
            settle()

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
            settle()
            shot("05-keys")
            # Back on the case, the aided read still has the region: saved as it is.
            frame = page.locator(IFRAME).element_handle().content_frame()
            frame.wait_for_function("() => window.__viewer && window.__viewer.ready()")
            assert frame.evaluate("() => window.__viewer.drawing().length") == 2
            page.get_by_role("button", name="Save aided read").click()
            page.get_by_text("Saved as read 2, version 2").wait_for()
            shot("06-aided-saved")
            # The next reader in this tab starts blinded from the whole image: where dr-e2e
            # zoomed would tell them where to look.
            reader = page.get_by_role("textbox", name="Reader")
            reader.fill("dr-next")
            reader.press("Enter")
            page.get_by_text("Case 1 of 2").wait_for()
            settle()
            frame = page.locator(IFRAME).element_handle().content_frame()
            frame.wait_for_function("() => window.__viewer.ready() && window.__viewer.settled()")
            view = frame.evaluate("() => window.__viewer.views()[0]")
            assert view["bounds"][2] >= 49.9 or view["bounds"][3] >= 49.9, view  # all 50 px
            shot("07-next-reader")
        except Exception:
            shot("failure")
            raise
        finally:
            browser.close()

    from annotations.store import Store

    store = Store(db)
    reads = store.reviews_frame()
    assert list(reads.read_kind) == ["unaided", "aided"]
    read = reads.iloc[0]
    assert (read.reader, read.label, read.read_kind, read.blinded) == (
        "dr-e2e",
        "IDC-positive",
        "unaided",
        True,
    )
    assert (read.width, read.height, read.version) == (50, 50, 1)
    mask = store.get_mask(int(read.review_id))
    # Drawn in image pixels from (12.5, 12.5) to (37.5, 25): columns 12-36, rows 12-24 by the
    # pixel-centre rule. The second rectangle (bottom left) was undone.
    expected = np.zeros((50, 50), bool)
    expected[12:25, 12:37] = True
    triangle = Image.new("1", (50, 50))
    ImageDraw.Draw(triangle).polygon(TRIANGLE, fill=1)
    expected |= np.asarray(triangle, bool)
    assert np.count_nonzero(mask ^ expected) <= 40, np.argwhere(mask ^ expected)
    assert mask[38, 44], "the open polygon was not saved"
    assert not mask[30:, :25].any()
    # The aided read kept the region it started from.
    aided = store.get_mask(int(reads.iloc[1].review_id))
    np.testing.assert_array_equal(aided, mask)
    scores = store.scores_frame()
    maps = set(zip(scores["model"], scores["map"], strict=True))
    assert {("resnet18", "cam"), ("resnet18-ran", "attention"), ("resnet18-lran", "gate1")} <= maps
    assert set(store.predictions_frame()["model"]) == set(VARIANTS)
