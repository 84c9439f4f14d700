"""The Streamlit pages, driven headless by streamlit.testing.v1.AppTest: studies and the
worklist, the blinded first read and the reveal, open studies, navigation, persistence,
Compare and History.

Models are a random-weight set written to a temporary LRAN_MODELS_DIR, so these tests do not
depend on trained weights; the database is a temporary SQLite file (LRAN_REVIEW_DB), its images
kept beside it.

AppTest cannot draw in the viewer (a custom component) or press a label's button by keyboard.
The Review page keeps the read being made as a draft in ``st.session_state["draft-<case>-<kind>"]``
(what the viewer sends back and the label buttons are written there, and Save reads it); the
tests put a drawing there, polygons in image pixels as the viewer sends them, in place of the
browser. tests/test_browser_review.py draws with a real mouse and presses real keys.
"""

from __future__ import annotations

import io
import json
import struct
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import CLASSES, VARIANTS, random_models
from PIL import Image
from streamlit.testing.v1 import AppTest

from annotations.geojson import geojson_to_mask
from annotations.masks import png_to_mask
from annotations.records import StudyRecord
from annotations.scores import agreement
from annotations.store import Store
from lran_core.maps import resize_map
from lran_core.models import DISPLAY_NAMES
from review import exports, modelsets
from review.patches import PatchMaps, explain_patch
from review.scoring import ScoredMap, score_maps
from ui import server
from ui.views import maps as maps_view
from ui.views import read

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
REVIEW = "ui/pages/review.py"
COMPARE = "ui/pages/compare.py"
HISTORY = "ui/pages/history.py"
TITLES = [DISPLAY_NAMES[v] for v in VARIANTS]


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
    """A PNG whose header claims side x side pixels (the header alone must get it refused)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def rect(x0: float, y0: float, x1: float, y1: float) -> list[list[tuple[float, float]]]:
    """A drawing of one rectangle in image pixels, as the viewer sends it back."""
    return [[(x0, y0), (x1, y0), (x1, y1), (x0, y1)]]


def start(reader: str | None = "dr-a") -> AppTest:
    """The app on its Worklist page, with a reader entered."""
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    if reader is not None:
        at.text_input(key="reader").input(reader).run()
    return at


def add(at: AppTest, files: list[tuple[str, bytes]]) -> AppTest:
    """Adds files to the current study through the Worklist page's uploader."""
    at.file_uploader[0].set_value([(n, data, "image/png") for n, data in files])
    at.run()
    at.button(key="add_uploads").click()
    return at.run()


def texts(elements) -> list[str]:
    """The text of every element of a kind (errors, successes...), markdown escapes removed."""
    return [e.value.replace("\\", "") for e in elements]


def frames(at: AppTest) -> list:
    """The pandas frames of every st.dataframe on the page."""
    return [d.value for d in at.dataframe]


def explained(rgb: np.ndarray) -> list[PatchMaps]:
    """What the app's model set (LRAN_MODELS_DIR's 'idc') gives for a patch."""
    return explain_patch(modelsets.load("idc"), rgb)


def viewer_args(at: AppTest) -> dict:
    """What the Review page gave the viewer component (its JSON arguments)."""
    (component,) = at.get("component_instance")
    return json.loads(component.proto.json_args)


def case_id(at: AppTest) -> int:
    """The case under review."""
    return int(at.session_state["case_id"])


def draw_and_label(at: AppTest, kind: str, polygons: list | None, label: str, **more) -> None:
    """On the Review page: the read being made (see the module docstring)."""
    key = f"draft-{case_id(at)}-{kind}"
    current = dict(at.session_state[key]) if key in at.session_state else {"kind": kind}
    current.update(label=label, polygons=polygons, **more)
    at.session_state[key] = current


def save(at: AppTest, kind: str) -> AppTest:
    """Presses the read's Save button."""
    at.button(key=f"save-{kind}").click()
    return at.run()


def review_page(rgb: np.ndarray, name: str = "p.png", reader: str = "dr-a") -> AppTest:
    """The app on the Review page of the default (blinded) study with one patch added."""
    at = add(start(reader), [(name, png(rgb))])
    at.switch_page(REVIEW).run()
    assert not at.exception
    return at


def open_study(url: str, name: str = "open") -> int:
    """Creates an open (unblinded) study in the database; gives its id."""
    return Store(url).create_study(name, "IDC", "open", "idc").study_id


def choose_study(at: AppTest, study: int) -> AppTest:
    """Picks a study in the sidebar."""
    at.selectbox(key="study_choice").set_value(study)
    return at.run()


# ---------------------------------------------------------------------------------------------
# Worklist


def test_without_weights_the_app_says_so_and_still_takes_cases(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LRAN_MODELS_DIR", str(tmp_path / "no-models"))
    monkeypatch.setenv("LRAN_REVIEW_DB", f"sqlite:///{tmp_path / 'r.sqlite'}")
    at = add(start(), [("a.png", png(patch(1)))])
    assert not at.exception
    assert texts(at.success) == ["Added 1 case."]
    at.switch_page(REVIEW).run()
    assert not at.exception
    (error,) = texts(at.error)
    assert "models cannot be loaded" in error and "reference " in error
    # Before the unaided read of a blinded study: neither the set's name nor a server path.
    assert "idc" not in error and str(tmp_path) not in error
    # In an open study the set is named, but its folder is still the server's.
    study = open_study(f"sqlite:///{tmp_path / 'r.sqlite'}")
    at.switch_page("ui/pages/start.py").run()
    at = add(choose_study(at, study), [("b.png", png(patch(2)))])
    at.switch_page(REVIEW).run()
    (error,) = texts(at.error)
    assert "models (idc) cannot be loaded" in error and str(tmp_path) not in error


def test_cases_are_kept_once_by_content_and_bad_files_refused_by_name(env: str) -> None:
    good = png(patch(3))
    full = png(patch(4))
    at = add(
        start(),
        [
            ("10253_idx5_x1351_y1101_class1.png", good),
            ("copy-of-good.png", good),
            ("notes.png", b"these are my notes, not an image"),
            ("cut.png", full[: len(full) // 2]),
            ("bomb.png", bomb_png()),
            ("dot.png", png(patch(8, 1, 1))),
            ("scans/slide-7/tile.png", png(patch(5))),
        ],
    )
    assert not at.exception
    errors = texts(at.error)
    for name in ("notes.png", "cut.png", "bomb.png", "dot.png"):
        assert sum(name in e for e in errors) == 1, (name, errors)
    # Blinded: not "as 10253_..._class1.png", whose name tells the label.
    assert texts(at.success) == ["Added 2 cases; 1 already in the study (copy-of-good.png)."]
    store = Store(env)
    (study,) = store.studies()
    assert (study.name, study.blinding, study.label_set) == ("Default study", "blinded", "IDC")
    cases = store.cases(study.study_id)
    assert [c.item.filename for c in cases] == [
        "10253_idx5_x1351_y1101_class1.png",
        "scans/slide-7/tile.png",
    ]
    # Groups: the IDC patient from the name, else the folder the file came from.
    assert [c.group for c in cases] == ["patient 10253", "slide-7"]
    assert store.image_bytes(cases[0].item.item_hash) == good
    table = next(f for f in frames(at) if "status" in f.columns)
    assert list(table["status"]) == ["unread", "unread"]
    # A blinded study: unread cases show no group or file name (IDC names carry the label).
    assert list(table["group"]) == ["—"] * 2
    assert list(table["file"]) == ["name shown after your unaided read"] * 2
    assert all(str(v).startswith("data:image/jpeg;base64,") for v in table["image"])
    assert any("0 of 2 done" in p.proto.text for p in at.get("progress"))


# ---------------------------------------------------------------------------------------------
# The blinded first read, then the reveal


def test_a_blinded_read_shows_no_model_output_until_the_unaided_read_is_saved(env: str) -> None:
    rgb = patch(9)
    at = review_page(rgb)
    # Nothing of the models: no probability table, no map, no model names, no model set.
    assert not at.table and not at.get("image")
    shown = viewer_args(at)
    assert (shown["columns"], shown["rows"], shown["cells"]) == ([], [], [])
    assert (shown["image_width"], shown["image_height"], shown["draw"]) == (50, 50, True)
    page = " ".join(texts(at.markdown) + texts(at.caption))
    assert not any(t in page for t in [*TITLES, "CAM", "attention", "idc"])
    # Nor the file name or group, which can carry the label (IDC's ..._class1.png).
    assert "p.png" not in page and "name shown after your unaided read" in page
    draw_and_label(
        at,
        "unaided",
        rect(10, 10, 30, 20),
        "IDC-positive",
        confidence=4,
        note="dense tumour",
    )
    at = save(at, "unaided")
    assert not at.exception
    assert any("Saved as read 1, version 1" in s for s in texts(at.success))
    assert any("p.png" in t for t in texts(at.markdown))
    # Revealed: every model's probabilities and maps.
    (table,) = at.table
    assert list(table.value.reset_index()["model"]) == TITLES
    outputs = explained(rgb)
    shown = viewer_args(at)
    assert shown["columns"] == TITLES
    assert shown["rows"] == ["CAM", "attention", "gate 1", "gate 2"]
    assert len(shown["cells"]) == sum(len(o.maps()) for o in outputs)
    # The saved region is outlined over every map.
    assert [o["name"] for o in shown["outlines"]] == ["your saved region"]

    store = Store(env)
    (row,) = store.reviews_frame().itertuples()
    assert (row.read_kind, row.blinded, row.visible) == ("unaided", True, ["image"])
    assert (row.label, row.confidence, row.note, row.no_region) == (
        "IDC-positive",
        4,
        "dense tumour",
        False,
    )
    assert row.label_set == "IDC" and row.case_id == case_id(at)
    expected = np.zeros((50, 50), bool)
    expected[10:20, 10:30] = True
    np.testing.assert_array_equal(store.get_mask(row.review_id), expected)
    np.testing.assert_array_equal(
        geojson_to_mask(store.get_geojson(row.review_id), (50, 50)), expected
    )
    # The unaided region is scored against the maps the reader did not see.
    scores = store.scores_frame().set_index(["model", "map"])
    assert set(scores.index) == {(o.variant, m) for o in outputs for m in o.maps()}
    for out in outputs:
        for name, scored in out.maps().items():
            got = scores.loc[(out.variant, name)]
            assert got.tolerance_px == 2.5  # a PNG has no µm/px: 5% of 50 px
            want = agreement(scored.values, expected, 2.5)
            assert got.energy_pointing_game == pytest.approx(want.energy_pointing_game)
            assert got.auroc == pytest.approx(want.auroc)
            assert (None if pd.isna(got.cam_class) else got.cam_class) == (
                out.class_names[out.predicted] if name == "cam" else None
            )
    predictions = store.predictions_frame().set_index("model")
    for out in outputs:
        for cls, p in zip(CLASSES, out.probs, strict=True):
            assert predictions.loc[out.variant, "probabilities"][cls] == pytest.approx(p)


def test_a_diagnosis_and_a_note_given_with_the_save_are_saved(env: str) -> None:
    # Keys 2 and Ctrl+Enter pressed at once, and a note typed just before: one run carries
    # them all, and Save takes the diagnosis pressed in its run whichever callback runs first.
    at = review_page(patch(13))
    case = case_id(at)
    draw_and_label(at, "unaided", rect(0, 0, 25, 25), None)
    at.text_area(key=f"note-{case}-unaided-dr-a").input("typed, then saved at once")
    at.button(key=f"label-{case}-2").click()
    at.button(key="save-unaided").click()
    at = at.run()
    assert not at.exception
    assert any("Saved as read 1, version 1" in s for s in texts(at.success)), texts(at.warning)
    (row,) = Store(env).reviews_frame().itertuples()
    assert (row.label, row.note) == ("IDC-positive", "typed, then saved at once")


def test_the_aided_read_is_linked_and_the_unaided_one_stays_locked(env: str) -> None:
    at = review_page(patch(10))
    draw_and_label(at, "unaided", rect(0, 0, 25, 25), "IDC-negative")
    at = save(at, "unaided")
    # The aided read starts from the unaided one.
    assert at.session_state[f"draft-{case_id(at)}-aided"]["label"] == "IDC-negative"
    draw_and_label(at, "aided", rect(25, 25, 50, 50), "IDC-positive")
    at = save(at, "aided")
    assert any("version 2" in s for s in texts(at.success))
    store = Store(env)
    reads = store.reviews_frame()
    assert list(reads["read_kind"]) == ["unaided", "aided"]
    assert list(reads["blinded"]) == [True, False]
    assert reads["visible"].iloc[1] == ["image", "file name", "predictions", "maps", "model names"]
    assert int(reads["parent_id"].iloc[1]) == int(reads["review_id"].iloc[0])
    first, second = (store.get_mask(int(i)) for i in reads["review_id"])
    assert first[:25, :25].all() and not first[25:, 25:].any()
    assert second[25:, 25:].all() and not second[:25, :25].any()
    # The worklist says so, and the latest-only view keeps both kinds.
    assert len(store.reviews_frame(latest_only=True)) == 2
    with pytest.raises(ValueError, match="locked"):
        record = explain_record_like(store, reads.iloc[0])
        store.save_review(record)


def test_an_aided_read_waits_for_the_maps_and_is_not_saved_twice_unchanged(
    env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A second Ctrl+Enter in the browser: tests/test_faults.py. Here the rules behind it.
    monkeypatch.setenv("LRAN_AIDED_WAIT_S", "1.5")
    at = review_page(patch(11))
    draw_and_label(at, "unaided", rect(0, 0, 25, 25), "IDC-negative")
    at = save(at, "unaided")
    assert any("version 1" in s for s in texts(at.success))
    # The aided Save with the maps on screen for less than the wait.
    at = save(at, "aided")
    assert any("only just appeared" in w for w in texts(at.warning))
    assert list(Store(env).reviews_frame()["read_kind"]) == ["unaided"]
    time.sleep(1.6)
    at = save(at, "aided")
    assert any("version 2" in s for s in texts(at.success))
    # Pressed again at once with nothing changed: no third, identical version.
    at = save(at, "aided")
    assert any("version 2" in s for s in texts(at.success))
    assert list(Store(env).reviews_frame()["version"]) == [1, 2]
    draw_and_label(at, "aided", rect(0, 0, 25, 25), "IDC-positive")
    at = save(at, "aided")
    assert list(Store(env).reviews_frame()["version"]) == [1, 2, 3]
    # The same read saved again later is meant (another CAM class, say): a new version.
    monkeypatch.setattr(read, "REPEAT_S", 0.0)
    at = save(at, "aided")
    assert list(Store(env).reviews_frame()["version"]) == [1, 2, 3, 4]


def test_the_wait_before_an_aided_save_is_checked_when_the_server_starts() -> None:
    assert server.aided_wait_s({}) == server.DEFAULT_AIDED_WAIT_S
    assert server.aided_wait_s({"LRAN_AIDED_WAIT_S": "0"}) == 0
    for bad in ("-1", "nan", "soon", "61"):
        with pytest.raises(ValueError, match="LRAN_AIDED_WAIT_S"):
            server.app_options({"LRAN_AIDED_WAIT_S": bad})


def test_a_new_study_is_the_one_in_use_at_once(env: str) -> None:
    at = start()
    before = at.selectbox(key="study_choice").value
    (name,) = [t for t in at.text_input if t.label == "Name"]
    name.input("Pilot B")
    (create,) = [b for b in at.button if b.label == "Create study"]
    at = create.click().run()
    assert not at.exception
    (created,) = [s for s in Store(env).studies() if s.name == "Pilot B"]
    assert created.study_id != before
    # The sidebar, the page and what is added next are the new study's.
    assert at.selectbox(key="study_choice").value == created.study_id
    assert "Pilot B" in texts(at.subheader)
    at = add(at, [("p.png", png(patch(12)))])
    assert [c.study_id for c in Store(env).cases(created.study_id)] == [created.study_id]


def test_a_new_reader_in_the_same_session_gets_nothing_of_the_last_ones(env: str) -> None:
    at = review_page(patch(11))
    case = case_id(at)
    draw_and_label(at, "unaided", rect(0, 0, 25, 25), "IDC-negative", note="reader a's note")
    at = save(at, "unaided")
    draw_and_label(at, "aided", rect(25, 25, 50, 50), "IDC-positive")
    at = save(at, "aided")
    assert any("version 2" in s for s in texts(at.success)) and at.dataframe
    # Reader A hands the browser over: reader B types their name (the study's one case).
    at.text_input(key="reader").input("dr-b").run()
    assert not at.exception and case_id(at) == case
    # Blinded again, for B: no models, no A's save message or scores, an empty read, in
    # widgets of B's own (the browser would send A's widgets' values back).
    assert not at.table and not at.success and not at.dataframe
    assert viewer_args(at)["columns"] == []
    assert not at.session_state[f"draft-{case}-unaided"].get("label")
    assert at.text_area(key=f"note-{case}-unaided-dr-b").value == ""
    (component,) = at.get("component_instance")
    assert component.proto.id.endswith(f"viewer-{case}-unaided-dr-b"), component.proto.id
    at = save(at, "unaided")
    assert any("Choose your diagnosis" in s for s in texts(at.warning))
    assert list(Store(env).reviews_frame()["reader"]) == ["dr-a", "dr-a"]


def test_each_reader_taking_over_the_browser_returns_to_their_own_place(env: str) -> None:
    at = add(start("dr-b"), [(f"p{i}.png", png(patch(40 + i))) for i in range(3)])
    at.switch_page(REVIEW).run()
    cases = [c.case_id for c in Store(env).cases(Store(env).studies()[0].study_id)]
    at.button(key="next").click().run()
    at.button(key="next").click().run()
    assert case_id(at) == cases[2]
    # dr-a has no place yet: the first case, not dr-b's.
    at.text_input(key="reader").input("dr-a").run()
    assert not at.exception and case_id(at) == cases[0]
    at.button(key="next").click().run()
    assert case_id(at) == cases[1]
    # dr-b comes back where they stopped, and dr-a's moves did not move them.
    at.text_input(key="reader").input("dr-b").run()
    assert case_id(at) == cases[2]
    assert Store(env).place("dr-a")[1] == cases[1]


def test_a_reader_returns_to_their_case_in_a_study_after_another(env: str) -> None:
    at = add(start(), [(f"p{i}.png", png(patch(50 + i))) for i in range(3)])
    first = int(at.selectbox(key="study_choice").value)
    other = open_study(env)
    at.run()  # the sidebar's chooser lists the new study
    at = add(choose_study(at, other), [("q.png", png(patch(60)))])
    at = choose_study(at, first)
    at.switch_page(REVIEW).run()
    at.button(key="next").click().run()
    at.button(key="next").click().run()
    third = case_id(at)
    at = choose_study(at, other)
    assert case_id(at) == Store(env).cases(other)[0].case_id
    # Back in the first study: the third case, where the reader left it.
    at = choose_study(at, first)
    assert case_id(at) == third


def test_a_corrected_aided_read_keeps_what_the_form_shows(env: str) -> None:
    at = review_page(patch(17))
    draw_and_label(at, "unaided", rect(0, 0, 25, 25), "IDC-negative")
    at = save(at, "unaided")
    draw_and_label(at, "aided", rect(0, 0, 40, 40), "IDC-positive", note="dense", confidence=4)
    at = save(at, "aided")
    # A second save, to correct the diagnosis: the region, note and confidence on screen are
    # the read's (the draft was dropped after the first, and the region said to be empty).
    at.button(key=f"label-{case_id(at)}-1").click()
    at = save(at, "aided")
    assert not at.warning, texts(at.warning)
    rows = Store(env).reviews_frame().sort_values("version")
    assert list(rows["version"]) == [1, 2, 3]
    last = rows.iloc[-1]
    assert (last.label, last.note, int(last.confidence)) == ("IDC-negative", "dense", 4)
    assert Store(env).get_mask(int(last.review_id))[:40, :40].all()


def test_a_region_drawn_with_no_region_ticked_is_not_thrown_away(env: str) -> None:
    at = review_page(patch(18))
    case = case_id(at)
    draw_and_label(at, "unaided", None, "IDC-negative", no_region=True)
    at = save(at, "unaided")
    assert any("(no region)" in s for s in texts(at.success))
    # The aided read starts from "no region"; the reader outlines a region with the maps.
    draw_and_label(at, "aided", rect(5, 5, 40, 40), "IDC-positive")
    at = save(at, "aided")
    assert any("ticked **No region**" in w for w in texts(at.warning))
    assert len(Store(env).reviews_frame()) == 1
    at.checkbox(key=f"no-region-{case}-aided-dr-a").uncheck().run()
    at = save(at, "aided")
    latest = Store(env).reviews_frame().iloc[-1]
    assert latest.version == 2 and not latest.no_region
    assert Store(env).get_mask(int(latest.review_id)).sum() == 35 * 35


def test_a_shape_sent_with_the_move_to_the_next_case_is_kept(env: str) -> None:
    at = add(start(), [(f"c{i}.png", png(patch(30 + i))) for i in range(2)])
    at.switch_page(REVIEW).run()
    first = case_id(at)
    key = f"viewer-{first}-unaided-dr-a"
    square = [[0, 0], [20, 0], [20, 20], [0, 20]]
    at.session_state[key] = {"polygons": [square]}
    at.run()
    # The viewer's second shape and J arrive in one run (Streamlit merges them): the page
    # moves on before it draws the first case's viewer again.
    triangle = [[30, 30], [45, 30], [45, 45]]
    at.session_state[key] = {"polygons": [square, triangle]}
    at.button(key="next").click().run()
    assert case_id(at) != first
    assert Store(env).draft("dr-a", first)["polygons"] == [square, triangle]


def explain_record_like(store: Store, row: pd.Series):
    """A second unaided read of the same case by the same reader (which must be refused)."""
    from annotations.geojson import mask_to_geojson
    from annotations.records import ReviewRecord

    mask = store.get_mask(int(row.review_id))
    return ReviewRecord(
        item_hash=row.item_hash,
        filename=row.filename,
        width=int(row.width),
        height=int(row.height),
        kind=row.kind,
        reader=row.reader,
        model_set="idc",
        label="IDC-positive",
        mask=mask,
        geojson=mask_to_geojson(mask),
        study_id=int(row.study_id),
        case_id=int(row.case_id),
        read_kind="unaided",
        blinded=True,
        visible=["image"],
    )


def test_anonymised_maps_are_shown_under_letters_and_the_best_map_is_stored(
    env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Models with map-quality figures: a badge per model would name the letters.
    models = random_models(tmp_path / "models")
    (models / "idc" / "map-quality.json").write_text(json.dumps(BADGE_CASES[0][0]))
    monkeypatch.setenv("LRAN_MODELS_DIR", str(models))
    study = Store(env).create_study("anonymised", "IDC", "blinded", "idc", anonymise=True)
    at = choose_study(start(), study.study_id)
    rgb = patch(13)
    at = add(at, [("p.png", png(rgb))])
    at.switch_page(REVIEW).run()
    draw_and_label(at, "unaided", rect(0, 0, 25, 25), "IDC-positive")
    at = save(at, "unaided")
    # Revealed under letters: no model name anywhere on the page.
    shown = viewer_args(at)
    assert shown["columns"] == ["Map A", "Map B", "Map C"]
    (table,) = at.table
    assert list(table.value.reset_index()["model"]) == ["Map A", "Map B", "Map C"]
    page = " ".join(texts(at.markdown) + texts(at.caption)) + str(table.value)
    assert not any(t in page for t in TITLES)
    assert "Map quality" not in page
    # Every letter has the same maps: attention (R-RAN, R-LRAN) and gates (R-LRAN) would
    # tell the models apart.
    per_column = {
        column: sorted(c["row"] for c in shown["cells"] if c["column"] == column)
        for column in shown["columns"]
    }
    assert len({tuple(rows) for rows in per_column.values()}) == 1, per_column
    assert shown["rows"] == ["CAM"] or all(r.startswith("CAM") for r in shown["rows"])
    (pills,) = [b for b in at.get("button_group") if "best-map" in b.proto.id]
    assert [o.content for o in pills.proto.options] == ["A", "B", "C"]
    draw_and_label(at, "aided", rect(0, 0, 25, 25), "IDC-positive", best_map="B")
    at = save(at, "aided")
    # The aided read's scores are shown under the letters too.
    scores = [d.value for d in at.dataframe if "map" in d.value.columns][-1]
    assert set(scores["model"]) == {"Map A", "Map B", "Map C"}
    # Each letter with the same maps: attention and gate rows would name the models.
    maps = {m: tuple(sorted(g)) for m, g in scores.groupby("model")["map"]}
    assert len(set(maps.values())) == 1, maps
    reads = Store(env).reviews_frame().set_index("read_kind")
    letters = reads.loc["aided", "anonymised"]
    # A shuffle of the three models, stored with the read, and the same on a new session.
    assert sorted(letters) == ["A", "B", "C"] and sorted(letters.values()) == sorted(VARIANTS)
    assert reads.loc["aided", "best_map"] == "B"
    assert reads.loc["aided", "visible"] == ["image", "file name", "predictions", "maps"]
    again = choose_study(start(), study.study_id)
    again.switch_page(REVIEW).run()
    assert viewer_args(again)["columns"] == ["Map A", "Map B", "Map C"]
    # Map B's column holds the CAM of the model stored under B.
    outputs = {o.variant: o for o in explained(rgb)}
    (b_cell,) = [c for c in viewer_args(again)["cells"] if c["column"] == "Map B"]
    cam = outputs[letters["B"]].maps()["cam"]
    assert b_cell["row"] == f"CAM ({cam.cam_class})" or b_cell["row"] == "CAM"


def anonymised_unaided_read(env: str, seed: int) -> tuple[StudyRecord, AppTest]:
    """A new anonymised blinded study with one patch, read unaided by dr-a: the study, and
    the app on its aided read."""
    study = Store(env).create_study("anonymised", "IDC", "blinded", "idc", anonymise=True)
    at = add(choose_study(start(), study.study_id), [("p.png", png(patch(seed)))])
    at.switch_page(REVIEW).run()
    draw_and_label(at, "unaided", rect(0, 0, 25, 25), "IDC-positive")
    return study, save(at, "unaided")


def test_compare_names_no_model_of_an_anonymised_case_before_the_aided_read(env: str) -> None:
    _, at = anonymised_unaided_read(env, 14)

    def compare_page() -> str:
        at.switch_page(COMPARE).run()
        assert not at.exception
        return " ".join(
            texts(at.markdown) + texts(at.caption) + [f.to_csv() for f in frames(at)]
        ) + str([t.value for t in at.table])

    before = compare_page()
    assert "1 read of 1 case without your aided read is left out (anonymised study" in before
    assert not any(t in before for t in TITLES), before
    at.switch_page(REVIEW).run()
    draw_and_label(at, "aided", rect(0, 0, 25, 25), "IDC-positive", best_map="A")
    at = save(at, "aided")
    after = compare_page()
    assert "without your aided read" not in after and any(t in after for t in TITLES), after


def test_an_aided_read_saved_after_compare_named_the_models_says_so(env: str) -> None:
    # Anonymised: the aided read asks which map matches best under letters. Shown the reads on
    # Compare in another tab first, the reader knew the models behind the letters.
    study, at = anonymised_unaided_read(env, 15)
    tab = choose_study(start(), study.study_id)
    tab.switch_page(COMPARE).run()
    tab.button(key=f"c_unread-{study.study_id}-dr-a").click().run()
    draw_and_label(at, "aided", rect(0, 0, 25, 25), "IDC-positive", best_map="A")
    at = save(at, "aided")
    reads = Store(env).reviews_frame().set_index("read_kind")
    assert reads.loc["unaided", "visible"] == ["image"]
    assert reads.loc["aided", "visible"][-1] == "model names"


def test_compare_leaves_out_the_reads_of_a_removed_case(env: str) -> None:
    at = add(start(), [(f"r{i}.png", png(patch(40 + i))) for i in range(2)])
    at.switch_page(REVIEW).run()
    first = case_id(at)
    for step in range(2):
        draw_and_label(at, "unaided", rect(0, 0, 25, 25), "IDC-positive")
        at = save(at, "unaided")
        if step == 0:
            at.button(key="next").click().run()
    Store(env).remove_case(first, "dr-a")
    at.switch_page(COMPARE).run()
    assert not at.exception
    captions = texts(at.caption)
    assert "1 read of removed cases is left out." in captions, captions
    assert any(c.startswith("1 reads of 1 cases") for c in captions), captions


def test_an_empty_region_asks_once_then_saves_an_explicit_no_region(env: str) -> None:
    at = review_page(patch(11))
    draw_and_label(at, "unaided", None, "IDC-negative")
    at = save(at, "unaided")
    assert any("Your region is empty" in w for w in texts(at.warning))
    assert Store(env).reviews_frame().empty
    draw_and_label(at, "unaided", None, "IDC-negative", no_region=True)
    at = save(at, "unaided")
    assert any("(no region)" in s for s in texts(at.success))
    store = Store(env)
    (row,) = store.reviews_frame().itertuples()
    assert row.no_region and not store.get_mask(row.review_id).any()
    # Its GeoJSON has no feature, and still says whose read of which image it is.
    geojson = store.get_geojson(row.review_id)
    assert geojson["features"] == []
    props = geojson["properties"]
    assert (props["image"], props["reader"], props["label"]) == (
        row.filename,
        "dr-a",
        "IDC-negative",
    )
    scores = store.scores_frame()
    assert len(scores) > 0 and scores["energy_pointing_game"].isna().all()
    assert scores["auroc"].isna().all() and scores["pointing_game"].isna().all()


def test_a_diagnosis_is_needed_and_a_failed_save_keeps_the_read(
    env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = review_page(patch(13))
    draw_and_label(at, "unaided", rect(0, 0, 25, 50), None)
    at = save(at, "unaided")
    assert any("Choose your diagnosis" in w for w in texts(at.warning))
    draw_and_label(at, "unaided", rect(0, 0, 25, 50), "IDC-positive")
    # The database file goes missing under the app: the save is refused, nothing is lost.
    Path(env.removeprefix("sqlite:///")).unlink()
    at = save(at, "unaided")
    assert not at.exception
    (error,) = [e for e in texts(at.error) if "Not saved" in e]
    assert "deleted" in error, texts(at.error)
    # The file's path is the server's business: logged under the reference given.
    assert not [e for e in texts(at.error) if str(tmp_path) in e], texts(at.error)
    assert "(see the server log)" in error and "(reference " in error
    assert not at.success
    draft = at.session_state[f"draft-{case_id(at)}-unaided"]
    assert draft["label"] == "IDC-positive" and draft["polygons"]


# ---------------------------------------------------------------------------------------------
# Open studies: the maps from the start


def test_an_open_study_shows_the_maps_and_stores_the_chosen_cam_class(env: str) -> None:
    study = open_study(env)
    at = start()
    at = choose_study(at, study)
    rgb = patch(12)
    at = add(at, [("p.png", png(rgb))])
    at.switch_page(REVIEW).run()
    assert len(at.table) == 1 and viewer_args(at)["columns"] == TITLES
    draw_and_label(at, "open", rect(0, 0, 50, 13), "IDC-positive")
    at.selectbox(key="target").set_value(0).run()
    at = save(at, "open")
    store = Store(env)
    (row,) = store.reviews_frame().itertuples()
    assert (row.read_kind, row.blinded, row.study_id) == ("open", False, study)
    scores = store.scores_frame().set_index(["model", "map"])
    out = explained(rgb)[0]
    mask = store.get_mask(row.review_id)
    want = agreement(out.cams[0], mask, 2.5).energy_pointing_game
    assert scores.loc[(out.variant, "cam")].energy_pointing_game == pytest.approx(want)
    assert scores.loc[(out.variant, "cam")].cam_class == CLASSES[0]


# Each model's map-quality figures, and the start of its part of the line: every goal missed
# once (ring, centre, randomisation) and met once.
BADGE_CASES = [
    (
        {
            "resnet18": {
                "peak_in_ring": 0.63,
                "ring_area": 0.42,
                "ring_chance": 0.58,
                "randomisation_cam": 0.22,
            },
            "resnet18-ran": {"peak_in_ring": 0.31, "ring_area": 0.42, "centre_ratio": 2.6},
            "resnet18-lran": {"centre_ratio": 1.4, "randomisation_cam": 0.08},
        },
        [
            "⚠️ **ResNet-18**: CAM peaks at the patch border in 63% of positives (border = 42% of"
            " the area; a map blind to position: 58%); randomisation check: Spearman 0.22",
            "✓ **R-RAN**: CAM peaks at the patch border in 31% of positives (border = 42% of the"
            " area); CAM mass in the patch centre 2.6x its area on positives",
            "⚠️ **R-LRAN**: CAM mass in the patch centre 1.4x its area on positives;"
            " randomisation check: Spearman 0.08",
        ],
    ),
    (
        {
            "resnet18": {"peak_in_ring": 0.31, "ring_area": 0.42, "randomisation_cam": 0.61},
            "resnet18-ran": {"centre_ratio": 2.0, "randomisation_cam": 0.49},
        },
        [
            "⚠️ **ResNet-18**: CAM peaks at the patch border in 31% of positives (border = 42% of"
            " the area); randomisation check: Spearman 0.61",
            "✓ **R-RAN**: CAM mass in the patch centre 2.0x its area on positives;"
            " randomisation check: Spearman 0.49",
        ],
    ),
]


@pytest.mark.parametrize(("quality", "expected"), BADGE_CASES)
def test_each_models_map_quality_is_shown_with_a_warning_where_it_misses_a_goal(
    env: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    quality: dict[str, dict[str, float]],
    expected: list[str],
) -> None:
    models = random_models(tmp_path / "models")
    (models / "idc" / "map-quality.json").write_text(json.dumps(quality))
    monkeypatch.setenv("LRAN_MODELS_DIR", str(models))
    study = open_study(env)
    at = choose_study(start(), study)
    at = add(at, [("p.png", png(patch(3)))])
    at.switch_page(REVIEW).run()
    (line,) = [t for t in texts(at.caption) if t.startswith("Map quality on held-out data")]
    # A model without figures has no part.
    parts = line.removeprefix("Map quality on held-out data: ").split(" · ")
    assert len(parts) == len(expected)
    for part, want in zip(parts, expected, strict=True):
        assert part.startswith(want), (part, want)


def test_cams_of_different_classes_share_a_scale_only_within_their_class() -> None:
    look = maps_view.Look(opacity=0.6, cmap="viridis", shared=True)
    values = np.random.default_rng(0).random((8, 8))
    rows = {
        "resnet18": {"cam": ScoredMap(values * 10, "IDC-negative")},
        "resnet18-ran": {"cam": ScoredMap(values, "IDC-positive")},
        "resnet18-lran": {"cam": ScoredMap(values * 2, "IDC-positive")},
    }
    row = maps_view._row(rows, "cam", "CAM", look)
    assert {m: o.legend.label for m, o in row.items()} == {
        "resnet18": "CAM (IDC-negative; shared by class, 1-99%)",
        "resnet18-ran": "CAM (IDC-positive; shared by class, 1-99%)",
        "resnet18-lran": "CAM (IDC-positive; shared by class, 1-99%)",
    }
    # The negative CAM, ten times stronger, has its own scale; the two positive ones share
    # theirs, which spans the stronger of them (its 99th percentile).
    assert row["resnet18"].legend.high == pytest.approx(np.percentile(values * 10, 99), rel=1e-5)
    assert row["resnet18-ran"].legend.high == row["resnet18-lran"].legend.high
    assert row["resnet18-lran"].legend.high > values.max()
    rows["resnet18"]["cam"] = ScoredMap(values * 10, "IDC-positive")
    same = maps_view._row(rows, "cam", "CAM (IDC-positive)", look)
    assert {o.legend.label for o in same.values()} == {"CAM (IDC-positive) (shared, 1-99%)"}
    assert len({o.legend.high for o in same.values()}) == 1


def test_a_non_square_patch_is_scored_in_its_own_pixels(env: str) -> None:
    at = review_page(patch(12, width=50, height=30), name="edge.png")
    # The canvas is 384 x 230 for a 50 x 30 patch; this covers the left half.
    draw_and_label(at, "unaided", rect(0, 0, 25, 30), "IDC-negative")
    at = save(at, "unaided")
    store = Store(env)
    mask = store.get_mask(int(store.reviews_frame()["review_id"].iloc[0]))
    assert mask.shape == (30, 50)
    assert mask[:, :25].all() and not mask[:, 25:].any()


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


# ---------------------------------------------------------------------------------------------
# Moving through the worklist, and coming back


def test_each_next_click_moves_one_case_and_the_place_survives_a_new_session(env: str) -> None:
    at = add(start(), [(f"c{i}.png", png(patch(30 + i))) for i in range(4)])
    at.switch_page(REVIEW).run()
    cases = [c.case_id for c in Store(env).cases(Store(env).studies()[0].study_id)]
    assert case_id(at) == cases[0]
    # Three clicks, three cases on: each moves from the case in session state when it runs,
    # not from the one the button was drawn with (tests/test_browser_review.py clicks three
    # times within one rerun).
    for _ in range(3):
        at.button(key="next").click().run()
    assert case_id(at) == cases[3]
    assert at.button(key="next").disabled
    at.button(key="prev").click().run()
    assert case_id(at) == cases[2]
    # The diagnosis buttons are real widgets: the draft is kept in the store as it is made.
    at.button(key=f"label-{cases[2]}-2").click().run()
    assert at.session_state[f"draft-{cases[2]}-unaided"]["label"] == "IDC-positive"
    # A reload (a new session on the same database): the same reader, study and case, and the
    # unsaved read.
    again = AppTest.from_file(APP, default_timeout=60)
    again.run()
    assert again.text_input(key="reader").value == "dr-a"
    again.switch_page(REVIEW).run()
    assert case_id(again) == cases[2]
    assert again.session_state[f"draft-{cases[2]}-unaided"]["label"] == "IDC-positive"
    # Next unread skips what is read.
    again.button(key="next_unread").click().run()
    assert case_id(again) == cases[3]


# ---------------------------------------------------------------------------------------------
# Compare and History


def two_readers(env: str) -> AppTest:
    """One patch read (unaided) by two readers who disagree on the label and half the region."""
    at = review_page(patch(16))
    draw_and_label(at, "unaided", rect(0, 0, 25, 50), "IDC-positive")
    at = save(at, "unaided")
    at.text_input(key="reader").input("dr-b").run()
    at.switch_page(REVIEW).run()
    draw_and_label(at, "unaided", rect(0, 0, 50, 50), "IDC-negative")
    at = save(at, "unaided")
    assert len(Store(env).reviews_frame()) == 2
    return at


def test_compare_pairs_models_per_read_and_compares_readers(env: str) -> None:
    at = two_readers(env)
    at.switch_page(COMPARE).run()
    assert not at.exception
    (means,) = at.table
    assert list(means.value.reset_index()["model"]) == TITLES
    assert list(means.value["n"]) == [2, 2, 2]
    pairs = [m for m in texts(at.markdown) if " vs " in m]
    assert len(pairs) == 3 and all("n = 2" in p for p in pairs)
    assert pairs[0].startswith("- R-RAN vs ResNet-18 on CAM energy")
    tables = frames(at)
    labels = next(f for f in tables if "agreement" in f.columns)
    assert sorted(labels["model"]) == sorted(TITLES) and (labels["reads"] == 2).all()
    readers = next(f for f in tables if "readers" in f.columns)
    assert list(readers["readers"]) == ["dr-a / dr-b"]
    assert "Dice of the regions 0.67" in readers["regions"].iloc[0]
    gallery = sorted(m for m in texts(at.markdown) if m.startswith("**p.png**"))
    assert gallery == [
        "**p.png** · dr-a · IDC-positive · unaided (blinded)",
        "**p.png** · dr-b · IDC-negative · unaided (blinded)",
    ]
    # Each model's CAM is captioned with the class it is of (its own prediction).
    captions = [c for image in at.get("image") for c in image.captions]
    cams = [c for c in captions if " CAM (" in c]
    assert len(cams) == 6, captions
    assert all(c.endswith(("(IDC-negative)", "(IDC-positive)")) for c in cams), cams
    # Reader B's aided read takes A's label and region: with both kinds of read chosen, the
    # readers are compared within each kind, not on B's aided read against A's unaided one.
    at.switch_page(REVIEW).run()
    draw_and_label(at, "aided", rect(0, 0, 25, 50), "IDC-positive")
    at = save(at, "aided")
    at.switch_page(COMPARE).run()
    at.multiselect(key="c_kinds").set_value(["unaided", "aided"]).run()
    assert not at.exception
    readers = next(f for f in frames(at) if "readers" in f.columns)
    assert list(readers["read"]) == ["unaided (blinded)"]
    assert "Dice of the regions 0.67" in readers["regions"].iloc[0]


def test_an_idc_patch_is_read_at_its_sets_4_um_per_px(env: str) -> None:
    # Kaggle IDC patches carry no resolution tags; their names say they are 4 µm/px.
    name = "10253_idx5_x1351_y1101_class1.png"
    at = review_page(patch(23), name=name)
    assert viewer_args(at)["mpp"] == pytest.approx(4.0)
    draw_and_label(at, "unaided", rect(0, 0, 25, 25), "IDC-positive")
    at = save(at, "unaided")
    assert any("(region of 0.01 mm², 625 px)" in s for s in texts(at.success)), texts(at.success)
    store = Store(env)
    assert float(store.reviews_frame()["mpp"].iloc[0]) == pytest.approx(4.0)
    scores = store.scores_frame()
    assert (scores["tolerance_um"] == 15.0).all() and (scores["tolerance_px"] == 3.75).all()


def test_compare_and_history_withhold_cases_a_reader_has_not_read_yet(env: str) -> None:
    name = "10253_idx5_x1351_y1101_class1.png"
    at = review_page(patch(19), name=name)
    draw_and_label(at, "unaided", rect(0, 0, 25, 50), "IDC-positive")
    at = save(at, "unaided")
    # dr-b (an admin, as everyone in local mode) has not read the case: neither page shows
    # its name, dr-a's diagnosis or the models' CAMs.
    study = int(at.selectbox(key="study_choice").value)

    def withheld(reader: str, page: str) -> bool:
        tables = [f.to_csv() for f in frames(at)]
        shown = " ".join(texts(at.markdown) + texts(at.caption) + tables)
        hidden = "1 read of 1 case you have not read yet is left out" in shown
        assert hidden == ("class1" not in shown) == (not at.dataframe), (reader, page, shown)
        return hidden

    for page in (COMPARE, HISTORY):
        for reader in ("dr-b", "dr-c"):
            at.text_input(key="reader").input(reader).run()
            at.switch_page(page).run()
            assert not at.exception and withheld(reader, page) and not at.get("image")
    # A second tab of dr-b's, on the unread case, with a read under way.
    tab = start("dr-b")
    tab.switch_page(REVIEW).run()
    draw_and_label(tab, "unaided", rect(0, 0, 25, 25), "IDC-positive")
    # Asked for, they are shown: the admin ends their own blinding for the case, for good...
    at.text_input(key="reader").input("dr-b").run()
    at.switch_page(COMPARE).run()
    at.button(key=f"c_unread-{study}-dr-b").click().run()
    assert not withheld("dr-b", COMPARE)
    # At once drawn from the record: no button to press again, and what was chosen said.
    assert not [b for b in at.button if b.key == f"c_unread-{study}-dr-b"]
    assert any("Your blinding has ended for 1 image of this study" in c for c in texts(at.caption))
    store = Store(env)
    case_id = store.cases(study)[0].case_id
    assert set(store.blinding_ended(study)) == {"dr-b"}
    assert set(store.blinding_ended(study)["dr-b"]) == {case_id}
    at.switch_page(HISTORY).run()
    assert not withheld("dr-b", HISTORY)
    assert any("Your blinding has ended for 1 image of this study" in c for c in texts(at.caption))
    # ... and only theirs: the next reader in this browser is blinded still.
    at.text_input(key="reader").input("dr-c").run()
    assert withheld("dr-c", HISTORY) and "dr-c" not in store.blinding_ended(study)
    # dr-b can no longer read the case: an unaided read now would not be blinded.
    at.text_input(key="reader").input("dr-b").run()
    at.switch_page(REVIEW).run()
    assert any("would not be blinded" in w for w in texts(at.warning))
    assert not any(b.key.startswith("save-") for b in at.button if b.key)
    assert any("0 of 0 done (1 closed: blinding ended)" in m for m in texts(at.markdown))
    assert list(store.reviews_frame()["reader"]) == ["dr-a"]
    # The other tab still showed the case unread: its save is refused, with nothing to retry.
    tab = save(tab, "unaided")
    (refused,) = [e for e in texts(tab.error) if e.startswith("Not saved")]
    assert "would not be blinded" in refused and "save again" not in refused
    assert list(store.reviews_frame()["reader"]) == ["dr-a"]
    # dr-c reads it unaided as before, and it is theirs to compare.
    at.text_input(key="reader").input("dr-c").run()
    draw_and_label(at, "unaided", rect(0, 0, 50, 50), "IDC-negative")
    at = save(at, "unaided")
    at.switch_page(COMPARE).run()
    assert not any("not read yet" in c for c in texts(at.caption))
    assert any(m.startswith(f"**{name}**") for m in texts(at.markdown))
    stored = store.reviews_frame()
    assert sorted(stored["reader"]) == ["dr-a", "dr-c"] and stored["blinded"].all()


def test_history_filters_and_exports(env: str) -> None:
    at = two_readers(env)
    at.switch_page(HISTORY).run()
    assert not at.exception
    table = next(f for f in frames(at) if "review_id" in f.columns)
    assert sorted(table["reader"]) == ["dr-a", "dr-b"]
    at.multiselect(key="f_reader").set_value(["dr-b"]).run()
    table = next(f for f in frames(at) if "review_id" in f.columns)
    assert list(table["reader"]) == ["dr-b"]
    store = Store(env)
    reviews = store.reviews_frame()
    csv = exports.scores_csv(store, reviews["review_id"])
    assert len(csv.strip().splitlines()) == 1 + len(store.scores_frame())
    rows = list(zip(reviews["review_id"], reviews["version"], reviews["item_hash"], strict=True))
    again = exports.regions_zip(store, rows)
    assert exports.regions_zip(store, rows) == again  # the same reads, the same bytes
    with zipfile.ZipFile(io.BytesIO(again)) as archive:
        names = sorted(archive.namelist())
        assert len(names) == 4 and all(n.startswith("review-") for n in names)
        png_name = next(n for n in names if n.startswith("review-1-") and n.endswith(".png"))
        mask = png_to_mask(archive.read(png_name))
        assert mask[:, :25].all() and not mask[:, 25:].any()
