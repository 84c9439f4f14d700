"""Who is reading: reader names, passwords and the ways the app knows a reader.

Modes (``LRAN_AUTH``):

- ``local`` (default): one person on this machine types their name; allowed only while the
  server listens on a loopback address, and the app says so on screen.
- ``password``: reader accounts with argon2-hashed passwords, created by an admin with
  ``lran-review readers add``; readers sign in.
- ``proxy``: a hospital single sign-on proxy in front of the app names the reader in a header
  (``LRAN_USER_HEADER``, default ``X-Forwarded-User``); only when explicitly enabled, since any
  client could send that header to an app that is reachable without the proxy.
"""

from __future__ import annotations

import ipaddress
import os
import unicodedata

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from annotations.records import REFERENCE_PREFIX
from annotations.schema import NAME_LENGTH
from annotations.store import Store

AUTH_MODES = ("local", "password", "proxy")
ENV_AUTH = "LRAN_AUTH"
ENV_USER_HEADER = "LRAN_USER_HEADER"
DEFAULT_USER_HEADER = "X-Forwarded-User"
MIN_PASSWORD = 10

_hasher = PasswordHasher()


class IdentityError(ValueError):
    """A name, password or sign-in that is refused; the message says why (never which of the
    name or password was wrong)."""


def normalise_name(name: str) -> str:
    """A reader name as stored: NFKC-normalised (so look-alike forms are one name), without
    invisible or control characters, inner whitespace collapsed. Raises IdentityError for an
    empty or over-long name, or one that poses as an imported reference."""
    text = unicodedata.normalize("NFKC", name)
    # Format (Cf, e.g. zero-width space) and control (Cc) characters are invisible on screen:
    # "dr\\u200b-a" must not be a second "dr-a".
    text = "".join(ch for ch in text if unicodedata.category(ch) not in ("Cf", "Cc", "Co", "Cs"))
    text = " ".join(text.split())
    if not text:
        raise IdentityError("a reader name needs at least one visible character")
    if len(text) > NAME_LENGTH:
        raise IdentityError(f"a reader name has at most {NAME_LENGTH} characters")
    if text.lower().startswith(REFERENCE_PREFIX):
        raise IdentityError(f"names starting with {REFERENCE_PREFIX!r} are kept for references")
    return text


def hash_password(password: str) -> str:
    """An argon2id hash of a password of at least MIN_PASSWORD characters."""
    if len(password) < MIN_PASSWORD:
        raise IdentityError(f"a password needs at least {MIN_PASSWORD} characters")
    return _hasher.hash(password)


def known_spelling(store: Store, name: str) -> str:
    """``name`` (normalised) as it is already spelt in the store when it differs only in case
    ("alice" for "Alice" who has read before): one person stays one reader, whatever they
    type. An account's spelling first, then ``name`` itself if in use, then the first in use;
    a new name as it is."""
    account = store.reader(name)  # found in any case
    if account is not None:
        return account.name
    folded = name.casefold()
    same = [n for n in store.reader_names() if n.casefold() == folded]
    return name if name in same or not same else same[0]


def sign_in(store: Store, name: str, password: str) -> str:
    """The normalised name of the account whose password this is; IdentityError otherwise
    (unknown name, wrong password, disabled account, or an account without a password)."""
    try:
        key = normalise_name(name)
    except IdentityError:
        raise IdentityError("that name and password do not match an account") from None
    account = store.reader(key)
    refused = IdentityError("that name and password do not match an account")
    if account is None or account.password_hash is None:
        # Hash anyway, so an unknown name takes as long as a wrong password.
        _hasher.hash(password)
        raise refused
    try:
        _hasher.verify(account.password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        raise refused from None
    if account.disabled:
        raise IdentityError("this account is disabled; ask an admin")
    return account.name


def auth_mode() -> str:
    """The configured mode (LRAN_AUTH), refusing unknown values."""
    mode = os.environ.get(ENV_AUTH, "local").strip() or "local"
    if mode not in AUTH_MODES:
        raise IdentityError(f"{ENV_AUTH} must be one of {AUTH_MODES}, got {mode!r}")
    return mode


def is_loopback(address: str | None) -> bool:
    """Whether a server address only listens on this machine (127.0.0.0/8, ::1, localhost)."""
    if not address:
        return False  # Streamlit's default without an address listens on every interface
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


def user_header() -> str:
    """The header a trusted proxy names the reader in (LRAN_USER_HEADER)."""
    return os.environ.get(ENV_USER_HEADER, DEFAULT_USER_HEADER)
