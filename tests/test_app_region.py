"""Region review in the Streamlit app, driven headless by streamlit.testing.v1.AppTest.

A region is an image larger than the models' patch: the Review page maps it at the microns
per pixel the reader gives (prefilled from TIFF tags) with lran_core.region, shows each model's
maps over it, imports a reference annotation and stores region reads. Most tests run in an open
study (maps from the start); one checks that a blinded study hides a region's maps too. Models
and database are the random-weight set and temporary SQLite file of tests/test_app_pages.py
(whose fixtures and helpers this module reuses); drawings are placed in session state as there.
"""

from __future__ import annotations

import io
import json
import os
import types

import numpy as np
import pandas as pd
import pytest
from conftest import VARIANTS
from PIL import Image
from streamlit.testing.v1 import AppTest
from test_app_pages import (
    HISTORY,
    REVIEW,
    TITLES,
    add,
    case_id,
    choose_study,
    draw_and_label,
    frames,
    open_study,
    patch,
    png,
    rect,
    save,
    start,
    texts,
    viewer_args,
)

from annotations.geojson import geojson_to_mask, mask_to_geojson
from annotations.masks import png_to_mask
from annotations.scores import agreement
from annotations.store import Store
from lran_core import region as lran_region
from lran_core.models import DISPLAY_NAMES
from review import exports, modelsets
from review.regions import RegionResult, map_model_set
from ui import widgets

SIDE = 300
MPP = 4.0
# Every model's probability and CAM, and the attention of R-RAN and R-LRAN.
MAP_ROWS = (
    {(v, "probability") for v in VARIANTS}
    | {(v, "cam") for v in VARIANTS}
    | {("resnet18-ran", "attention"), ("resnet18-lran", "attention")}
)


def tiff(rgb: np.ndarray, mpp: float | None) -> bytes:
    """TIFF bytes of an image, with resolution tags saying ``mpp`` microns per pixel."""
    buf = io.BytesIO()
    extra = {} if mpp is None else {"dpi": (25400 / mpp, 25400 / mpp)}
    Image.fromarray(rgb).save(buf, format="TIFF", **extra)
    return buf.getvalue()


def region_page(
    data: bytes, name: str = "region.tif", blinded: bool = False
) -> tuple[AppTest, str]:
    """The app on the Review page with one region added to an open study (or the default,
    blinded one); gives it and the item's hash."""
    study = None if blinded else open_study(os.environ["LRAN_REVIEW_DB"])
    at = start()
    if study is not None:
        at = choose_study(at, study)
    at = add(at, [(name, data)])
    at.switch_page(REVIEW).run()
    assert not at.exception
    store = Store(os.environ["LRAN_REVIEW_DB"])
    return at, store.case(case_id(at)).item.item_hash


def widget(at: AppTest, name: str, kind: str = "open", reader: str = "dr-a") -> str:
    """The key of one of the read's widgets on the Review page (ui.views.read.widget_key)."""
    return f"{name}-{case_id(at)}-{kind}-{reader}"


def set_reference(at: AppTest, digest: str, name: str, data: bytes) -> AppTest:
    """Puts a file in the Review page's reference uploader and reruns."""
    at.file_uploader(key=f"reference-{digest[:16]}").set_value((name, data, "image/png"))
    return at.run()


def cells(at: AppTest) -> set[tuple[str, str]]:
    """(row, column) of every map pane the viewer shows."""
    return {(c["row"], c["column"]) for c in viewer_args(at)["cells"]}


def bach_mask() -> np.ndarray:
    """A 300 x 300 label mask: in situ (2) top left, invasive (3) bottom right, 0 elsewhere."""
    labels = np.zeros((SIDE, SIDE), np.uint8)
    labels[20:120, 30:150] = 2
    labels[180:280, 160:290] = 3
    return labels


def region_maps(rgb: np.ndarray, cam_class: int = 1) -> RegionResult:
    """The region maps of the app's model set (computed again: the same function, the same
    deterministic models)."""
    return map_model_set(modelsets.load("idc"), rgb, MPP, cam_class)


# The random set's field is 64 px at 4 um/px, seen at a 64 px input: 300 image px are 300 input
# px, 19 cells of 16 px, and a window is centred on each of their 20 x 20 corners, 4 cells wide
# (overlapping by 3/4).
WINDOWS = 20 * 20
OVERLAP = 0.75


def test_region_upload_shows_the_maps_of_three_models(env: str) -> None:
    rgb = patch(20, SIDE, SIDE)
    at, _ = region_page(tiff(rgb, MPP))
    # Region by default, at the resolution of the TIFF tags.
    assert at.toggle(key=widget(at, "as-region")).value
    assert at.number_input(key=widget(at, "mpp")).value == pytest.approx(MPP)
    maps = region_maps(rgb).maps
    assert list(maps) == VARIANTS
    for name, m in maps.items():
        assert m.probs.shape == (2, SIDE, SIDE) and m.cam.shape == (SIDE, SIDE)
        assert (m.attention is None) == (name == "resnet18")
        assert m.windows == WINDOWS
    # One aligned grid: a column per model, probability, CAM and attention rows.
    args = viewer_args(at)
    assert args["columns"] == TITLES
    assert args["rows"] == ["probability (IDC-positive)", "CAM (IDC-positive)", "attention"]
    assert len(cells(at)) == 3 + 3 + 2
    assert ("attention", "R-LRAN") in cells(at) and ("attention", "ResNet-18") not in cells(at)
    table = at.table[0].value.reset_index()
    assert list(table["model"]) == TITLES
    # The area-weighted mean, the maximum and the share above 0.5: never "a prediction".
    assert "prediction" not in table.columns
    mean = "mean P(IDC-positive), area-weighted"
    for variant, (_, row) in zip(VARIANTS, table.iterrows(), strict=True):
        p = maps[variant].probs[1]
        assert row[mean] == pytest.approx(float(p.mean()), abs=1e-6)
        assert row["maximum"] == pytest.approx(float(p.max()), abs=1e-6)
        assert row["area above 0.5"] == pytest.approx(float((p > 0.5).mean()), abs=1e-6)


def test_missing_or_absurd_mpp_is_explained_and_nothing_can_be_saved(env: str) -> None:
    at, _ = region_page(png(patch(21, SIDE, SIDE)), "no-tags.png")
    errors = texts(at.error)
    assert any("microns per pixel of the image are unknown" in e for e in errors), errors
    assert not viewer_args(at)["cells"]
    at.number_input(key=widget(at, "mpp")).set_value(1000.0).run()
    assert not at.exception
    assert any("1000.0 µm/px is outside" in e for e in texts(at.error)), texts(at.error)
    at.number_input(key=widget(at, "mpp")).set_value(MPP).run()
    assert not at.error
    assert len(cells(at)) == 8


def test_a_region_too_large_for_memory_is_refused_with_the_size_it_needs(
    env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only the region mapper sees the machine short of memory (the upload itself is small).
    scarce = types.SimpleNamespace(virtual_memory=lambda: types.SimpleNamespace(available=2**20))
    monkeypatch.setattr(lran_region, "psutil", scarce)
    at, _ = region_page(tiff(patch(22, SIDE, SIDE), MPP))
    assert not at.exception
    (error,) = texts(at.error)
    assert "would need" in error and "GiB" in error and "0.00 GiB available" in error


def test_a_reference_of_another_size_or_with_unknown_values_is_refused(env: str) -> None:
    at, digest = region_page(tiff(patch(23, SIDE, SIDE), MPP))
    set_reference(at, digest, "small_mask.png", png(np.zeros((200, 200), np.uint8)))
    assert not at.exception
    (error,) = texts(at.error)
    assert "small_mask.png" in error and "200 x 200 px" in error and "300 x 300 px" in error
    assert digest not in at.session_state.get("references", {})
    labels = bach_mask()
    labels[0, 0] = 7
    set_reference(at, digest, "odd_mask.png", png(labels))
    (error,) = texts(at.error)
    assert "values [7] outside the allowed [0, 1, 2, 3]" in error
    set_reference(at, digest, "bad.geojson", b'{"type": "Point", "coordinates": [1, 2]}')
    (error,) = texts(at.error)
    assert "bad.geojson" in error and "does not describe a region" in error
    # An empty QuPath export has no extent to check: said so, not a numpy error.
    set_reference(at, digest, "empty.geojson", b'{"type": "FeatureCollection", "features": []}')
    (error,) = texts(at.error)
    assert "empty.geojson" in error and "holds no region" in error
    # A QuPath outline in the whole slide's (or a 10x larger export's) pixels overlaps the
    # image only in part: refused, not clipped into a wrong reference.
    slide = {
        "type": "Polygon",
        "coordinates": [[[250, 250], [3000, 250], [3000, 3000], [250, 250]]],
    }
    set_reference(at, digest, "slide.geojson", json.dumps(slide).encode())
    (error,) = texts(at.error)
    assert "spans x 250 to 3000" in error and "300 x 300 px" in error
    assert digest not in at.session_state["references"]
    assert not [f for f in frames(at) if "map" in f.columns]
    # A few pixels over the border is an outline traced along it: taken.
    edge = {
        "type": "Polygon",
        "coordinates": [[[-3, -3], [303, -3], [303, 150], [-3, 150], [-3, -3]]],
    }
    set_reference(at, digest, "edge.geojson", json.dumps(edge).encode())
    assert not at.error, texts(at.error)
    assert at.session_state["references"][digest].region[:150].all()


def test_save_stores_a_region_review_with_every_model_and_map(env: str) -> None:
    rgb = patch(24, SIDE, SIDE)
    at, digest = region_page(tiff(rgb, MPP))
    # Drawn in the image's own pixels: columns 30-149, rows 60-239.
    draw_and_label(at, "open", rect(30, 60, 150, 240), "IDC-positive")
    at = save(at, "open")
    assert not at.exception
    assert any("Saved as read 1, version 1" in s for s in texts(at.success))

    store = Store(env)
    (row,) = store.reviews_frame().itertuples()
    assert (row.kind, row.mpp, row.width, row.height) == ("region", MPP, SIDE, SIDE)
    assert (row.reader, row.label, row.item_hash) == ("dr-a", "IDC-positive", digest)
    assert row.overlap == OVERLAP and not row.is_reference
    expected = np.zeros((SIDE, SIDE), bool)
    expected[60:240, 30:150] = True
    np.testing.assert_array_equal(store.get_mask(row.review_id), expected)

    maps = region_maps(rgb).maps
    scores = store.scores_frame().set_index(["model", "map"])
    assert set(scores.index) == MAP_ROWS
    for (model, name), got in scores.iterrows():
        layer = {
            "probability": maps[model].probs[1],
            "cam": maps[model].cam,
            "attention": maps[model].attention,
        }[name]
        # 15 µm at 4 µm/px, stored with the score.
        assert (got.tolerance_um, got.tolerance_px) == (15.0, 3.75)
        assert got.cam_class == ("IDC-positive" if name != "attention" else None) or (
            name == "attention" and pd.isna(got.cam_class)
        )
        want = agreement(layer, expected, 3.75)
        assert got.energy_pointing_game == pytest.approx(want.energy_pointing_game)
        assert got.auroc == pytest.approx(want.auroc)
        assert bool(got.pointing_game) == want.pointing_game
    predictions = store.predictions_frame().set_index("model")
    for model in VARIANTS:
        assert predictions.loc[model, "p_IDC-positive"] == pytest.approx(
            float(maps[model].probs[1].mean()), abs=1e-6
        )

    # History shows and exports it like a patch review, in the region's own pixels.
    at.switch_page(HISTORY).run()
    assert not at.exception
    table = next(f for f in frames(at) if "review_id" in f.columns)
    assert list(table["kind"]) == ["region"]
    region = geojson_to_mask(json.loads(exports.geojson_text(store, 1)), (SIDE, SIDE))
    np.testing.assert_array_equal(region, expected)
    np.testing.assert_array_equal(png_to_mask(exports.mask_png(store, 1)), expected)


def test_the_operator_sets_the_pointing_games_tolerance_in_micrometres(
    env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LRAN_TOLERANCE_UM", "10")
    at, _ = region_page(tiff(patch(25, 120, 120), MPP))
    draw_and_label(at, "open", rect(10, 10, 60, 60), "IDC-positive")
    at = save(at, "open")
    scores = Store(env).scores_frame()
    assert len(scores) == len(MAP_ROWS)
    assert set(zip(scores.tolerance_um, scores.tolerance_px)) == {(10.0, 2.5)}
    # A value that is not a tolerance is refused by name at save, and nothing is stored.
    monkeypatch.setenv("LRAN_TOLERANCE_UM", "-3")
    draw_and_label(at, "open", rect(10, 10, 70, 70), "IDC-positive")
    at = save(at, "open")
    assert any("LRAN_TOLERANCE_UM must be a number" in e for e in texts(at.error))
    assert len(Store(env).reviews_frame()) == 1


def test_a_reference_is_outlined_scored_and_stored_as_its_own_review(env: str) -> None:
    rgb = patch(25, SIDE, SIDE)
    at, digest = region_page(tiff(rgb, MPP))
    labels = bach_mask()
    set_reference(at, digest, "A_mask.png", png(labels))
    assert not at.exception and not at.error
    assert [o["name"] for o in viewer_args(at)["outlines"]] == ["reference (in situ + invasive)"]
    table = next(f for f in frames(at) if "map" in f.columns)
    shown = {(DISPLAY_NAMES[m], name) for m, name in MAP_ROWS}
    assert set(zip(table["model"], table["map"], strict=True)) == shown

    at.button(key="save_reference").click().run()
    assert not at.exception
    assert any("Reference scores stored as read 1" in s for s in texts(at.success))
    # Stored once per session: the button is gone, the message stays.
    assert not [b for b in at.button if b.key == "save_reference"]

    store = Store(env)
    (row,) = store.reviews_frame().itertuples()
    assert (row.reader, row.label, row.kind, row.mpp) == (
        "reference:A_mask.png",
        "in situ + invasive",
        "region",
        MPP,
    )
    assert row.is_reference and row.imported_by == "dr-a" and "label mask" in row.note
    region = labels > 0
    np.testing.assert_array_equal(store.get_mask(row.review_id), region)
    # The reference gave no diagnosis in the models' classes: no predictions with it.
    assert store.predictions_frame().empty
    maps = region_maps(rgb).maps
    scores = store.scores_frame().set_index(["model", "map"])
    assert set(scores.index) == MAP_ROWS
    want = agreement(maps["resnet18-lran"].attention, region, 3.75)
    got = scores.loc[("resnet18-lran", "attention")]
    assert got.iou_mean == pytest.approx(want.iou_mean)
    assert got.auroc == pytest.approx(want.auroc)

    # The reader's own review is separate, and nothing of the reference's is overwritten.
    draw_and_label(at, "open", rect(0, 0, 150, 300), "IDC-negative")
    at = save(at, "open")
    reviews = Store(env).reviews_frame()
    assert list(reviews["reader"]) == ["reference:A_mask.png", "dr-a"]
    np.testing.assert_array_equal(Store(env).get_mask(1), region)


def test_a_geojson_reference_is_read_in_image_pixels(env: str) -> None:
    at, digest = region_page(tiff(patch(26, SIDE, SIDE), MPP))
    expected = np.zeros((SIDE, SIDE), bool)
    expected[100:200, 50:250] = True
    data = json.dumps(mask_to_geojson(expected)).encode()
    set_reference(at, digest, "qupath.geojson", data)
    assert not at.error
    np.testing.assert_array_equal(at.session_state["references"][digest].region, expected)
    assert "qupath.geojson (GeoJSON" in " ".join(texts(at.caption))


def test_a_region_can_be_reviewed_as_one_patch_instead_keeping_the_drawing(env: str) -> None:
    at, _ = region_page(tiff(patch(27, SIDE, SIDE), MPP))
    # Drawn while the image is a region; the canvas has the same size either way.
    draw_and_label(at, "open", rect(0, 0, 150, 300), "non-diagnostic / unsure")
    at.toggle(key=widget(at, "as-region")).set_value(False).run()
    assert not at.exception
    table = at.table[0].value.reset_index()
    assert list(table["model"]) == TITLES and "tiles" not in table.columns
    assert viewer_args(at)["rows"] == ["CAM", "attention", "gate 1", "gate 2"]
    at = save(at, "open")
    store = Store(env)
    (row,) = store.reviews_frame().itertuples()
    assert row.kind == "patch"
    assert set(store.predictions_frame()["model"]) == set(VARIANTS)
    mask = store.get_mask(row.review_id)
    assert mask[:, :150].all() and not mask[:, 150:].any()


def test_the_reference_outline_follows_the_region_border() -> None:
    image = np.zeros((60, 60, 3), np.uint8)
    region = np.zeros((120, 120), bool)
    region[40:80, 40:80] = True
    out = widgets.outline(image, region)
    light = np.all(out == widgets.REFERENCE_RGB, axis=-1)
    # The border of the region (rows and columns 20-39 at half size), not its inside.
    assert light[20, 20:40].all() and light[20:40, 39].all()
    assert not light[25:35, 25:35].any() and not light[:15].any()
    assert not image.any()


def test_a_blinded_region_shows_no_maps_until_the_unaided_read_is_saved(env: str) -> None:
    at, _ = region_page(tiff(patch(28, SIDE, SIDE), MPP), blinded=True)
    assert not at.table and not viewer_args(at)["cells"] and not frames(at)
    draw_and_label(at, "unaided", rect(0, 0, 150, 300), "IDC-positive")
    at = save(at, "unaided")
    assert not at.exception
    assert len(cells(at)) == 8
    store = Store(env)
    (row,) = store.reviews_frame().itertuples()
    assert (row.read_kind, row.kind, row.mpp) == ("unaided", "region", MPP)
    # Scored against the maps the reader did not see.
    assert set(store.scores_frame().set_index(["model", "map"]).index) == MAP_ROWS


def test_a_typed_mpp_survives_a_reload_and_the_aided_read_keeps_the_unaided_ones(
    env: str,
) -> None:
    at, _ = region_page(png(patch(29, SIDE, SIDE)), "no-tags.png", blinded=True)
    at.number_input(key=widget(at, "mpp", "unaided")).set_value(MPP).run()
    case = case_id(at)
    # The next reader in this browser starts from their own µm/px, not dr-a's.
    at.text_input(key="reader").input("dr-b").run()
    at.switch_page(REVIEW).run()
    assert at.number_input(key=widget(at, "mpp", "unaided", "dr-b")).value is None
    # A reload: a new session of the same reader comes back to the case and its µm/px.
    again = start()
    again.switch_page(REVIEW).run()
    assert case_id(again) == case
    assert again.number_input(key=widget(again, "mpp", "unaided")).value == pytest.approx(MPP)
    draw_and_label(again, "unaided", rect(0, 0, 150, 300), "IDC-positive")
    again = save(again, "unaided")
    assert not again.exception and len(cells(again)) == 8
    # The aided read is mapped and scored at the unaided read's µm/px: shown, not editable.
    fixed = again.number_input(key=widget(again, "mpp", "aided"))
    assert fixed.value == pytest.approx(MPP) and fixed.disabled
    draw_and_label(again, "aided", rect(0, 0, 300, 300), "IDC-positive")
    again = save(again, "aided")
    rows = Store(env).reviews_frame()
    assert list(rows.read_kind) == ["unaided", "aided"] and list(rows.mpp) == [MPP, MPP]
