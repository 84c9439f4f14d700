"""The Streamlit pages, driven headless by streamlit.testing.v1.AppTest.

Models are a random-weight set written to a temporary LRAN_MODELS_DIR, so these tests do not
depend on trained weights; the database is a temporary SQLite file (LRAN_REVIEW_DB).

AppTest cannot draw on the canvas (a custom component). The Review page keeps whatever the
canvas last sent in ``st.session_state["regions"][item_hash]`` (the canvas's change callback
writes it there, and Save reads it from there); the tests put a drawing there, in the canvas's
own JSON format, in place of the browser. tests/test_browser_review.py draws with a real mouse.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import CLASSES, VARIANTS
from PIL import Image
from streamlit.testing.v1 import AppTest

from annotations.geojson import geojson_to_mask
from annotations.masks import png_to_mask
from annotations.scores import agreement
from annotations.store import Store
from lran_core.maps import resize_map
from lran_core.models import DISPLAY_NAMES
from review import exports, modelsets
from review.patches import PatchMaps, explain_patch
from review.scoring import score_maps

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
REVIEW = "ui/pages/review.py"
COMPARE = "ui/pages/compare.py"
HISTORY = "ui/pages/history.py"
TITLES = [DISPLAY_NAMES[v] for v in VARIANTS]
# The Review page's canvas is 384 px on the patch's longer side.
CANVAS_SIDE = 384


# ---------------------------------------------------------------------------------------------
# Fixtures and helpers


def png(rgb: np.ndarray | Image.Image) -> bytes:
    """PNG bytes of an array or image."""
    img = rgb if isinstance(rgb, Image.Image) else Image.fromarray(rgb)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def patch(seed: int, width: int = 50, height: int = 50) -> np.ndarray:
    """A deterministic RGB test patch (H, W, 3) uint8."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def bomb_png(side: int = 20_000) -> bytes:
    """A PNG whose header claims side x side pixels (the data need not be there: the header
    alone must get the file refused)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def rect_drawing(left: float, top: float, width: float, height: float) -> dict:
    """A canvas drawing holding one rectangle, as streamlit-drawable-canvas sends it."""
    return {
        "version": "7.0.0",
        "objects": [
            {
                "type": "Rect",
                "version": "7.0.0",
                "originX": "left",
                "originY": "top",
                "left": left,
                "top": top,
                "width": width,
                "height": height,
                "fill": "rgba(0,0,0,0.2)",
                "stroke": "#00e5ff",
                "strokeWidth": 2,
                "scaleX": 1,
                "scaleY": 1,
                "angle": 0,
                "flipX": False,
                "flipY": False,
            }
        ],
    }


def start(reader: str | None = "dr-a") -> AppTest:
    """The app on its Start page, with a reader entered."""
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    if reader is not None:
        at.text_input(key="reader").input(reader).run()
    return at


def upload(at: AppTest, files: list[tuple[str, bytes]]) -> AppTest:
    """Puts files in the Start page's uploader and reruns."""
    at.file_uploader(key="uploads").set_value([(n, data, "image/png") for n, data in files])
    return at.run()


def texts(elements) -> list[str]:
    """The text of every element of a kind (errors, successes...), markdown escapes removed."""
    return [e.value.replace("\\", "") for e in elements]


def frames(at: AppTest) -> list:
    """The pandas frames of every st.dataframe on the page."""
    return [d.value for d in at.dataframe]


def probability_frame(at: AppTest):
    """The probability table: one row per model, its prediction and class probabilities."""
    (table,) = at.table
    return table.value.reset_index()


def explained(rgb: np.ndarray) -> list[PatchMaps]:
    """What the app's model set (LRAN_MODELS_DIR's 'idc') gives for a patch."""
    return explain_patch(modelsets.load("idc"), rgb)


def only_hash(at: AppTest) -> str:
    """The content hash of the single item in the case list."""
    (digest,) = list(at.session_state["items"])
    return digest


def draw_and_label(at: AppTest, drawing: dict, label: str) -> None:
    """On the Review page: the reader's diagnosis (a real widget) and a drawing (see the module
    docstring for why it is placed in session state)."""
    digest = next(iter(at.session_state["items"]))
    at.radio(key=f"label-{digest[:16]}").set_value(label).run()
    regions = dict(at.session_state["regions"]) if "regions" in at.session_state else {}
    regions[digest] = drawing
    at.session_state["regions"] = regions


# ---------------------------------------------------------------------------------------------
# Start page


def test_without_weights_the_app_says_so_and_still_takes_uploads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LRAN_MODELS_DIR", str(tmp_path / "no-models"))
    monkeypatch.setenv("LRAN_REVIEW_DB", f"sqlite:///{tmp_path / 'r.sqlite'}")
    at = start()
    assert not at.exception
    assert any("No trained weights are installed" in e for e in texts(at.error))
    upload(at, [("a.png", png(patch(1)))])
    assert not at.exception
    assert len(at.session_state["items"]) == 1
    assert not at.table
    at.switch_page(REVIEW).run()
    assert not at.exception
    assert any("No trained weights are installed" in e for e in texts(at.error))


def test_upload_shows_three_models_probabilities(env: str) -> None:
    at = upload(start(), [("patient 7 / x.png", png(patch(2)))])
    assert not at.exception
    table = probability_frame(at)
    assert list(table["model"]) == TITLES == ["ResNet-18", "R-RAN", "R-LRAN"]
    probs = table[CLASSES].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert list(table["prediction"]) == [CLASSES[i] for i in probs.argmax(axis=1)]
    # The uploaded name is shown as given (it is never used as a path).
    case = next(f for f in frames(at) if "sha256" in f.columns)
    assert list(case["file"]) == ["patient 7 / x.png"]
    assert texts(at.subheader)[-1] == "Preview: patient 7 / x.png"
    # The patch, 3 CAMs, 2 attention maps and the LRAN gates: every map is shown.
    outputs = explained(patch(2))
    assert len(at.get("image")) == 1 + sum(len(o.maps()) for o in outputs)


def test_a_file_name_is_shown_as_text_not_as_markdown(env: str) -> None:
    name = "![x](http://example.invalid/t.png) *b*.png"
    at = upload(start(), [(name, png(patch(18)))])
    (preview,) = [s.value for s in at.subheader if s.value.startswith("Preview")]
    assert "![" not in preview and "](" not in preview and "*b*" not in preview
    assert preview.replace("\\", "") == f"Preview: {name}"


def test_same_file_twice_is_one_item_and_bad_uploads_are_refused_by_name(env: str) -> None:
    good = png(patch(3))
    full = png(patch(4))
    rgba = png(np.dstack([patch(5), np.full((50, 50), 128, np.uint8)]))
    gray = png(Image.fromarray(patch(6)[..., 0]))
    deep = png(Image.fromarray(patch(7)[..., 0].astype(np.uint16) * 257))
    at = upload(
        start(),
        [
            ("good.png", good),
            ("copy-of-good.png", good),
            ("notes.png", b"these are my notes, not an image"),
            ("cut.png", full[: len(full) // 2]),
            ("bomb.png", bomb_png()),
            ("dot.png", png(patch(8, 1, 1))),
            ("rgba.png", rgba),
            ("gray.png", gray),
            ("deep.png", deep),
        ],
    )
    assert not at.exception
    errors = texts(at.error)
    for name in ("notes.png", "cut.png", "bomb.png", "dot.png"):
        assert sum(name in e for e in errors) == 1, (name, errors)
    assert not any(n in e for e in errors for n in ("good.png", "rgba.png", "gray", "deep"))
    names = [it.filename for it in at.session_state["items"].values()]
    assert names == ["good.png", "rgba.png", "gray.png", "deep.png"]
    assert all(it.rgb.shape == (50, 50, 3) for it in at.session_state["items"].values())
    # The newest good upload is explained; the refusals did not stop it.
    assert len(probability_frame(at)) == 3


# ---------------------------------------------------------------------------------------------
# Review page


def review_page(rgb: np.ndarray, name: str = "p.png") -> AppTest:
    """The app on the Review page with one uploaded patch."""
    at = upload(start(), [(name, png(rgb))])
    at.switch_page(REVIEW).run()
    assert not at.exception
    return at


def test_save_writes_item_predictions_region_and_scores(env: str) -> None:
    rgb = patch(9)
    at = review_page(rgb)
    shown = probability_frame(at)
    # 7.68 canvas px per image px: this rectangle covers image columns 10-29 and rows 10-19.
    scale = CANVAS_SIDE / 50
    draw_and_label(at, rect_drawing(10 * scale, 10 * scale, 20 * scale, 10 * scale), "IDC-positive")
    at.button(key="save").click().run()
    assert not at.exception
    assert any("Saved as review 1, version 1" in s for s in texts(at.success))

    store = Store(env)
    reviews = store.reviews_frame()
    assert len(reviews) == 1
    row = reviews.iloc[0]
    digest = only_hash(at)
    assert (row.item_hash, row.filename, row.width, row.height) == (digest, "p.png", 50, 50)
    assert (row.reader, row.label, row.model_set, row.version) == ("dr-a", "IDC-positive", "idc", 1)

    mask = store.get_mask(row.review_id)
    expected = np.zeros((50, 50), bool)
    expected[10:20, 10:30] = True
    np.testing.assert_array_equal(mask, expected)
    np.testing.assert_array_equal(
        geojson_to_mask(store.get_geojson(row.review_id), (50, 50)), expected
    )

    predictions = store.predictions_frame().set_index("model")
    assert list(shown["model"]) == TITLES
    for variant, (_, model_row) in zip(VARIANTS, shown.iterrows(), strict=True):
        stored = predictions.loc[variant, "probabilities"]
        for cls in CLASSES:
            assert stored[cls] == pytest.approx(model_row[cls], abs=1e-6)

    outputs = explained(rgb)
    scores = store.scores_frame().set_index(["model", "map"])
    expected_rows = {(o.variant, m) for o in outputs for m in o.maps()}
    assert set(scores.index) == expected_rows
    assert ("resnet18-lran", "gate1") in expected_rows and (
        "resnet18",
        "attention",
    ) not in expected_rows
    for out in outputs:
        for name, scored in out.maps().items():
            got = scores.loc[(out.variant, name)]
            # A PNG patch has no µm/px: the pointing game's tolerance is 5% of 50 px.
            assert got.tolerance_px == 2.5 and np.isnan(got.tolerance_um)
            want = agreement(scored.values, expected, 2.5)
            assert bool(got.pointing_game) == want.pointing_game
            assert got.energy_pointing_game == pytest.approx(want.energy_pointing_game)
            assert got.auroc == pytest.approx(want.auroc)
            # The CAM is scored for (and stored with) the predicted class; other maps have none.
            expected_class = out.class_names[out.predicted] if name == "cam" else None
            assert (None if pd.isna(got.cam_class) else got.cam_class) == expected_class


def test_saving_again_adds_a_version(env: str) -> None:
    at = review_page(patch(10))
    draw_and_label(at, rect_drawing(0, 0, 192, 192), "IDC-negative")
    at.button(key="save").click().run()
    draw_and_label(at, rect_drawing(192, 192, 192, 192), "unsure")
    at.button(key="save").click().run()
    assert any("version 2" in s for s in texts(at.success))
    reviews = Store(env).reviews_frame()
    assert list(reviews["version"]) == [1, 2]
    assert list(reviews["label"]) == ["IDC-negative", "unsure"]
    first, second = (Store(env).get_mask(i) for i in reviews["review_id"])
    assert first[:25, :25].all() and not first[25:, 25:].any()
    assert second[25:, 25:].all() and not second[:25, :25].any()


def test_target_class_changes_the_stored_cam_scores(env: str) -> None:
    rgb = patch(11)
    at = review_page(rgb)
    draw_and_label(at, rect_drawing(0, 0, 384, 100), "IDC-positive")
    at.selectbox(key="target").set_value(0).run()
    at.button(key="save").click().run()
    store = Store(env)
    scores = store.scores_frame().set_index(["model", "map"])
    mask = store.get_mask(int(store.reviews_frame()["review_id"].iloc[0]))
    out = explained(rgb)[0]
    want = agreement(out.cams[0], mask).energy_pointing_game
    assert scores.loc[(out.variant, "cam")].energy_pointing_game == pytest.approx(want)
    assert scores.loc[(out.variant, "cam")].cam_class == CLASSES[0]


def test_non_square_patch_is_scored_in_its_own_pixels(env: str) -> None:
    at = review_page(patch(12, width=50, height=30), name="edge.png")
    # The canvas is 384 x 230 for a 50 x 30 patch; this covers the left half.
    draw_and_label(at, rect_drawing(0, 0, 192, 230.4), "IDC-negative")
    at.button(key="save").click().run()
    assert not at.exception
    store = Store(env)
    mask = store.get_mask(int(store.reviews_frame()["review_id"].iloc[0]))
    assert mask.shape == (30, 50)
    assert mask[:, :25].all() and not mask[:, 25:].any()
    outputs = explained(patch(12, 50, 30))
    assert len(store.scores_frame()) == sum(len(o.maps()) for o in outputs)


def test_large_upload_keeps_maps_small_and_scores_in_image_pixels(
    models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LRAN_MODELS_DIR", str(models_dir))
    outputs = explained(patch(17, 1200, 800))
    assert outputs[0].cams.shape == (2, round(800 * 512 / 1200), 512)
    region = np.zeros((800, 1200), bool)
    region[:, :600] = True
    rows = score_maps({o.variant: o.maps() for o in outputs}, region, None)
    assert len(rows) == sum(len(o.maps()) for o in outputs)
    base = outputs[0]
    # The image's µm/px are unknown: the tolerance is 5% of its shorter side, 40 px.
    want = agreement(resize_map(base.cams[base.predicted], (800, 1200)), region, 40.0)
    assert rows[0].map == "cam" and rows[0].auroc == pytest.approx(want.auroc)
    assert rows[0].tolerance_px == 40.0 and rows[0].tolerance_um is None


def test_a_database_that_cannot_be_written_keeps_the_review_for_another_try(
    env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = review_page(patch(13))
    draw_and_label(at, rect_drawing(0, 0, 192, 384), "IDC-positive")
    monkeypatch.setenv("LRAN_REVIEW_DB", f"sqlite:///{tmp_path / 'missing' / 'dir' / 'r.sqlite'}")
    at.button(key="save").click().run()
    assert not at.exception
    assert any("Not saved" in e for e in texts(at.error))
    digest = only_hash(at)
    assert at.session_state["labels"][digest] == "IDC-positive"
    assert at.session_state["regions"][digest]["objects"]
    assert at.radio(key=f"label-{digest[:16]}").value == "IDC-positive"

    monkeypatch.setenv("LRAN_REVIEW_DB", env)
    at.button(key="save").click().run()
    assert any("Saved as review 1, version 1" in s for s in texts(at.success))
    mask = Store(env).get_mask(1)
    assert mask[:, :25].all() and not mask[:, 25:].any()


def test_next_and_previous_walk_the_case_list_and_keep_each_label(env: str) -> None:
    at = upload(start(), [("one.png", png(patch(14))), ("two.png", png(patch(15)))])
    at.switch_page(REVIEW).run()
    first, second = list(at.session_state["items"])
    assert any("one.png" in m for m in texts(at.markdown))
    at.radio(key=f"label-{first[:16]}").set_value("unsure").run()
    at.button(key="next").click().run()
    assert any("two.png" in m for m in texts(at.markdown))
    assert at.button(key="next").disabled
    at.button(key="prev").click().run()
    assert at.radio(key=f"label-{first[:16]}").value == "unsure"
    assert second in at.session_state["items"]


# ---------------------------------------------------------------------------------------------
# Compare and History pages


def two_readers(env: str) -> AppTest:
    """One patch reviewed by two readers who disagree on the label and half the region."""
    at = review_page(patch(16))
    draw_and_label(at, rect_drawing(0, 0, 192, 384), "IDC-positive")
    at.button(key="save").click().run()
    at.text_input(key="reader").input("dr-b").run()
    draw_and_label(at, rect_drawing(0, 0, 384, 384), "IDC-negative")
    at.button(key="save").click().run()
    assert len(Store(env).reviews_frame()) == 2
    return at


def test_compare_page_with_two_readers(env: str) -> None:
    at = two_readers(env)
    at.switch_page(COMPARE).run()
    assert not at.exception
    tables = frames(at)
    models = next(f for f in tables if "accuracy" in f.columns)
    assert sorted(models["model"]) == sorted(TITLES)
    assert (models["reviews"] == 2).all()
    readers = next(f for f in tables if "shared patches" in f.columns)
    assert list(readers["readers"]) == ["dr-a / dr-b"]
    assert list(readers["shared patches"]) == [1]
    # Each LRAN-vs-RAN outcome is counted once per review: two reviews.
    (wins,) = at.metric
    assert wins.value.endswith("of 2")
    assert len(at.get("plotly_chart")) == 4
    # Both readers' reviews are shown with their attention maps (patch in this session).
    assert len([i for i in at.get("image")]) == 2 * 4


def test_history_filters_and_exports(env: str) -> None:
    at = two_readers(env)
    at.switch_page(HISTORY).run()
    assert not at.exception
    table = next(f for f in frames(at) if "review_id" in f.columns)
    assert sorted(table["reader"]) == ["dr-a", "dr-b"]
    at.multiselect(key="f_reader").set_value(["dr-b"]).run()
    table = next(f for f in frames(at) if "review_id" in f.columns)
    assert list(table["reader"]) == ["dr-b"]
    assert len(at.get("download_button")) == 4

    store = Store(env)
    reviews = store.reviews_frame()
    csv = exports.scores_csv(store, reviews["review_id"])
    assert len(csv.strip().splitlines()) == 1 + len(store.scores_frame())
    with zipfile.ZipFile(io.BytesIO(exports.regions_zip(store, reviews))) as archive:
        names = sorted(archive.namelist())
        assert len(names) == 4 and all(n.startswith("review-") for n in names)
        png_name = next(n for n in names if n.startswith("review-1-") and n.endswith(".png"))
        mask = png_to_mask(archive.read(png_name))
    assert mask[:, :25].all() and not mask[:, 25:].any()
