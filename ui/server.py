"""Hardening of the LRAN Review server, through Streamlit's Starlette app (``st.App``).

Three things the plain ``streamlit run`` server does not do:

* **Allowed hosts.** Binding to loopback does not stop DNS rebinding: a page on
  ``evil.example`` whose name is re-pointed at 127.0.0.1 talks to this server with
  ``Host: evil.example:8501`` and ``Origin: http://evil.example:8501``, and Streamlit's
  same-origin check (Origin host == Host) lets its WebSocket in, with every reader's data.
  :class:`AllowedHostsMiddleware` refuses any HTTP request or WebSocket whose ``Host`` is not
  an allowed name (400 for HTTP; the WebSocket is closed before it is accepted, which the
  server answers with 403), and any WebSocket whose ``Origin`` names another host.
* **No tracebacks to users.** :func:`on_script_error` logs the full traceback (Python
  logging) under a short reference id and shows the reader a message with that id but without
  the exception's text, type or any server path.

The allowed names come from ``LRAN_ALLOWED_HOSTS`` (comma-separated; ``*`` allows all, for an
operator behind a proxy that checks hosts itself), else the loopback names. Every path is
checked, the health endpoint ``/_stcore/health`` included: nothing in Streamlit's own start-up
calls it (the uvicorn runner binds and serves without probing), and the browser's polling of it
carries the page's own, allowed, Host. A container probe that uses a pod IP must therefore send
an allowed Host or the operator must add that name.

* **Warm start.** :func:`start_warm_up` imports the app's modules (torch among them, seconds)
  and loads the default study's models in a background thread while the server starts, so the
  first reader's page does not wait for them.

``streamlit run`` serves an ``st.App`` only when the script assigns ``st.App(...)`` literally
at module level (it finds it by reading the file, see ``streamlit.web.server.app_discovery``),
so the entry script writes ``app = st.App(__file__, **server.app_options())`` rather than
calling :func:`build_app`; :func:`build_app` is for ``uvicorn`` and tests.
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final, TypedDict
from urllib.parse import urlsplit

import streamlit as st
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse

from annotations.store import StoreError

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

ENV_ALLOWED_HOSTS: Final = "LRAN_ALLOWED_HOSTS"
DEFAULT_ALLOWED_HOSTS: Final = ("localhost", "127.0.0.1", "[::1]")
# What a reader sees instead of a traceback; {reference} is also in the log line.
USER_ERROR_MESSAGE: Final = (
    "Something went wrong on the server; the details are in its log (reference {reference})."
)
# WebSocket close code "policy violation"; closing before accepting makes uvicorn answer 403.
_WS_POLICY_VIOLATION: Final = 1008

_LOGGER: Final = logging.getLogger(__name__)


@dataclass(frozen=True)
class HostPort:
    """A host name (lower case, IPv6 literals in brackets) and an optional port."""

    host: str
    port: int | None = None


def parse_host(value: str) -> HostPort | None:
    """Parses a ``Host`` header value or an allowed-host entry: ``name``, ``name:port``,
    ``1.2.3.4[:port]``, ``[v6][:port]`` or a bare ``::1``; gives None if malformed.

    Names are compared in lower case and without a trailing dot (``localhost.`` is
    ``localhost`` to the resolver, so it must be to the check too).
    """
    value = value.strip().lower()
    if not value:
        return None
    port_text: str | None = None
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        host, rest = value[: end + 1], value[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                return None
            port_text = rest[1:]
    elif value.count(":") > 1:
        # A bare IPv6 literal (only sensible in configuration): no port possible.
        host = f"[{value}]"
    else:
        host, sep, port_text_or_empty = value.partition(":")
        port_text = port_text_or_empty if sep else None
    if not host.startswith("["):
        host = host.rstrip(".")
    if not host or any(c in host for c in " /\\@?#"):
        return None
    if port_text is None:
        return HostPort(host)
    if not port_text.isdigit() or len(port_text) > 5 or int(port_text) > 65535:
        return None
    return HostPort(host, int(port_text))


def parse_origin(value: str) -> HostPort | None:
    """Parses an ``Origin`` header (``scheme://host[:port]``); None if malformed or ``null``."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        return None
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return parse_host(host if port is None else f"{host}:{port}")


class AllowedHosts:
    """The set of host names this server answers to; ``None`` entries mean all.

    An entry without a port matches that name on any port; one with a port only that port.
    """

    def __init__(self, entries: Iterable[str] | None) -> None:
        """``entries``: host names as in :func:`parse_host`, or None (or ``*``) for all.

        Raises ValueError on a malformed entry: a typo must stop the server, not silently
        refuse (or worse, admit) readers.
        """
        self.allow_all = entries is None
        patterns: list[HostPort] = []
        for entry in entries or ():
            if entry.strip() == "*":
                self.allow_all = True
                continue
            parsed = parse_host(entry)
            if parsed is None:
                raise ValueError(f"not a host name: {entry!r}")
            patterns.append(parsed)
        self.patterns: tuple[HostPort, ...] = tuple(patterns)

    def allows(self, candidate: HostPort | None) -> bool:
        """Whether ``candidate`` (a parsed Host or Origin) is allowed; None never is, unless
        all hosts are."""
        if self.allow_all:
            return True
        if candidate is None:
            return False
        return any(
            p.host == candidate.host and (p.port is None or p.port == candidate.port)
            for p in self.patterns
        )

    def __repr__(self) -> str:
        if self.allow_all:
            return "AllowedHosts(*)"
        names = [p.host if p.port is None else f"{p.host}:{p.port}" for p in self.patterns]
        return f"AllowedHosts({', '.join(names)})"


ENV_AIDED_WAIT: Final = "LRAN_AIDED_WAIT_S"
# A second Ctrl+Enter pressed just after the unaided save would otherwise save an aided read
# of maps the reader never looked at.
DEFAULT_AIDED_WAIT_S = 2.0


def aided_wait_s(environ: Mapping[str, str] | None = None) -> float:
    """Seconds the maps must have been on screen before an aided read is saved:
    ``LRAN_AIDED_WAIT_S`` from ``environ`` (default ``os.environ``), else
    :data:`DEFAULT_AIDED_WAIT_S`; 0 turns the wait off. Raises ValueError naming the variable
    for a value that is not a number of seconds in [0, 60]."""
    text = (os.environ if environ is None else environ).get(ENV_AIDED_WAIT, "").strip()
    if not text:
        return DEFAULT_AIDED_WAIT_S
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 <= value <= 60):
        raise ValueError(f"{ENV_AIDED_WAIT} must be a number of seconds from 0 to 60, got {text!r}")
    return value


def allowed_hosts_from_env(environ: Mapping[str, str] | None = None) -> AllowedHosts:
    """The allowed hosts configured by ``LRAN_ALLOWED_HOSTS`` (comma-separated; ``*`` for
    all); the loopback names when it is unset or blank.

    The variable replaces the defaults rather than adding to them, so an operator who lists
    the public name alone gets exactly that name.
    """
    value = (os.environ if environ is None else environ).get(ENV_ALLOWED_HOSTS, "")
    entries = [e for e in (part.strip() for part in value.split(",")) if e]
    return AllowedHosts(entries or DEFAULT_ALLOWED_HOSTS)


def _shown(value: str | None) -> str:
    """A header value fit for a log line: quoted, control characters escaped, short."""
    return "<none>" if value is None else repr(value[:100])


class AllowedHostsMiddleware:
    """Pure ASGI middleware that refuses requests addressed to a host not allowed.

    Pure ASGI (not ``BaseHTTPMiddleware``) because the data leave over the WebSocket, which
    ``BaseHTTPMiddleware`` never sees. HTTP: a ``Host`` not allowed (or missing, or malformed)
    gets 400. WebSocket: the same for ``Host``, and an ``Origin`` naming a host not allowed
    is refused too; both are closed before the handshake is accepted (uvicorn answers 403).
    A WebSocket without ``Origin`` comes from a non-browser client, which DNS rebinding cannot
    drive; it passes the Origin check (the Host check still applies), as in Streamlit itself.
    """

    def __init__(self, app: ASGIApp, hosts: AllowedHosts | None = None) -> None:
        """``hosts``: what to allow; from the environment (:func:`allowed_hosts_from_env`)
        when None."""
        self.app = app
        self.hosts = hosts if hosts is not None else allowed_hosts_from_env()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Passes allowed requests (and lifespan events) on; answers the others itself."""
        if scope["type"] not in {"http", "websocket"} or self.hosts.allow_all:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        host = headers.get("host")
        reason: str | None = None
        if not self.hosts.allows(parse_host(host or "")):
            reason = f"Host {_shown(host)}"
        elif scope["type"] == "websocket":
            origin = headers.get("origin")
            if origin is not None and not self.hosts.allows(parse_origin(origin)):
                reason = f"Origin {_shown(origin)}"
        if reason is None:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        _LOGGER.warning(
            "Refused %s %s from %s: %s is not an allowed host (%s)",
            "WebSocket" if scope["type"] == "websocket" else scope.get("method", "HTTP"),
            _shown(scope.get("path", "")),
            client[0] if client else "?",
            reason,
            ENV_ALLOWED_HOSTS,
        )
        if scope["type"] == "http":
            await PlainTextResponse("Invalid host header", status_code=400)(scope, receive, send)
            return
        # The first message of a WebSocket scope is "websocket.connect"; closing before
        # "websocket.accept" makes the server deny the upgrade.
        await receive()
        await send({"type": "websocket.close", "code": _WS_POLICY_VIOLATION, "reason": ""})


def _ensure_log_handler() -> None:
    """Gives this module's logger a stderr handler when logging is not configured at all, so
    the tracebacks reach the server log (Streamlit only configures its own loggers)."""
    if _LOGGER.hasHandlers():
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname) -7s %(name)s: %(message)s"))
    _LOGGER.addHandler(handler)
    _LOGGER.setLevel(logging.INFO)
    # Ours alone, not also root's (which would print it a second time if configured later).
    _LOGGER.propagate = False


def new_reference() -> str:
    """A short random id that ties the reader's message to the server log line."""
    return secrets.token_hex(4)


def log_for_operator(message: str) -> str:
    """Logs what the reader may not be shown (a server path, the model set's name in a blinded
    read) under a new reference id; gives the id, for the reader's message."""
    reference = new_reference()
    _ensure_log_handler()
    _LOGGER.error("%s (reference %s)", message, reference)
    return reference


def reader_message(err: Exception) -> str:
    """What a reader is told of an error: its text, except that a review-database error's URL
    and file (server paths) read "(see the server log)", where the whole message is logged
    under the reference it then ends with."""
    if not isinstance(err, StoreError) or not err.locations:
        return str(err)
    logged = log_for_operator(f"review database: {err}")
    text = str(err)
    for where in err.locations:
        text = text.replace(where, "(see the server log)")
    return f"{text} (reference {logged})"


def on_script_error(exc: Exception) -> bool:
    """``st.App`` script-error handler: logs the traceback under a reference id and shows the
    reader a message with that id and nothing of the exception itself.

    Gives True (Streamlit then shows nothing of its own) once the message is drawn; False if
    drawing failed, so that Streamlit's own display, redacted by
    ``client.showErrorDetails = "none"``, still tells the reader that something failed.
    """
    reference = new_reference()
    _LOGGER.error("Uncaught error in the app script (reference %s)", reference, exc_info=exc)
    try:
        st.error(USER_ERROR_MESSAGE.format(reference=reference), icon=":material/error:")
    except Exception:
        _LOGGER.exception("Could not show the error message (reference %s)", reference)
        return False
    return True


class AppOptions(TypedDict):
    """The keyword arguments of ``st.App`` that harden the server."""

    middleware: list[Middleware]
    on_script_error: Callable[[Exception], bool | None]


def app_options(environ: Mapping[str, str] | None = None) -> AppOptions:
    """The ``st.App`` keyword arguments: the allowed-hosts middleware (hosts read from
    ``environ``, default ``os.environ``, now) and the script-error handler.

    Use as ``app = st.App(__file__, **server.app_options())`` in the entry script.
    """
    _ensure_log_handler()
    hosts = allowed_hosts_from_env(environ)
    aided_wait_s(environ)  # a bad value stops the start, not a reader's save mid-study
    _LOGGER.info("Serving requests addressed to %s", hosts)
    return AppOptions(
        middleware=[Middleware(AllowedHostsMiddleware, hosts=hosts)],
        on_script_error=on_script_error,
    )


def start_warm_up() -> threading.Thread:
    """Starts the background thread of the warm start (see the module doc); gives it."""

    def run() -> None:
        # Imported here, not at the top: this module is imported before the server listens,
        # and these imports take seconds (torch, the models).
        from review.studies import DEFAULT_MODEL_SET
        from ui import cache

        try:
            cache.warm_up(DEFAULT_MODEL_SET).result()
        except Exception:
            # Any failure (no weights, a broken checkpoint) is told to the reader by the page
            # that needs the set; here it is only logged.
            _LOGGER.info("The default model set did not load at start", exc_info=True)

    thread = threading.Thread(target=run, name="lran-warm-start", daemon=True)
    thread.start()
    return thread


def build_app(script_path: str | Path, environ: Mapping[str, str] | None = None) -> st.App:
    """The hardened ``st.App`` for ``script_path``, for ``uvicorn module:app`` or tests.

    ``streamlit run`` cannot find an App built here (it looks for a literal ``st.App(...)``
    call in the script); see the module docstring.
    """
    return st.App(script_path, **app_options(environ))
