"""Who is reading, in the app: local mode (a typed name, loopback only), accounts with
passwords, a trusted proxy's header; readers see their own reads, admins everyone's."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from test_app_pages import (
    APP,
    HISTORY,
    REVIEW,
    add,
    choose_study,
    draw_and_label,
    open_study,
    patch,
    png,
    rect,
    review_page,
    save,
    start,
    texts,
)
from test_app_region import MPP, SIDE, bach_mask, set_reference, tiff

from annotations.store import Store
from review import identity

PASSWORD = "correct horse battery"


@pytest.fixture
def accounts(env: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Password mode with an admin and a reader account."""
    monkeypatch.setenv("LRAN_AUTH", "password")
    store = Store(env)
    store.add_reader("boss", identity.hash_password(PASSWORD), "admin")
    store.add_reader("dr-a", identity.hash_password(PASSWORD), "reader")
    store.add_reader("dr-b", identity.hash_password(PASSWORD), "reader")
    return env


def sign_in(name: str, password: str = PASSWORD) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.text_input[0].input(name)
    at.text_input[1].input(password)
    at.button[0].click()
    return at.run()


def test_password_mode_signs_in_and_refuses_wrong_passwords(accounts: str) -> None:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    # Nobody is signed in: no reader name box, nothing to read.
    assert not [t for t in at.text_input if t.label == "Reader"]
    assert any("sign in" in i.lower() for i in texts(at.info))
    wrong = sign_in("dr-a", "wrong password!")
    assert "that name and password do not match an account" in texts(wrong.error)
    assert wrong.session_state["_person"] is None
    at = sign_in("dr\u200b-a")  # the same account, whatever invisible characters are typed
    assert at.session_state["_person"].name == "dr-a"
    assert sign_in("DR-A").session_state["_person"].name == "dr-a"  # or case
    assert not at.session_state["_person"].admin
    assert any("Signed in as" in c for c in texts(at.caption))


def test_readers_see_their_own_reads_and_admins_everyones(accounts: str) -> None:
    # The admin adds the case; readers have no uploader (cases are the study's, shared).
    boss = add(sign_in("boss"), [("p.png", png(patch(40)))])
    assert any("Added 1 case" in s for s in texts(boss.success))
    for reader in ("dr-a", "dr-b"):
        at = sign_in(reader)
        assert not at.file_uploader
        at.switch_page(REVIEW).run()
        draw_and_label(at, "unaided", rect(0, 0, 25, 50), "IDC-positive")
        at = save(at, "unaided")
        assert any("Saved as read" in s for s in texts(at.success))
    reads = Store(accounts).reviews_frame()
    assert sorted(reads["reader"]) == ["dr-a", "dr-b"]
    mine = sign_in("dr-a")
    mine.switch_page(HISTORY).run()
    table = next(d.value for d in mine.dataframe if "review_id" in d.value.columns)
    assert list(table["reader"]) == ["dr-a"]
    boss = sign_in("boss")
    boss.switch_page(HISTORY).run()
    # The admin has not read the case of this blinded study: asked, they see every read.
    assert not boss.dataframe
    study = int(boss.selectbox(key="study_choice").value)
    boss.button(key=f"f_unread-{study}-boss").click().run()
    table = next(d.value for d in boss.dataframe if "review_id" in d.value.columns)
    assert sorted(table["reader"]) == ["dr-a", "dr-b"]


def test_only_an_admin_stores_a_references_scores(accounts: str) -> None:
    # Stored, a reference is what Compare measures every reader against: a reader who imports
    # a file of the same name sees its scores but cannot replace the study's reference.
    study = open_study(accounts)
    boss = add(choose_study(sign_in("boss"), study), [("r.tif", tiff(patch(25, SIDE, SIDE), MPP))])
    digest = Store(accounts).cases(study)[0].item.item_hash
    pages = []
    for name in ("dr-a", "boss"):
        at = choose_study(sign_in(name), study)
        at.switch_page(REVIEW).run()
        pages.append(set_reference(at, digest, "A_mask.png", png(bach_mask())))
    reader, boss = pages
    assert not reader.exception and any("an admin stores" in c for c in texts(reader.caption))
    assert not [b for b in reader.button if b.key == "save_reference"]
    assert any("map" in d.value.columns for d in reader.dataframe)  # the scores, shown
    boss.button(key="save_reference").click().run()
    (row,) = Store(accounts).reviews_frame().itertuples()
    assert row.reader == "reference:A_mask.png" and row.imported_by == "boss"


def test_a_save_after_the_account_was_disabled_stores_nothing(accounts: str) -> None:
    add(sign_in("boss"), [("p.png", png(patch(41)))])
    at = sign_in("dr-a")
    at.switch_page(REVIEW).run()
    draw_and_label(at, "unaided", rect(0, 0, 25, 50), "IDC-positive")
    # Disabled while reading: the Save button's callback runs before the page signs them out.
    Store(accounts).update_reader("dr-a", disabled=True)
    at = save(at, "unaided")
    assert Store(accounts).reviews_frame().empty
    assert any("enabled; ask an admin" in e for e in texts(at.error))
    assert at.session_state["_person"] is None
    # The read is not lost: enabled again, the draft is still there and saves.
    Store(accounts).update_reader("dr-a", disabled=False)
    at = sign_in("dr-a")
    at.switch_page(REVIEW).run()
    at = save(at, "unaided")
    (row,) = Store(accounts).reviews_frame().itertuples()
    assert (row.reader, row.label) == ("dr-a", "IDC-positive")


def test_a_disabled_account_cannot_sign_in(accounts: str) -> None:
    signed = sign_in("dr-b")
    assert any("Signed in as **dr-b**" in c for c in texts(signed.caption))
    Store(accounts).update_reader("dr-b", disabled=True)
    at = sign_in("dr-b")
    assert any("disabled" in e for e in texts(at.error))
    assert at.session_state["_person"] is None
    # Disabled while signed in: signed out at the next step, with the form to sign in again.
    signed.run()
    assert any("no longer" in e for e in texts(signed.error))
    assert not any("Signed in as" in c for c in texts(signed.caption))
    assert signed.session_state["_person"] is None and "signed_in" not in signed.session_state
    assert [t.label for t in signed.text_input] == ["Name", "Password"]


def test_proxy_mode_takes_the_reader_from_the_configured_header(
    env: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LRAN_AUTH", "proxy")
    monkeypatch.setenv("LRAN_USER_HEADER", "X-Remote-User")
    Store(env).add_reader("dr-c", None, "reader")
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    # No header: nobody.
    assert any("did not name a reader" in e for e in texts(at.error))
    assert at.session_state["_person"] is None


def test_local_mode_is_refused_off_loopback(env: str) -> None:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert any("Local mode: no sign-in" in c for c in texts(at.caption))
    from streamlit import config

    original = config.get_option("server.address")
    config.set_option("server.address", "0.0.0.0")
    try:
        at.run()
        assert any("only allowed on a loopback address" in e for e in texts(at.error))
        assert at.session_state["_person"] is None
    finally:
        config.set_option("server.address", original)


def test_a_name_typed_in_another_case_is_the_same_local_reader(env: str) -> None:
    at = review_page(patch(41))
    draw_and_label(at, "unaided", rect(0, 0, 25, 50), "IDC-positive")
    at = save(at, "unaided")
    again = start("DR-A")  # the next day, caps lock on
    assert again.session_state["_person"].name == "dr-a"
    table = next(d.value for d in again.dataframe if "status" in d.value.columns)
    assert list(table["status"]) == ["unaided read saved"]
