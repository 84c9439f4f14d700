"""End to end: every export on the History page downloads on every click, in Chromium.

A click that reran the page used to replace the file the browser was fetching ("Deferred file
not found"), and one download in three never ended. The reads are written to the store before
the browser opens the page; each button is clicked three times in a row and every download's
content is checked (the same reads give the same bytes).
"""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
from appserver import CHROMIUM, CHROMIUM_ARGS
from conftest import TIMEOUT_MS

from annotations.geojson import mask_to_geojson
from annotations.masks import png_to_mask
from annotations.records import ReviewRecord
from annotations.store import Store
from review.studies import default_study

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM}")
READER = "dr-export"


def saved_reads(db: str) -> list[int]:
    """Two reads in the default study by READER; gives their ids."""
    store = Store(db)
    study = default_study(store)
    ids = []
    for i in range(2):
        mask = np.zeros((50, 50), bool)
        mask[5 : 20 + 10 * i, 5:30] = True
        saved = store.save_review(
            ReviewRecord(
                item_hash=f"{i:064x}",
                filename=f"case-{i}.png",
                width=50,
                height=50,
                kind="patch",
                reader=READER,
                model_set=study.model_set,
                label="IDC-positive",
                mask=mask,
                geojson=mask_to_geojson(mask),
                study_id=study.study_id,
                read_kind="open",
                visible=["image"],
                label_set=study.label_set,
            )
        )
        ids.append(saved.review_id)
    return ids


def test_every_export_downloads_on_every_click(server: tuple[str, str]) -> None:
    url, db = server
    ids = saved_reads(db)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000}, accept_downloads=True)
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(url)
            reader = page.get_by_role("textbox", name="Reader")
            reader.fill(READER)
            reader.press("Enter")
            got: dict[str, list[bytes]] = {}
            for label in (
                "Scores of the reviews shown (CSV)",
                "GeoJSON (QuPath)",
                "PNG mask",
                "All shown regions (zip)",
            ):
                # The page again for each export: Chromium stops a page's downloads after ten
                # (seen here: the eleventh never starts, whichever export it is).
                page.get_by_role("link", name="Worklist").click()
                page.get_by_role("link", name="History").click()
                page.get_by_role("heading", name="Export").wait_for()
                button = page.get_by_role("button", name=label)
                for _ in range(3):
                    with page.expect_download(timeout=30_000) as info:
                        button.click()
                    path = info.value.path()
                    got.setdefault(label, []).append(path.read_bytes())
        finally:
            browser.close()
    # Three clicks, three identical, complete files each.
    for label, files in got.items():
        assert len(files) == 3 and len(set(files)) == 1, label
    csv = got["Scores of the reviews shown (CSV)"][0].decode()
    assert "review_id" in csv.splitlines()[0].split(",")
    geojson = json.loads(got["GeoJSON (QuPath)"][0])
    assert geojson["type"] == "FeatureCollection" and geojson["features"]
    mask = png_to_mask(got["PNG mask"][0])
    assert mask.shape == (50, 50) and int(mask.sum()) in (15 * 25, 25 * 25)
    with zipfile.ZipFile(io.BytesIO(got["All shown regions (zip)"][0])) as archive:
        names = archive.namelist()
    assert sum(n.endswith(".geojson") for n in names) == len(ids)
    assert sum(n.endswith(".png") for n in names) == len(ids)
