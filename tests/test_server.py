"""The hardened server (ui/server.py): allowed hosts on HTTP and WebSocket, and no tracebacks
in the browser.

The end-to-end tests start ``streamlit run`` on a tiny entry script of their own (written to a
temporary folder, no models) that has the same shape as the app's entry: a module-level
``app = st.App(__file__, **server.app_options())`` for ``streamlit run`` to find, and the page
code under ``if __name__ == "__main__"``. They talk to it with raw HTTP (http.client, which
lets a test forge ``Host``) and raw WebSocket handshakes over a socket, and with Chromium
through Playwright. The unit tests drive the middleware with ASGI messages directly.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import pytest
from appserver import CHROMIUM, CHROMIUM_ARGS, get, ws_handshake
from conftest import streamlit_run

from ui.server import (
    AllowedHosts,
    AllowedHostsMiddleware,
    HostPort,
    allowed_hosts_from_env,
    parse_host,
    parse_origin,
    start_warm_up,
)

ROOT = Path(__file__).resolve().parent.parent
SECRET = "secret-detail-7f3a"
ENTRY = f'''"""A tiny app served through ui.server's hardened st.App (tests)."""

import streamlit as st

from ui import server

if __name__ != "__main__":
    app = st.App(__file__, **server.app_options())
else:
    st.title("Server test page")
    if st.query_params.get("fail"):
        raise RuntimeError("{SECRET} in " + __file__)
    st.write("all is well")
'''
STARTUP_S = 60


# --- parsing and configuration -------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:8501", HostPort("127.0.0.1", 8501)),
        ("LocalHost", HostPort("localhost")),
        ("localhost.:80", HostPort("localhost", 80)),
        ("[::1]:8501", HostPort("[::1]", 8501)),
        ("[::1]", HostPort("[::1]")),
        ("::1", HostPort("[::1]")),
        ("evil.example:8501", HostPort("evil.example", 8501)),
        ("", None),
        ("localhost:http", None),
        ("localhost:99999", None),
        ("[::1]8501", None),
        ("a b", None),
        ("user@localhost", None),
    ],
)
def test_parse_host(value: str, expected: HostPort | None) -> None:
    assert parse_host(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("http://127.0.0.1:8501", HostPort("127.0.0.1", 8501)),
        ("https://Review.Example.org", HostPort("review.example.org")),
        ("http://[::1]:8501", HostPort("[::1]", 8501)),
        ("null", None),
        ("file://", None),
        ("http://localhost:port", None),
    ],
)
def test_parse_origin(value: str, expected: HostPort | None) -> None:
    assert parse_origin(value) == expected


def test_allowed_hosts_default_to_loopback_on_any_port() -> None:
    hosts = allowed_hosts_from_env({})
    assert not hosts.allow_all
    for value in ("localhost", "127.0.0.1:8501", "[::1]:1", "LOCALHOST:8502"):
        assert hosts.allows(parse_host(value)), value
    for value in ("evil.example:8501", "127.0.0.2", "0.0.0.0:8501", ""):
        assert not hosts.allows(parse_host(value)), value


def test_allowed_hosts_from_the_environment_replace_the_defaults() -> None:
    hosts = allowed_hosts_from_env({"LRAN_ALLOWED_HOSTS": " review.example.org, ::1 ,x:8443"})
    assert hosts.allows(parse_host("review.example.org:443"))
    assert hosts.allows(parse_host("[::1]:8501"))
    assert hosts.allows(parse_host("x:8443"))
    assert not hosts.allows(parse_host("x:8444"))
    assert not hosts.allows(parse_host("localhost:8501"))
    assert allowed_hosts_from_env({"LRAN_ALLOWED_HOSTS": " , "}).patterns == (
        allowed_hosts_from_env({}).patterns
    )


def test_a_star_allows_every_host_and_a_typo_is_an_error() -> None:
    hosts = allowed_hosts_from_env({"LRAN_ALLOWED_HOSTS": "*"})
    assert hosts.allow_all
    assert hosts.allows(parse_host("evil.example")) and hosts.allows(None)
    with pytest.raises(ValueError, match="not a host name"):
        AllowedHosts(["review.example.org:https"])


# --- the middleware, message by message ----------------------------------------------------


def _call(
    scope_type: str, headers: dict[str, str], hosts: AllowedHosts
) -> tuple[bool, list[MutableMapping[str, Any]]]:
    """Runs the middleware once; gives whether the inner app was reached and what the
    middleware itself sent."""
    reached: list[bool] = []
    sent: list[MutableMapping[str, Any]] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        reached.append(True)

    async def receive() -> dict[str, Any]:
        if scope_type == "websocket":
            return {"type": "websocket.connect"}
        return {"type": "http.request", "body": b""}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": scope_type,
        "path": "/_stcore/stream" if scope_type == "websocket" else "/",
        "method": "GET",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
    }
    asyncio.run(AllowedHostsMiddleware(inner, hosts)(scope, receive, send))
    return bool(reached), sent


LOOPBACK = allowed_hosts_from_env({})


def test_middleware_lets_an_allowed_host_through() -> None:
    assert _call("http", {"Host": "127.0.0.1:8501"}, LOOPBACK) == (True, [])
    origin = {"Host": "localhost:8501", "Origin": "http://localhost:8501"}
    assert _call("websocket", origin, LOOPBACK) == (True, [])
    # A non-browser client sends no Origin; DNS rebinding needs a browser.
    assert _call("websocket", {"Host": "[::1]:8501"}, LOOPBACK) == (True, [])


def test_middleware_answers_400_to_a_forged_or_missing_host() -> None:
    for headers in ({"Host": "evil.example:8501"}, {}):
        reached, sent = _call("http", headers, LOOPBACK)
        assert not reached
        assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 400


def test_middleware_closes_a_websocket_with_a_forged_host_or_a_foreign_origin() -> None:
    for headers in (
        {"Host": "evil.example:8501", "Origin": "http://evil.example:8501"},
        {"Host": "127.0.0.1:8501", "Origin": "http://evil.example:8501"},
        {"Host": "127.0.0.1:8501", "Origin": "null"},
    ):
        reached, sent = _call("websocket", headers, LOOPBACK)
        assert not reached, headers
        assert [m["type"] for m in sent] == ["websocket.close"], headers


def test_middleware_with_a_star_checks_nothing() -> None:
    hosts = allowed_hosts_from_env({"LRAN_ALLOWED_HOSTS": "*"})
    headers = {"Host": "evil.example", "Origin": "http://other.example"}
    assert _call("websocket", headers, hosts) == (True, [])


# --- the real server -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def hardened(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """``streamlit run`` on the tiny entry script, on a free port; gives (port, log path).

    It runs in the temporary folder, so the repository's .streamlit/config.toml does not
    apply: showErrorDetails stays at Streamlit's default, "full", and the handler alone
    must keep the traceback out of the browser.
    """
    folder = tmp_path_factory.mktemp("hardened")
    (folder / "entry.py").write_text(ENTRY)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("LRAN_ALLOWED_HOSTS", None)
    log_path = folder / "server.log"
    with streamlit_run(
        "entry.py",
        env,
        log_path,
        cwd=folder,
        args=("--browser.gatherUsageStats", "false"),
        startup_s=STARTUP_S,
    ) as port:
        yield port, log_path


def test_a_request_to_an_allowed_host_is_served(hardened: tuple[int, Path]) -> None:
    port, _ = hardened
    status, body = get(port, "/", f"127.0.0.1:{port}")
    assert status == 200 and b"<html" in body.lower()
    assert get(port, "/_stcore/health", f"localhost:{port}") == (200, b"ok")


def test_a_forged_host_gets_400(hardened: tuple[int, Path]) -> None:
    port, log = hardened
    for path in ("/", "/_stcore/health", "/_stcore/host-config"):
        status, body = get(port, path, f"evil.example:{port}")
        assert status == 400, path
        assert body == b"Invalid host header"
    assert "Host 'evil.example:" in log.read_text()


def test_a_websocket_with_the_right_host_and_origin_is_upgraded(
    hardened: tuple[int, Path],
) -> None:
    """The control for the two below: the raw handshake itself is one the server accepts."""
    port, _ = hardened
    assert ws_handshake(port, f"127.0.0.1:{port}", f"http://127.0.0.1:{port}") == 101


def test_a_rebound_websocket_is_refused(hardened: tuple[int, Path]) -> None:
    """DNS rebinding: forged Host and a matching Origin, which Streamlit's own same-origin
    check would let in."""
    port, _ = hardened
    forged = f"evil.example:{port}"
    assert ws_handshake(port, forged, f"http://{forged}") == 403


def test_a_websocket_from_a_foreign_origin_is_refused(hardened: tuple[int, Path]) -> None:
    port, log = hardened
    assert ws_handshake(port, f"127.0.0.1:{port}", "http://evil.example") == 403
    assert "Origin 'http://evil.example'" in log.read_text()


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM}")
def test_a_failing_page_shows_a_reference_not_a_traceback(hardened: tuple[int, Path]) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    port, log = hardened
    url = f"http://127.0.0.1:{port}"
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page()
            page.set_default_timeout(60_000)
            page.goto(url)
            page.get_by_text("all is well").wait_for()

            page.goto(f"{url}/?fail=1")
            alert = page.get_by_text("Something went wrong on the server")
            alert.wait_for()
            page.wait_for_function(
                "() => !document.querySelector('[data-testid^=stStatusWidgetRunning]')"
            )
            page.wait_for_timeout(500)
            text = page.locator("body").inner_text()
            html = page.content()
        finally:
            browser.close()
    match = re.search(r"reference ([0-9a-f]{8})", text)
    assert match, text
    for leak in (SECRET, "/work/", "site-packages", "Traceback", "RuntimeError", "entry.py"):
        assert leak not in text, leak
        assert leak not in html, leak
    assert page_has_no_exception_element(html)

    logged = log.read_text()
    line = f"Uncaught error in the app script (reference {match.group(1)})"
    assert line in logged
    after = logged[logged.index(line) :]
    assert "Traceback (most recent call last)" in after
    assert f"RuntimeError: {SECRET} in " in after


def page_has_no_exception_element(html: str) -> bool:
    """Streamlit's own exception box (``stException``) is absent."""
    return "stException" not in html


def test_the_warm_start_loads_the_default_set_in_the_background(
    env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from review.studies import DEFAULT_MODEL_SET
    from ui import cache

    thread = start_warm_up()
    assert thread.daemon and thread.name == "lran-warm-start"
    thread.join(timeout=120)
    assert not thread.is_alive()
    future = cache.warm_up(DEFAULT_MODEL_SET)
    assert future.done() and future.exception() is None
    # The page gets the very set the warm start loaded, not a second copy.
    loaded = cache.model_set(DEFAULT_MODEL_SET)
    assert loaded is future.result() and set(loaded.models) == {
        "resnet18",
        "resnet18-ran",
        "resnet18-lran",
    }
    # A missing set fails without stopping anything, and is tried again when asked for.
    monkeypatch.setenv("LRAN_MODELS_DIR", str(tmp_path / "none"))
    failed = cache.warm_up(DEFAULT_MODEL_SET)
    with pytest.raises(FileNotFoundError):
        failed.result(timeout=60)
    assert cache.warm_up(DEFAULT_MODEL_SET) is not failed
