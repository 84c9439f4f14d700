"""Who is using the app, in the mode the operator configured (review.identity): a name typed in
local mode, a signed-in account, or the name a trusted proxy sends."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from annotations.store import StoreError
from review import identity
from ui import cache, widgets


@dataclass(frozen=True)
class Person:
    """The reader using the app: their normalised name and whether they are an admin (who sees
    every read and manages studies)."""

    name: str
    admin: bool


def _local() -> Person | None:
    key = "reader"
    if key not in st.session_state:
        # A page switch in the browser can drop the widget's value and the address bar's:
        # this session's own reader comes first, never another reader's name. A reload keeps
        # the reader from the address bar, else the last reader of this store.
        st.session_state[key] = (
            st.session_state.get("_reader_name")
            or st.query_params.get("reader")
            or _last_reader()
            or ""
        )
    st.text_input(
        "Reader",
        key=key,
        placeholder="your name or initials",
        help="Stored with every read you save.",
    )
    typed = st.session_state[key] or ""
    if not typed.strip():
        return None
    try:
        name = identity.normalise_name(typed)
    except identity.IdentityError as err:
        st.error(widgets.plain(str(err)))
        return None
    # The store's spelling of the name (another case typed), looked up when the name changes,
    # not at every rerun.
    if st.session_state.get("_reader_typed") != name:
        try:
            known = identity.known_spelling(cache.store(cache.database_url()), name)
        except StoreError:
            known = name  # as typed; the database's trouble is reported where it is read
        st.session_state["_reader_typed"], st.session_state["_reader_known"] = name, known
    name = st.session_state["_reader_known"]
    st.query_params["reader"] = name
    st.session_state["_reader_name"] = name
    # One person on this machine: they manage the studies too.
    return Person(name, admin=True)


def _last_reader() -> str | None:
    try:
        return cache.store(cache.database_url()).last_reader()
    except StoreError:
        return None


def _password() -> Person | None:
    signed = st.session_state.get("signed_in")
    if signed:
        found = _person(signed)
        if found is not None:
            st.caption(f"Signed in as **{widgets.plain(signed)}**")
            if st.button("Sign out", key="sign_out", icon=":material/logout:"):
                del st.session_state["signed_in"]
                st.rerun()
            return found
        # Disabled since signing in: signed out, with the sign-in form again.
        del st.session_state["signed_in"]
    with st.form("sign_in"):
        name = st.text_input("Name")
        password = st.text_input("Password", type="password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        try:
            st.session_state["signed_in"] = identity.sign_in(
                cache.store(cache.database_url()), name, password
            )
        except identity.IdentityError as err:
            st.error(str(err))
            return None
        st.rerun()
    return None


def _proxy() -> Person | None:
    header = identity.user_header()
    sent = st.context.headers.get(header)
    if not sent:
        st.error(f"The sign-in proxy did not name a reader (header {widgets.plain(header)}).")
        return None
    try:
        name = identity.normalise_name(sent)
    except identity.IdentityError as err:
        st.error(widgets.plain(str(err)))
        return None
    found = _person(name)
    if found is not None:
        st.caption(f"Signed in as **{widgets.plain(found.name)}** (single sign-on)")
    return found


def _person(name: str) -> Person | None:
    account = cache.store(cache.database_url()).reader(name)
    if account is None or account.disabled:
        st.error("This account is not (or no longer) enabled; ask an admin.")
        return None
    # The account's spelling: the proxy may send "DR-Smith" for "dr-smith", one reader still.
    return Person(account.name, admin=account.role == "admin")


def sign_in() -> Person | None:
    """Draws the sign-in part of the sidebar for the configured mode; gives the person, None
    until someone is known. In local mode on an address other than loopback it refuses."""
    try:
        mode = identity.auth_mode()
    except identity.IdentityError as err:
        st.error(str(err))
        return None
    if mode == "local":
        if not identity.is_loopback(st.get_option("server.address")):
            st.error(
                "Local mode (no sign-in) is only allowed on a loopback address; set "
                "LRAN_AUTH=password or proxy to serve readers on a network."
            )
            return None
        person = _local()
        st.caption("Local mode: no sign-in; only this machine can reach the app.")
        return person
    return _password() if mode == "password" else _proxy()


def person() -> Person | None:
    """The person sign_in found in this run."""
    found: Person | None = st.session_state.get("_person")
    return found


def still_allowed(admin: bool = False) -> bool:
    """For a button's callback, which runs before this run's sign_in: whether the person of the
    last run may still act (their account still enabled, and an admin's where ``admin``). An
    account disabled or demoted meanwhile may not; local mode has no accounts."""
    found = person()
    if found is None or (admin and not found.admin):
        return False
    try:
        if identity.auth_mode() == "local":
            return True
        account = cache.store(cache.database_url()).reader(found.name)
    except (identity.IdentityError, StoreError):
        return True  # the action itself reports the trouble
    return account is not None and not account.disabled and (not admin or account.role == "admin")
