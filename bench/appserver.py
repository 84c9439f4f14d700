"""The app's server as the benchmarks and the tests start and probe it: one way to run
``streamlit run`` on a free loopback port, wait for it, ask it for a page or a WebSocket, and
stop it; and the Chromium they drive it with (Debian's, never Playwright's download).

Not a benchmark: the bench scripts import it from this folder, and ``tests/conftest.py`` puts
this folder on ``sys.path``.
"""

from __future__ import annotations

import base64
import http.client
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class StreamlitServer:
    """``streamlit run script`` headless on a free port of 127.0.0.1, started at once, its
    output in ``log_path``. It reads ``.streamlit/config.toml`` of ``cwd`` (the project's: no
    file watcher); ``args`` are more command-line flags. Use as a context manager, which stops
    it.

    Attributes: ``proc`` (the process), ``port``, ``url`` (``http://127.0.0.1:PORT``),
    ``started`` (``time.perf_counter()`` just before the process was started).
    """

    def __init__(
        self,
        script: str | Path,
        env: Mapping[str, str],
        log_path: Path,
        *,
        cwd: Path = ROOT,
        args: Sequence[str] = (),
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        command = [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(script),
            "--server.port",
            str(self.port),
            "--server.headless",
            "true",
            "--server.address",
            "127.0.0.1",
            *args,
        ]
        with log_path.open("w") as log:
            self.started = time.perf_counter()
            self.proc = subprocess.Popen(
                command, cwd=cwd, env=dict(env), stdout=log, stderr=subprocess.STDOUT
            )

    def wait(self, timeout_s: float = 120, poll_s: float = 0.3) -> None:
        """Returns once the health check answers 200, polled every ``poll_s`` seconds; raises
        RuntimeError with the end of the log when the process ends or ``timeout_s`` passes."""
        deadline = time.monotonic() + timeout_s
        while not self.healthy(timeout_s=2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not start:\n{self.log_path.read_text()[-4000:]}")
            time.sleep(poll_s)

    def healthy(self, timeout_s: float = 10) -> bool:
        """Whether the process runs and its health check answers 200 within ``timeout_s``."""
        if self.proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=timeout_s) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    def close(self, timeout_s: float = 15) -> None:
        """Stops the server: SIGTERM, then SIGKILL after ``timeout_s``."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> StreamlitServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def get(port: int, path: str, host: str, timeout_s: float = 30) -> tuple[int, bytes]:
    """A GET of ``path`` from 127.0.0.1:``port`` with the given Host header; gives (status,
    body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        conn.request("GET", path, headers={"Host": host})
        answer = conn.getresponse()
        return answer.status, answer.read()
    finally:
        conn.close()


def ws_handshake(port: int, host: str, origin: str | None, timeout_s: float = 30) -> int:
    """A raw WebSocket upgrade request to /_stcore/stream with the given Host and Origin
    (none: no Origin header); gives the HTTP status of the answer (101 when upgraded, 0 when
    the answer has no status line)."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        "GET /_stcore/stream HTTP/1.1",
        f"Host: {host}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        "Sec-WebSocket-Protocol: streamlit",
    ]
    if origin is not None:
        lines.append(f"Origin: {origin}")
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = b""
        while b"\r\n" not in head:
            chunk = sock.recv(1024)
            if not chunk:
                break
            head += chunk
    match = re.match(rb"HTTP/1\.1 (\d{3})", head)
    return int(match.group(1)) if match else 0
