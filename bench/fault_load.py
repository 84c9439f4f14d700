"""Fault and load suite of the review app ("safe to run for a department"), run by hand:

    .venv/bin/python bench/fault_load.py                      # every case, SQLite
    .venv/bin/python bench/fault_load.py --readers 3 --minutes 1 --only load websocket
    .venv/bin/python bench/fault_load.py --pg postgresql+psycopg://postgres:lran@127.0.0.1/lran_test

Prints a table of checks (PASS/FAIL) and figures, and exits with status 1 when a check fails
(2 for a usage error). The cases:

``load``
    ``--readers`` N (default 10) concurrent readers, each its own Chromium page (Debian's
    /usr/bin/chromium; Playwright's own browsers are never used) and session, with its own name
    typed in the sidebar's "Reader" box (local mode), work through a study of ``--cases`` random
    50 x 50 patches for ``--minutes`` D (default 5) against ``streamlit run app.py``: open the
    next unread case, draw a rectangle in the viewer with the mouse, press 1 or 2 for the
    diagnosis, save with Ctrl+Enter, move on with J (U at the end of the list). Figures: p50/p95
    of "save" (key press until "Saved as read" shows) and "next" (key press until the next
    case's "Case i of N" header shows), the streamlit process's RSS (with its children, sampled
    every second: start, max, end). Checks, in the database: every save a reader saw confirmed
    is stored (review id, reader, case, label), nothing else was stored, and no read is
    half-stored (every read has as many predictions and scores rows as every other; no orphan
    rows). Each reader checks that the Reader box still shows its own name before it saves
    (and types it again when not, so that the load goes on under the right names); then
    ``load:names`` checks that deterministically: one reader opens a case from the Worklist
    while another reader's place is written every 20 ms, and saves; the box and the stored
    read must name the first reader. ``load:quick-save``: one reader draws and at once
    presses 2 and Ctrl+Enter (no pause) on 5 cases; every save must keep the region just drawn.
    (The load's readers wait until the store's draft holds their drawing and diagnosis before
    they save, so that they measure saving, not this race.)
``files`` (SQLite only)
    Through the app (streamlit.testing AppTest), with a read saved and a second one drafted:
    (a) the database file is deleted, (b) replaced by ``mv`` of another valid database (a
    backup of the same database taken before the first read), (c) corrupted in place (the middle
    quarter of the file overwritten with random bytes, after a checkpoint so that the bytes are
    the live pages). The next save must not report success and must say what happened
    (deleted / replaced / malformed); the unlinked and the replacing files must hold exactly the
    rows they held before (compared table by table, WAL included, through hard links kept for
    the purpose); after the original is restored (or, when that is not enough, the app
    restarted: its cached Store dropped) the save works, and the file holds every confirmed
    read and nothing half-stored.
``kill``
    A process saves reads in a loop through annotations.store.Store, logging each after
    ``save_review`` returns; it is killed with SIGKILL at a random moment, ``--kills`` times
    (default 20). After each kill: the database opens, passes ``PRAGMA integrity_check``
    (SQLite), has no half-stored read, holds every logged read with its values, and every
    (item, reader) has versions 1..n without a gap.
``websocket``
    Against the real ``streamlit run app.py``: a WebSocket to /_stcore/stream with a forged
    Host and matching Origin, and one with the right Host but a foreign Origin, are refused
    (a control with the right Host and Origin is upgraded); HTTP with a forged Host gets 400.
``memory``
    Upload through Chromium to the real server: a PNG whose header claims 20000 x 20000 px
    (refused by name, no growth of the server's memory), then a real single-colour
    10900 x 10900 grayscale PNG (about 136 KiB): the server's RSS before, at its peak (sampled
    every 0.1 s, and VmHWM) and 10 s after the page settles, whatever the outcome; the
    database must agree with what the page said (a case of that size, or none). A 50 x 50 patch
    is added first, so that loading the models is not counted, and the bench also measures
    what decoding the 10900 px image costs where it is accepted (``review.items.read_image``
    with the pixel budget lifted, in a process of its own).
``contention``
    6 writers x 30 saves, each writer a thread with its own Store, all on one item by one
    reader, released together: no failure, versions exactly 1..180, no half-stored read. On
    PostgreSQL with ``--pg``, else on a SQLite file.

``--pg URL`` runs load, kill and contention on a fresh schema of that PostgreSQL database
(dropped afterwards); the file faults are SQLite's by nature and always use files. Models are a
random-weight set of the app's three variants at 128 px (the shipped input size): speed and
memory do not depend on the weights' values. The figures depend on what else uses the CPU:
report the machine's load with them. tests/test_faults.py runs the same cases, shorter.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import hashlib
import io
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere: the project's packages
    sys.path.insert(0, str(ROOT))

from appserver import CHROMIUM, CHROMIUM_ARGS, StreamlitServer, get, ws_handshake  # noqa: E402

from annotations.geojson import mask_to_geojson  # noqa: E402
from annotations.records import ReviewRecord, ScoreRecord, content_hash  # noqa: E402
from annotations.scores import agreement  # noqa: E402
from annotations.store import Store, StoreError  # noqa: E402

if TYPE_CHECKING:
    from playwright.async_api import Browser, FilePayload, Frame, Page, ViewportSize
    from streamlit.testing.v1 import AppTest

VARIANTS = ["resnet18", "resnet18-ran", "resnet18-lran"]
CLASSES = ["IDC-negative", "IDC-positive"]
# The default study's label set (IDC): the keys 1 and 2 give these diagnoses.
LABEL_KEYS = {"1": "IDC-negative", "2": "IDC-positive"}
IFRAME = "iframe[title*='lran_viewer']"
VIEWPORT: ViewportSize = {"width": 1600, "height": 1000}
ARTIFACTS = ROOT / "test-artifacts" / "fault-load"
SAVED = re.compile(r"Saved as read (\d+), version (\d+)")
HEADER = re.compile(r"Case (\d+) of (\d+)")
MIB = 1024 * 1024
CASES = ("load", "files", "kill", "websocket", "memory", "contention")
FILE_FAULTS = ("delete", "replace", "corrupt")
NAME_KEPT = "each reader's typed name stays in the Reader box"
# What the refusal of a save must name, per file fault.
FAULT_WORDS: dict[str, tuple[str, ...]] = {
    "delete": ("deleted",),
    "replace": ("replaced",),
    "corrupt": ("malformed", "corrupt", "not a database"),
}


# ---------------------------------------------------------------------------------------------
# What a case found


@dataclass
class Check:
    """One pass/fail statement of a case, with what was seen."""

    name: str
    ok: bool
    detail: str = ""


@dataclass
class Outcome:
    """A case's checks and figures (name -> shown value), and raw values for the tests."""

    case: str
    checks: list[Check] = field(default_factory=list)
    figures: dict[str, str] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        """Records a check; gives ``ok``."""
        self.checks.append(Check(name, bool(ok), detail))
        return bool(ok)

    def figure(self, name: str, value: str) -> None:
        """Records a figure."""
        self.figures[name] = value

    @property
    def failures(self) -> list[Check]:
        """The checks that failed."""
        return [c for c in self.checks if not c.ok]

    def summary(self) -> str:
        """The failures, one per line (for assertion messages)."""
        return "\n".join(f"{self.case}: {c.name}: {c.detail}" for c in self.failures)


def print_table(outcomes: Sequence[Outcome]) -> None:
    """The checks and figures of every case as one plain-text table."""
    rows: list[tuple[str, str, str, str]] = []
    for out in outcomes:
        for c in out.checks:
            rows.append((out.case, c.name, "PASS" if c.ok else "FAIL", c.detail))
        for name, value in out.figures.items():
            rows.append((out.case, name, "", value))
    widths = [max(len(r[i]) for r in [("case", "what", "result", "value"), *rows]) for i in (0, 1)]
    head = f"{'case':<{widths[0]}}  {'what':<{widths[1]}}  result  value"
    print(head)
    print("-" * min(len(head) + 40, 160))
    for case, what, result, value in rows:
        print(f"{case:<{widths[0]}}  {what:<{widths[1]}}  {result:<6}  {value}")


# ---------------------------------------------------------------------------------------------
# Databases


def sqlite_url(path: Path) -> str:
    """The SQLAlchemy URL of a SQLite file."""
    return f"sqlite:///{path}"


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL, None for another database."""
    return Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None


@contextlib.contextmanager
def pg_schema(base_url: str) -> Iterator[str]:
    """A fresh schema in a PostgreSQL database, dropped afterwards; gives a URL whose
    connections use it (search_path), as tests/test_annotations_store.py does."""
    schema = f"lran_fault_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base_url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    url = sa.engine.make_url(base_url).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


def _checking_url(url: str) -> str:
    """A URL to read a database with that never creates a missing SQLite file."""
    path = sqlite_path(url)
    return url if path is None else f"sqlite:///file:{path}?mode=rw&uri=true"


def stored_reads(url: str) -> list[dict[str, Any]]:
    """Every stored read with its case's file name and its number of prediction and score
    rows."""
    engine = sa.create_engine(_checking_url(url))
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT r.id, r.reader, r.label, r.version, r.item_hash, r.case_id, "
                    "r.read_kind, r.is_reference, i.filename, "
                    "(SELECT COUNT(*) FROM predictions p WHERE p.review_id = r.id), "
                    "(SELECT COUNT(*) FROM scores s WHERE s.review_id = r.id) "
                    "FROM reviews r LEFT JOIN cases c ON c.id = r.case_id "
                    "LEFT JOIN items i ON i.hash = r.item_hash ORDER BY r.id"
                )
            ).all()
    finally:
        engine.dispose()
    keys = (
        "id reader label version item_hash case_id read_kind is_reference filename "
        "predictions scores"
    ).split()
    return [dict(zip(keys, row, strict=True)) for row in rows]


def half_stored(
    url: str, predictions: int | None = None, scores: int | None = None
) -> tuple[list[str], list[dict[str, Any]]]:
    """What is half-stored in a database: reads without predictions or scores (or with other
    counts than ``predictions`` / ``scores``, or than the other reads when None), prediction or
    score rows without their read, reads without their item. Gives (problems, the reads)."""
    reads = stored_reads(url)
    problems: list[str] = []
    own = [r for r in reads if not r["is_reference"]]
    shapes = Counter((r["predictions"], r["scores"]) for r in own)
    if predictions is None or scores is None:
        usual = shapes.most_common(1)[0][0] if shapes else (0, 0)
        predictions = usual[0] if predictions is None else predictions
        scores = usual[1] if scores is None else scores
    for r in own:
        if r["predictions"] == 0 or r["scores"] == 0:
            problems.append(f"read {r['id']}: {r['predictions']} predictions, {r['scores']} scores")
        elif (r["predictions"], r["scores"]) != (predictions, scores):
            problems.append(
                f"read {r['id']}: {r['predictions']} predictions and {r['scores']} scores, "
                f"others {predictions} and {scores}"
            )
        if r["filename"] is None:
            problems.append(f"read {r['id']}: its item {r['item_hash'][:12]} is not stored")
    engine = sa.create_engine(_checking_url(url))
    try:
        with engine.connect() as conn:
            for table in ("predictions", "scores"):
                orphans = conn.execute(
                    sa.text(
                        f"SELECT COUNT(*) FROM {table} x LEFT JOIN reviews r "
                        "ON r.id = x.review_id WHERE r.id IS NULL"
                    )
                ).scalar_one()
                if orphans:
                    problems.append(f"{orphans} {table} rows without their read")
    finally:
        engine.dispose()
    return problems, reads


def version_gaps(reads: list[dict[str, Any]]) -> list[str]:
    """(item, reader) pairs whose versions are not exactly 1..n."""
    versions: dict[tuple[str, str], list[int]] = {}
    for r in reads:
        versions.setdefault((r["item_hash"], r["reader"]), []).append(int(r["version"]))
    return [
        f"{reader} on {item[:12]}: versions {sorted(found)[:12]}..."
        for (item, reader), found in versions.items()
        if sorted(found) != list(range(1, len(found) + 1))
    ]


def integrity_check(path: Path) -> str:
    """SQLite's ``PRAGMA integrity_check`` of a database file (its WAL included): 'ok' or
    what is wrong (first lines)."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=10)
    except sqlite3.Error as err:
        return f"cannot open: {err}"
    try:
        rows = conn.execute("PRAGMA integrity_check").fetchall()
    except sqlite3.Error as err:
        return f"error: {err}"
    finally:
        conn.close()
    return "; ".join(str(r[0]) for r in rows[:3])


def logical_state(main: Path, wal: Path | None = None) -> dict[str, str]:
    """Every table of a SQLite database, as row count and a hash of its rows, read from copies
    of the main file and of its WAL (so that nothing is checkpointed into the originals, and
    rows still in the WAL count). {'error': ...} when it cannot be read."""
    with tempfile.TemporaryDirectory(prefix="lran-state-") as tmp:
        copy = Path(tmp) / "db.sqlite"
        shutil.copyfile(main, copy)
        if wal is not None and wal.is_file():
            shutil.copyfile(wal, Path(tmp) / "db.sqlite-wal")
        try:
            conn = sqlite3.connect(copy)
            try:
                tables = [
                    r[0]
                    for r in conn.execute(
                        "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
                    )
                ]
                state = {}
                for table in tables:
                    rows = conn.execute(f'SELECT * FROM "{table}" ORDER BY rowid').fetchall()
                    digest = hashlib.sha256(repr(rows).encode()).hexdigest()[:12]
                    state[table] = f"{len(rows)} rows {digest}"
                return state
            finally:
                conn.close()
        except sqlite3.Error as err:
            return {"error": str(err)}


def state_diff(before: dict[str, str], after: dict[str, str]) -> str:
    """The tables whose rows differ, as 'table: before -> after'."""
    return "; ".join(
        f"{t}: {before.get(t)} -> {after.get(t)}"
        for t in sorted(set(before) | set(after))
        if before.get(t) != after.get(t)
    )


def wal_of(path: Path) -> Path:
    """The WAL file SQLite keeps beside a database file."""
    return path.with_name(path.name + "-wal")


# ---------------------------------------------------------------------------------------------
# Images and records


def png_bytes(rgb: np.ndarray) -> bytes:
    """PNG bytes of an (H, W, 3) uint8 array."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


def random_patch(seed: int, side: int = 50) -> bytes:
    """A random RGB patch as PNG; each seed is another image (another content hash)."""
    rgb = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    return png_bytes(rgb)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(side: int = 20_000) -> bytes:
    """A PNG whose header claims side x side RGB pixels and that holds none."""
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IEND", b"")


def flat_png(side: int = 10_900, grey: int = 200) -> bytes:
    """A real single-colour side x side 8-bit grayscale PNG (10900 px: about 136 KiB),
    compressed row by row so that making it needs no side x side array here."""
    packer = zlib.compressobj(9)
    row = b"\x00" + bytes([grey]) * side
    parts = [packer.compress(row) for _ in range(side)]
    parts.append(packer.flush())
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", b"".join(parts))
        + _chunk(b"IEND", b"")
    )


def store_record(reader: str, item: int, label: str, seed: int) -> ReviewRecord:
    """A read as annotations.store stores it, without the app: a 24 x 32 region, two models'
    predictions and two scores (so a whole read is 1 review + 2 predictions + 2 scores)."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((24, 32), dtype=bool)
    x = int(rng.integers(0, 16))
    mask[4:14, x : x + 12] = True
    saliency = rng.random((24, 32))
    p = float(rng.random())
    return ReviewRecord(
        item_hash=content_hash(f"fault-load item {item}".encode()),
        filename=f"item-{item}.png",
        width=32,
        height=24,
        kind="patch",
        reader=reader,
        model_set="idc",
        label=label,
        mask=mask,
        geojson=mask_to_geojson(mask),
        predictions={
            "resnet18": {CLASSES[0]: p, CLASSES[1]: 1 - p},
            "resnet18-lran": {CLASSES[0]: 1 - p, CLASSES[1]: p},
        },
        scores=[
            ScoreRecord.of("resnet18", "cam", CLASSES[1], agreement(saliency, mask), 6.0),
            ScoreRecord.of("resnet18-lran", "gate1", None, agreement(saliency**2, mask), 6.0),
        ],
        mpp=4.0,
    )


def random_models(root: Path, input_size: int = 128) -> Path:
    """A model set 'idc' of the app's three variants with random weights under ``root`` (as
    tests/conftest.py writes it); gives ``root``, for LRAN_MODELS_DIR."""
    import torch

    import lran_core

    torch.manual_seed(0)
    for variant in VARIANTS:
        target = root / "idc" / f"{variant}.safetensors"
        if target.is_file():
            continue
        lran_core.save_checkpoint(
            lran_core.build_model(variant, num_classes=2),
            target,
            class_names=CLASSES,
            input_size=input_size,
            mean=(0.5, 0.5, 0.5),
            std=(0.25, 0.25, 0.25),
            mpp=4.0,
            data_description="random weights (fault and load suite)",
        )
    return root


def populate(url: str, cases: int, seed: int = 1000) -> list[str]:
    """Adds ``cases`` random 50 x 50 patches to the default study (created if needed), as the
    Worklist page would; gives their file names in worklist order."""
    from review.studies import add_images, default_study

    store = Store(url)
    try:
        study = default_study(store)
        names = [f"load{i:04d}.png" for i in range(1, cases + 1)]
        files = [(name, random_patch(seed + i)) for i, name in enumerate(names)]
        add_images(store, study, files, "fault-load", patch_side=50)
        return names
    finally:
        store.close()


# ---------------------------------------------------------------------------------------------
# The app's server and its memory


class AppServer(StreamlitServer):
    """``streamlit run app.py`` (appserver.StreamlitServer) with a given database and models
    folder, in local mode (no sign-in), logging to ``log_path``; started and healthy once made
    (RuntimeError with the log when not within ``startup_s``). Use as a context manager."""

    def __init__(
        self, db_url: str, models_dir: Path, log_path: Path, startup_s: float = 180.0
    ) -> None:
        self.db_url = db_url
        env = {**os.environ, "LRAN_REVIEW_DB": db_url, "LRAN_MODELS_DIR": str(models_dir)}
        # The suite needs the defaults: loopback hosts only, local mode.
        for name in ("LRAN_ALLOWED_HOSTS", "LRAN_AUTH", "LRAN_REVIEW_BLOBS"):
            env.pop(name, None)
        super().__init__("app.py", env, log_path)
        try:
            self.wait(startup_s)
        except BaseException:
            self.close()
            raise

    def rss_mib(self) -> float:
        """Resident memory of the server process and its children, MiB."""
        return process_rss_mib(self.proc.pid)


def process_rss_mib(pid: int) -> float:
    """Resident memory of a process and its children (recursively), MiB; 0 when it is gone."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            total += proc.memory_info().rss
    return total / MIB


def reset_peak_rss(pid: int) -> bool:
    """Resets the kernel's peak-RSS counter (VmHWM) of a process we started (Linux,
    /proc/PID/clear_refs); gives whether it could."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mib(pid: int) -> float | None:
    """The process's VmHWM (peak RSS since start or the last reset), MiB; None if unknown."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


class RssSampler:
    """Samples a process tree's RSS every ``interval`` seconds in a thread, while in a
    ``with`` block (and once at its start and end)."""

    def __init__(self, pid: int, interval: float = 1.0) -> None:
        self.pid = pid
        self.interval = interval
        self.samples: list[tuple[float, float]] = []  # (monotonic time, MiB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def sample(self) -> float:
        """Takes one sample now; gives it."""
        value = process_rss_mib(self.pid)
        self.samples.append((time.monotonic(), value))
        return value

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def between(self, start: float, end: float) -> list[float]:
        """The samples taken between two monotonic times."""
        return [v for t, v in self.samples if start <= t <= end]

    def at(self, moment: float) -> float:
        """The sample nearest to a monotonic time."""
        return min(self.samples, key=lambda s: abs(s[0] - moment))[1]


def percentiles(values: Sequence[float]) -> tuple[float, float]:
    """(p50, p95) of durations in seconds, in milliseconds; NaN for none."""
    if not values:
        return float("nan"), float("nan")
    p50, p95 = np.percentile(np.asarray(values) * 1000, [50, 95])
    return float(p50), float(p95)


# ---------------------------------------------------------------------------------------------
# Case 1: load (browser readers)


@dataclass(frozen=True)
class Confirmed:
    """A save a reader saw confirmed: who, the read's id and version, which case (its header's
    position, and its id in the page's address: a blinded study shows no file name before the
    read) and the diagnosis given."""

    reader: str
    review_id: int
    version: int
    index: int
    case_id: int | None
    label: str


@dataclass
class ReaderRun:
    """What one browser reader did: timings (seconds), confirmed saves, and the error that
    stopped it, if any."""

    name: str
    save_s: list[float] = field(default_factory=list)
    next_s: list[float] = field(default_factory=list)
    confirmed: list[Confirmed] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    # Seconds from the start of a drawing until the app kept it in the reader's draft.
    draw_kept_s: list[float] = field(default_factory=list)
    # What never reached the reader's draft within the wait (a drawing, a label key).
    not_kept: list[str] = field(default_factory=list)
    # WebSockets the page opened to /_stcore/stream: more than one means it reconnected (a new
    # server session).
    sockets: int = 0
    # What the Reader box showed instead of this reader's name, each time it had changed.
    name_lost: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass(frozen=True)
class Header:
    """The Review page's header: 'Case i of N · group · file · status · progress'."""

    index: int
    total: int
    status: str


async def _settle(page: Page) -> None:
    """Waits for the rerun an action caused to finish (as tests/test_browser_review.py)."""
    await page.wait_for_timeout(600)
    await page.wait_for_function(
        "() => !document.querySelector('[data-testid^=stStatusWidgetRunning]')"
    )
    await page.wait_for_timeout(250)


async def _blur(page: Page) -> None:
    """Takes the focus off any input (and out of the viewer's iframe), so keys reach the
    page's shortcuts."""
    await page.evaluate("document.activeElement && document.activeElement.blur()")


_HEADER_JS = """
(previous) => {
  for (const el of document.querySelectorAll('[data-testid=stMain] strong')) {
    const m = /^Case (\\d+) of (\\d+)$/.exec(el.textContent.trim());
    if (m && Number(m[1]) !== previous) return el.parentElement.textContent;
  }
  return null;
}
"""


async def _header(page: Page, previous: int = -1) -> Header:
    """Waits for the header of a case other than ``previous``; gives it."""
    handle = await page.wait_for_function(_HEADER_JS, arg=previous, polling="raf")
    text = str(await handle.json_value())
    match = HEADER.search(text)
    assert match, text
    parts = [p.strip() for p in text.split("·")]
    return Header(int(match[1]), int(match[2]), parts[3] if len(parts) > 3 else "")


# Set on a viewer's iframe once drawn in: the next case's viewer is another iframe.
_USED = "data-fault-load-drawn"


async def _viewer(page: Page, timeout_s: float = 120.0, fresh: bool = False) -> Frame:
    """The viewer's frame once it shows the case (one viewer on the page); with ``fresh``, only
    an iframe not drawn in yet (after J, the previous case's viewer may still be on the page
    for a while). The iframe is looked up afresh on every try: Streamlit may replace it while
    the case's page settles, and a frame kept from before would never become ready."""
    from playwright.async_api import Error as PlaywrightError

    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(PlaywrightError):
            frames = page.locator(IFRAME)
            if await frames.count() == 1:
                handle = await frames.element_handle(timeout=5_000)
                used = await handle.get_attribute(_USED)
                frame = await handle.content_frame()
                ready = "() => Boolean(window.__viewer && window.__viewer.ready())"
                if not (fresh and used) and frame is not None and await frame.evaluate(ready):
                    return frame
        if time.monotonic() > deadline:
            raise TimeoutError(f"the viewer was not ready within {timeout_s:.0f} s")
        await asyncio.sleep(0.2)


async def _draw_rectangle(page: Page, frame: Frame, rng: random.Random) -> None:
    """Draws a rectangle with the mouse in the viewer, between two image pixels of a 50 px
    patch."""
    await page.frame_locator(IFRAME).get_by_role("button", name="Rectangle").click()
    box = await page.locator(IFRAME).bounding_box()
    assert box is not None

    async def at(x: float, y: float) -> tuple[float, float]:
        client = await frame.evaluate(
            "([x, y]) => window.__viewer.imageToClient(x, y, '', '')", [x, y]
        )
        return box["x"] + client["x"], box["y"] + client["y"]

    x0, y0 = rng.uniform(5, 20), rng.uniform(5, 20)
    x1, y1 = x0 + rng.uniform(10, 25), y0 + rng.uniform(10, 25)
    await page.mouse.move(*await at(x0, y0))
    await page.mouse.down()
    await page.mouse.move(*await at((x0 + x1) / 2, (y0 + y1) / 2), steps=4)
    await page.mouse.move(*await at(x1, y1), steps=4)
    await page.mouse.up()


async def _draw(page: Page, rng: random.Random, tries: int = 3) -> None:
    """Draws a rectangle in the case's viewer; when Streamlit replaced the viewer's iframe
    meanwhile (the frame is detached), finds the new one and draws again."""
    from playwright.async_api import Error as PlaywrightError

    for attempt in range(tries):
        try:
            frame = await _viewer(page, fresh=True)
            # Marked first, so that nothing stands between the mouse-up and what follows.
            iframe = await frame.frame_element()
            await iframe.evaluate(f"e => e.setAttribute('{_USED}', '1')")
            await _draw_rectangle(page, frame, rng)
            return
        except PlaywrightError as err:
            if "detached" not in str(err) or attempt == tries - 1:
                raise
            await _settle(page)


async def _viewer_holds(page: Page) -> str:
    """How many polygons the viewer shows, and how many it last sent to the app."""
    try:
        frame = await _viewer(page, timeout_s=10)
        shown, sent = await frame.evaluate(
            "() => [window.__viewer.drawing(), (window.__viewer.value() || {}).polygons || []]"
        )
    except Exception as err:  # a diagnosis only: never the reason a reader stops
        return f"viewer not readable: {type(err).__name__}"

    def brief(polygons: list[list[list[float]]]) -> str:
        return str([[[round(c, 1) for c in xy] for xy in p[:2]] for p in polygons])[:80]

    return (
        f"the viewer shows {len(shown)} polygon(s) {brief(shown)} and last sent "
        f"{len(sent)} {brief(sent)}"
    )


_OUTCOME_JS = """
() => {
  for (const el of document.querySelectorAll('[data-testid=stMain] [data-testid=stAlert]')) {
    const text = el.textContent;
    if (/Saved as read|Not saved|Choose your diagnosis|Your region is empty/.test(text)) {
      return text;
    }
  }
  return null;
}
"""


def _stored_draft(db_url: str, reader: str, case: str | None) -> str:
    """A reader's draft of a case as the store keeps it, and which other drafts of theirs
    the store holds, briefly (diagnosis of a refusal)."""
    if case is None or not case.isdigit():
        return "unknown (no case in the address)"
    engine = sa.create_engine(_checking_url(db_url))
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT case_id, content FROM drafts WHERE reader = :r ORDER BY case_id"),
                {"r": reader},
            ).all()
    except sa.exc.SQLAlchemyError as err:
        return f"unreadable ({err})"
    finally:
        engine.dispose()
    drafts = {int(c): json.loads(content) for c, content in rows}
    found = drafts.get(int(case), {})
    others = {
        c: (d.get("kind"), d.get("label"), len(d.get("polygons") or []))
        for c, d in drafts.items()
        if c != int(case)
    }
    return (
        f"kind {found.get('kind')!r}, label {found.get('label')!r}, "
        f"{len(found.get('polygons') or [])} polygon(s); other drafts {others}"
    )


def _case_in(url: str) -> int | None:
    """The case id in the Review page's address (``?case=``), None without one."""
    found = re.search(r"[?&]case=(\d+)", url)
    return int(found[1]) if found else None


def _draft_now(db_url: str, reader: str, case_id: int) -> dict[str, Any]:
    """A reader's draft of a case as the store holds it now ({} for none)."""
    engine = sa.create_engine(_checking_url(db_url))
    try:
        with engine.connect() as conn:
            content = conn.execute(
                sa.text("SELECT content FROM drafts WHERE reader = :r AND case_id = :c"),
                {"r": reader, "c": case_id},
            ).scalar()
    finally:
        engine.dispose()
    found: dict[str, Any] = json.loads(content) if content else {}
    return found


def _has_label(label: str, draft: dict[str, Any]) -> bool:
    """Whether a draft has this diagnosis."""
    return draft.get("label") == label


async def _until_kept(
    db_url: str,
    reader: str,
    case_id: int | None,
    done: Callable[[dict[str, Any]], bool],
    timeout_s: float = 60.0,
) -> bool:
    """Waits until the reader's draft of the case in the store satisfies ``done``; gives
    whether it did within ``timeout_s``."""
    if case_id is None:
        return False
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(sa.exc.SQLAlchemyError):
            if done(await asyncio.to_thread(_draft_now, db_url, reader, case_id)):
                return True
        await asyncio.sleep(0.25)
    return False


async def _keep_name(page: Page, name: str, run: ReaderRun) -> bool:
    """Checks that the sidebar's Reader box still shows this reader's name; if it shows
    another, notes it and types the name again (so that the run goes on under the right
    name). Gives whether it had to."""
    box = page.get_by_role("textbox", name="Reader")
    shown = await box.input_value()
    if shown == name:
        return False
    run.name_lost.append(shown)
    await box.fill(name)
    await box.press("Enter")
    await _settle(page)
    return True


async def _reader(
    browser: Browser,
    url: str,
    db_url: str,
    name: str,
    deadline: float,
    timeout_ms: int,
    artifacts: Path | None,
    seed: int,
) -> ReaderRun:
    """One reader working through the study until ``deadline`` (monotonic)."""
    run = ReaderRun(name)
    rng = random.Random(seed)
    context = await browser.new_context(viewport=VIEWPORT)
    page = await context.new_page()
    page.set_default_timeout(timeout_ms)

    def opened(socket: Any) -> None:
        if "/_stcore/stream" in socket.url:
            run.sockets += 1

    page.on("websocket", opened)
    try:
        await _sign_in(page, url, name)
        await page.get_by_role("button", name="Next unread case").click()
        header = await _header(page)
        await _settle(page)
        while time.monotonic() < deadline:
            if await _keep_name(page, name, run):
                header = await _header(page)
            if header.status != "unread":
                # Moved onto a case read already (wrapped round): the next unread one.
                await _blur(page)
                await page.keyboard.press("u")
                header = await _header(page, header.index)
                await _settle(page)
                continue
            case_id = _case_in(page.url)
            drawn_at = time.perf_counter()
            await _draw(page, rng)
            # The drawing reaches the app when a rerun gets to the end of the page: wait for
            # it in the store's draft before going on.
            kept = await _until_kept(db_url, name, case_id, lambda d: bool(d.get("polygons")))
            if kept:
                run.draw_kept_s.append(time.perf_counter() - drawn_at)
            else:
                run.not_kept.append(f"case {header.index}: the drawing")
            await _settle(page)
            key = rng.choice(sorted(LABEL_KEYS))
            label = LABEL_KEYS[key]
            for _ in range(2):  # a key press that never reached the app is pressed again
                await _blur(page)
                await page.keyboard.press(key)
                labelled = functools.partial(_has_label, label)
                if await _until_kept(db_url, name, case_id, labelled):
                    break
                run.not_kept.append(f"case {header.index}: the key {key}")
            await _settle(page)
            if await _keep_name(page, name, run):
                continue  # the page was drawn again for this reader: start the case over
            started = time.perf_counter()
            await page.keyboard.press("Control+Enter")
            handle = await page.wait_for_function(_OUTCOME_JS, polling="raf")
            elapsed = time.perf_counter() - started
            message = str(await handle.json_value())
            found = SAVED.search(message)
            if found:
                run.save_s.append(elapsed)
                run.confirmed.append(
                    Confirmed(
                        name,
                        int(found[1]),
                        int(found[2]),
                        header.index,
                        case_id,
                        LABEL_KEYS[key],
                    )
                )
            else:
                # What the viewer held then: tells a drawing the app lost from one the
                # browser never made.
                held = await _viewer_holds(page)
                shown = await page.get_by_role("textbox", name="Reader").input_value()
                query = dict(
                    p.split("=", 1) for p in page.url.split("?")[-1].split("&") if "=" in p
                )
                in_store = await asyncio.to_thread(_stored_draft, db_url, name, query.get("case"))
                buttons = await page.get_by_role(
                    "button", name=re.compile("^Save")
                ).all_inner_texts()
                run.refused.append(
                    f"case {header.index}: {message.strip()[:60]} ({held}; the Reader box "
                    f"shows {shown!r}; {query}; the store's draft {in_store}; "
                    f"{run.sockets} websocket(s) so far; buttons {buttons}; pressed {key})"
                )
            await _settle(page)
            if time.monotonic() >= deadline:
                break
            await _blur(page)
            started = time.perf_counter()
            # J: the next case; at the end of the list U (the next unread, from the top).
            await page.keyboard.press("j" if header.index < header.total else "u")
            header = await _header(page, header.index)
            run.next_s.append(time.perf_counter() - started)
            await _settle(page)
    except Exception as err:  # one reader's failure is a finding, not the end of the run
        run.error = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        if artifacts is not None:
            with contextlib.suppress(Exception):
                await page.screenshot(path=str(artifacts / f"load-{name}-failure.png"))
    finally:
        await context.close()
    return run


async def _readers(
    url: str,
    db_url: str,
    names: list[str],
    seconds: float,
    timeout_ms: int,
    artifacts: Path | None,
) -> list[ReaderRun]:
    """The readers at once, each in its own context (cookies, session) of one Chromium."""
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            deadline = time.monotonic() + seconds
            return list(
                await asyncio.gather(
                    *(
                        _reader(browser, url, db_url, n, deadline, timeout_ms, artifacts, seed=i)
                        for i, n in enumerate(names)
                    )
                )
            )
        finally:
            await browser.close()


def run_load(
    server: AppServer,
    readers: int,
    seconds: float,
    timeout_ms: int = 180_000,
    artifacts: Path | None = ARTIFACTS,
    prefix: str = "reader",
) -> Outcome:
    """N browser readers against a running server whose default study has cases (see
    :func:`populate`) for ``seconds``; timings, the server's RSS, and the database checked."""
    out = Outcome("load")
    if artifacts is not None:
        artifacts.mkdir(parents=True, exist_ok=True)
    names = [f"{prefix}-{i + 1:02d}" for i in range(readers)]
    before = {r["id"] for r in stored_reads(server.db_url)}
    started = time.monotonic()
    with RssSampler(server.proc.pid, interval=1.0) as rss:
        runs = asyncio.run(
            _readers(server.url, server.db_url, names, seconds, timeout_ms, artifacts)
        )
    elapsed = time.monotonic() - started
    saves = [s for r in runs for s in r.save_s]
    nexts = [s for r in runs for s in r.next_s]
    confirmed = [c for r in runs for c in r.confirmed]
    values = [v for _, v in rss.samples]
    out.data.update(runs=runs, rss=rss.samples, confirmed=confirmed)
    p50, p95 = percentiles(saves)
    out.figure("readers x duration", f"{readers} x {seconds:.0f} s (ran {elapsed:.0f} s)")
    out.figure("save p50 / p95", f"{p50:.0f} / {p95:.0f} ms (n={len(saves)})")
    p50, p95 = percentiles(nexts)
    out.figure("next p50 / p95", f"{p50:.0f} / {p95:.0f} ms (n={len(nexts)})")
    out.figure("reads saved", f"{len(confirmed)} ({len(confirmed) / elapsed * 60:.1f} per min)")
    out.figure(
        "server RSS start (idle, models not loaded) / max / end",
        f"{values[0]:.0f} / {max(values):.0f} / {values[-1]:.0f} MiB ({len(values)} samples)",
    )
    p50, p95 = percentiles([s for r in runs for s in r.draw_kept_s])
    out.figure("drawing -> kept in the draft p50 / p95", f"{p50:.0f} / {p95:.0f} ms")
    out.figure("websockets per reader (1: never reconnected)", str([r.sockets for r in runs]))
    missing = [f"{r.name} {m}" for r in runs for m in r.not_kept]
    out.check(
        "every drawing and diagnosis key reached the draft within 60 s",
        not missing,
        "; ".join(missing)[:400],
    )
    errors = [f"{r.name}: {r.error}" for r in runs if r.error]
    out.check("every reader ran without error", not errors, "; ".join(errors)[:600] or "none")
    renamed = [f"{r.name} found {r.name_lost}" for r in runs if r.name_lost]
    out.check(
        NAME_KEPT,
        not renamed,
        f"{len(renamed)} of {readers} readers: " + "; ".join(renamed)[:400] if renamed else "",
    )
    refused = [f"{r.name} {m}" for r in runs for m in r.refused]
    out.check("no save refused", not refused, "; ".join(refused)[:400])
    out.check("every reader saved at least one read", all(r.confirmed for r in runs))
    out.check("server alive afterwards", server.healthy())

    problems, reads = half_stored(server.db_url)
    new = {r["id"]: r for r in reads if r["id"] not in before}
    lost = []
    for c in confirmed:
        row = new.get(c.review_id)
        seen = None if row is None else (row["reader"], row["label"], row["case_id"])
        if seen != (c.reader, c.label, c.case_id) or row is None or row["version"] != c.version:
            lost.append(f"{c.reader} read {c.review_id} of case {c.case_id}: stored {seen}")
    out.check(
        "every confirmed save is stored (reader, case, label)",
        not lost,
        f"{len(confirmed) - len(lost)} of {len(confirmed)}; " + "; ".join(lost[:5]),
    )
    extra = sorted(set(new) - {c.review_id for c in confirmed})
    out.check(
        "no stored read that no reader saw confirmed",
        not extra,
        f"{len(extra)} unconfirmed: ids {extra[:10]}" if extra else "none",
    )
    twice = [
        k for k, n in Counter((r["reader"], r["case_id"]) for r in new.values()).items() if n > 1
    ]
    out.check("one unaided read per reader and case", not twice, f"{twice[:5]}" if twice else "")
    out.check("no half-stored read, no orphan rows", not problems, "; ".join(problems[:5]))
    return out


async def _sign_in(page: Page, url: str, name: str) -> None:
    """``page`` on the app at ``url``, the reader ``name`` typed into the Reader box (Enter)
    and the rerun over."""
    await page.goto(url)
    await page.get_by_role("heading", name="LRAN Review").wait_for()
    box = page.get_by_role("textbox", name="Reader")
    await box.fill(name)
    await box.press("Enter")
    await _settle(page)


async def _open_as(browser: Browser, url: str, name: str, timeout_ms: int) -> Page:
    """A new page of ``browser`` signed in as ``name`` (:func:`_sign_in`)."""
    page = await browser.new_page(viewport=VIEWPORT)
    page.set_default_timeout(timeout_ms)
    await _sign_in(page, url, name)
    return page


async def _read_one_case(url: str, name: str, timeout_ms: int) -> dict[str, str]:
    """One reader in Chromium: types their name, opens the next unread case from the
    Worklist, draws, gives a diagnosis and saves, without correcting anything; gives what the
    Reader box showed after typing and after opening the case, and the save's message."""
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = await _open_as(browser, url, name, timeout_ms)
            box = page.get_by_role("textbox", name="Reader")
            typed = await box.input_value()
            await page.get_by_role("button", name="Next unread case").click()
            await _header(page)
            await _settle(page)
            opened = await box.input_value()
            await _draw(page, random.Random(0))
            await _settle(page)
            await _blur(page)
            await page.keyboard.press("2")
            await _settle(page)
            await page.keyboard.press("Control+Enter")
            handle = await page.wait_for_function(_OUTCOME_JS, polling="raf")
            message = str(await handle.json_value()).strip()
            await _settle(page)
            return {"typed": typed, "opened": opened, "saved": message}
        finally:
            await browser.close()


def run_name_race(server: AppServer, timeout_ms: int = 180_000) -> Outcome:
    """A reader opens a case from the Worklist while another reader moves between cases (their
    place written every 20 ms, as a busy reader's reruns do): the first reader's name must
    stay theirs, and their read must be stored under it."""
    from review.studies import default_study

    out = Outcome("load:names")
    name = f"dr-alone-{uuid.uuid4().hex[:6]}"
    store = Store(server.db_url)
    stop = threading.Event()
    try:
        study = default_study(store)
        cases = store.cases(study.study_id)
        if not cases:
            raise RuntimeError("the study has no cases (populate it first)")
        moves = 0

        def busy() -> None:
            nonlocal moves
            while not stop.is_set():
                store.set_place("dr-busy", study.study_id, cases[-1].case_id)
                moves += 1
                stop.wait(0.02)

        mover = threading.Thread(target=busy, daemon=True)
        mover.start()
        try:
            seen = asyncio.run(_read_one_case(server.url, name, timeout_ms))
        finally:
            stop.set()
            mover.join()
        out.figure("the other reader's moves meanwhile", str(moves))
        out.check("the typed name is in the Reader box", seen["typed"] == name, seen["typed"])
        out.check(
            "after opening a case from the Worklist, the Reader box still shows it",
            seen["opened"] == name,
            f"shows {seen['opened']!r} instead of {name!r}" if seen["opened"] != name else "",
        )
        found = SAVED.search(seen["saved"])
        reads = {r["id"]: r["reader"] for r in stored_reads(server.db_url)}
        stored_as = reads.get(int(found[1])) if found else None
        out.check(
            "the read is stored under the reader's name",
            stored_as == name,
            f"{seen['saved'][:120]}; stored as {stored_as!r}",
        )
    finally:
        store.close()
    return out


@contextlib.asynccontextmanager
async def _keyboard_reader(url: str, name: str, timeout_ms: int) -> AsyncIterator[Page]:
    """A Chromium page signed in as ``name``, on the first unread case, closed afterwards."""
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = await _open_as(browser, url, name, timeout_ms)
            await page.get_by_role("button", name="Next unread case").click()
            yield page
        finally:
            await browser.close()


async def _next_case(page: Page, header: Header) -> Header:
    """J to the next case, or at the end of the list U (the first unread from the top)."""
    await _blur(page)
    await page.keyboard.press("j" if header.index < header.total else "u")
    header = await _header(page, header.index)
    await _settle(page)
    return header


async def _quick_reads(url: str, name: str, cases: int, timeout_ms: int) -> list[dict[str, Any]]:
    """One reader who works by keyboard at full speed: on each case draws a rectangle, then
    at once presses 2 and Ctrl+Enter, then J (U at the end of the list). Gives per case its
    header and the save's answer."""
    found: list[dict[str, Any]] = []
    async with _keyboard_reader(url, name, timeout_ms) as page:
        header = await _header(page)
        await _settle(page)
        rng = random.Random(1)
        for _ in range(cases):
            await _draw(page, rng)
            await _blur(page)
            await page.keyboard.press("2")
            await page.keyboard.press("Control+Enter")
            handle = await page.wait_for_function(_OUTCOME_JS, polling="raf")
            found.append(
                {
                    "case": header.index,
                    "answer": str(await handle.json_value()).strip(),
                    "viewer": await _viewer_holds(page),
                }
            )
            await _settle(page)
            header = await _next_case(page, header)
    return found


def run_quick_save(server: AppServer, cases: int = 5, timeout_ms: int = 180_000) -> Outcome:
    """A reader who draws and at once gives the diagnosis and saves (keys 2, Ctrl+Enter, no
    pause): every save must keep the region just drawn, and be stored with it."""
    out = Outcome("load:quick-save")
    name = f"dr-quick-{uuid.uuid4().hex[:6]}"
    answers = asyncio.run(_quick_reads(server.url, name, cases, timeout_ms))
    refused = [a for a in answers if not SAVED.search(a["answer"])]
    out.figure("cases", f"{len(answers)}; refused {len(refused)}")
    out.check(
        "a save right after drawing keeps the region (no 'Your region is empty')",
        not refused,
        "; ".join(f"case {a['case']}: {a['answer'][:40]}... ({a['viewer']})" for a in refused)[
            :500
        ],
    )
    store = Store(server.db_url)
    try:
        wrong = []
        rows = {r["id"]: r for r in stored_reads(server.db_url)}
        for a in answers:
            if (found := SAVED.search(a["answer"])) is None:
                continue
            review_id = int(found[1])
            row = rows.get(review_id)
            mask = store.get_mask(review_id) if row is not None else None
            if row is None or row["reader"] != name or row["label"] != LABEL_KEYS["2"]:
                wrong.append(f"read {review_id}: stored {row and (row['reader'], row['label'])}")
            elif mask is None or not mask.any():
                wrong.append(f"read {review_id}: stored without its region")
        out.check(
            "every confirmed save is stored with its region and label", not wrong, "; ".join(wrong)
        )
    finally:
        store.close()
    out.data.update(answers=answers)
    return out


async def _double_saves(
    url: str, name: str, gaps_ms: Sequence[int], timeout_ms: int
) -> list[dict[str, Any]]:
    """One reader who presses Ctrl+Enter twice on each case's unaided read, ``gaps_ms`` apart
    (one case per gap): before the page turns to the aided read, or just after, with the maps
    not yet looked at. Gives per case its id, the gap and the page's answer once all settled."""
    found: list[dict[str, Any]] = []
    async with _keyboard_reader(url, name, timeout_ms) as page:
        header = await _header(page)
        await _settle(page)
        rng = random.Random(2)
        for gap in gaps_ms:
            case_id = _case_in(page.url)
            await _draw(page, rng)
            await _settle(page)
            await _blur(page)
            await page.keyboard.press("2")
            await _settle(page)
            await page.keyboard.press("Control+Enter")
            await page.wait_for_timeout(gap)
            await page.keyboard.press("Control+Enter")
            await _settle(page)
            handle = await page.wait_for_function(_OUTCOME_JS, polling="raf")
            answer = str(await handle.json_value()).strip()
            found.append({"case": case_id, "gap_ms": gap, "answer": answer})
            header = await _next_case(page, header)
    return found


def run_double_save(
    server: AppServer, gaps_ms: Sequence[int] = (150, 700), timeout_ms: int = 180_000
) -> Outcome:
    """Ctrl+Enter pressed twice on an unaided read: the read is saved once, the page says so
    or that the maps have only just appeared, and no aided read is saved of maps the reader
    has not looked at (the app waits 2 s)."""
    out = Outcome("load:double-save")
    name = f"dr-double-{uuid.uuid4().hex[:6]}"
    answers = asyncio.run(_double_saves(server.url, name, gaps_ms, timeout_ms))
    out.figure("cases", str(len(answers)))
    wrong = [
        a
        for a in answers
        if not (SAVED.search(a["answer"]) or "maps have only just appeared" in a["answer"])
    ]
    out.check(
        "the page says the read is saved, or that the maps have only just appeared",
        not wrong,
        "; ".join(f"{a['gap_ms']} ms: {a['answer'][:80]}" for a in wrong),
    )
    reads = [r for r in stored_reads(server.db_url) if r["reader"] == name]
    kinds = sorted((r["case_id"], r["read_kind"]) for r in reads)
    expected = sorted((a["case"], "unaided") for a in answers)
    out.check("one unaided read per case and no aided read", kinds == expected, f"{kinds}")
    out.data.update(answers=answers, reads=kinds)
    return out


# ---------------------------------------------------------------------------------------------
# Case 2: the SQLite file deleted, replaced or corrupted under the app (AppTest)


@contextlib.contextmanager
def environment(**values: str) -> Iterator[None]:
    """Environment variables set for the block, restored afterwards."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _texts(elements: Any) -> list[str]:
    """The text of every element of a kind, markdown escapes removed."""
    return [str(e.value).replace("\\", "") for e in elements]


class ReviewSession:
    """The app in AppTest, on the Review page of the default (blinded) study with cases added
    through the Worklist page's uploader; a reader's read is put in session state as the viewer
    and the label buttons would (see tests/test_app_pages.py)."""

    def __init__(self, reader: str, files: list[tuple[str, bytes]]) -> None:
        from streamlit.testing.v1 import AppTest

        self.reader = reader
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
        at.run()
        at.text_input(key="reader").input(reader).run()
        at.file_uploader[0].set_value([(n, d, "image/png") for n, d in files])
        at.run()
        at.button(key="add_uploads").click()
        at.run()
        at.switch_page("ui/pages/review.py").run()
        self.at: AppTest = at

    @property
    def case_id(self) -> int:
        """The case under review."""
        return int(self.at.session_state["case_id"])

    def draft(self, label: str, box: tuple[float, float, float, float]) -> None:
        """A rectangle and a diagnosis for the unaided read of the current case."""
        key = f"draft-{self.case_id}-unaided"
        current = dict(self.at.session_state[key]) if key in self.at.session_state else {}
        x0, y0, x1, y1 = box
        current.update(
            kind="unaided", label=label, polygons=[[(x0, y0), (x1, y0), (x1, y1), (x0, y1)]]
        )
        self.at.session_state[key] = current

    def save(self) -> tuple[list[str], list[str]]:
        """Presses Save; gives (success messages, error messages). Without a Save button on
        the page, no success and what the page shows instead as the error."""
        if "save-unaided" not in {b.key for b in self.at.button}:
            shown = _texts(self.at.error) + _texts(self.at.warning) + _texts(self.at.info)
            buttons = sorted(str(b.key) for b in self.at.button)
            return [], [f"no Save button on the page; it shows {shown} and buttons {buttons}"]
        self.at.button(key="save-unaided").click()
        self.at.run()
        return _texts(self.at.success), _texts(self.at.error)

    def next_case(self) -> None:
        """Presses Next."""
        self.at.button(key="next").click()
        self.at.run()

    def exception(self) -> str:
        """Any exception the last run raised, as text ('' for none)."""
        return "; ".join(str(e.value)[:200] for e in self.at.exception)


def _backup(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite database (the backup API), as an operator's backup."""
    src = sqlite3.connect(source)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def _checkpoint(path: Path) -> str:
    """Checkpoints the WAL into the main file from another connection (as an operator's
    sqlite3 would), so that the main file's pages are the live ones."""
    conn = sqlite3.connect(path, timeout=10)
    try:
        return repr(conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone())
    finally:
        conn.close()


def _link(path: Path, to: Path) -> Path | None:
    """A hard link ``to`` -> ``path`` (None when ``path`` does not exist), so that the inode
    can be read after the path is deleted or replaced."""
    if not path.exists():
        return None
    os.link(path, to)
    return to


def run_file_fault(fault: str, workdir: Path, models_dir: Path) -> Outcome:
    """One file fault under the running app (see the module docstring, ``files``)."""
    if fault not in FILE_FAULTS:
        raise ValueError(f"fault must be one of {FILE_FAULTS}")
    out = Outcome(f"files:{fault}")
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / "reviews.sqlite"
    url = sqlite_url(db)
    reader = f"dr-{fault}"
    seed = 100 * (FILE_FAULTS.index(fault) + 1)
    files = [(f"{fault}-{i}.png", random_patch(seed + i)) for i in range(3)]
    with environment(LRAN_REVIEW_DB=url, LRAN_MODELS_DIR=str(models_dir)):
        backup = workdir / "backup.sqlite"
        session = ReviewSession(reader, files)
        # A backup before the first read: what a restore by `mv` would put back.
        _backup(db, backup)
        confirmed: list[tuple[int, str, int]] = []  # (review id, label, case id)

        def attempt() -> tuple[bool, str]:
            """Saves the drafted read; gives whether it was confirmed, and what was shown."""
            case = session.case_id
            label = session.at.session_state[f"draft-{case}-unaided"]["label"]
            successes, errors = session.save()
            found = [m for s in successes if (m := SAVED.search(s))]
            if found:
                confirmed.append((int(found[0][1]), label, case))
            shown = (successes or errors or ["no message"])[0][:160] + session.exception()
            return bool(found) and not session.exception(), shown

        def saved_ok(what: str) -> bool:
            return out.check(what, *attempt())

        session.draft("IDC-positive", (10, 10, 30, 20))
        saved_ok("a read saves before the fault")
        session.next_case()
        session.draft("IDC-negative", (5, 5, 25, 40))

        # The fault, with hard links that keep the inodes readable afterwards.
        wal = wal_of(db)
        old_main, old_wal = workdir / "kept-main.sqlite", workdir / "kept-main.sqlite-wal"
        before = logical_state(db, wal)
        other_before: dict[str, str] = {}
        corrupted: tuple[int, bytes] | None = None
        if fault in ("delete", "replace"):
            _link(db, old_main)
            _link(wal, old_wal)
        if fault == "delete":
            db.unlink()
        elif fault == "replace":
            other_before = logical_state(backup, wal_of(backup))
            os.link(backup, workdir / "kept-backup.sqlite")
            os.rename(backup, db)  # what `mv backup.sqlite reviews.sqlite` does
        else:
            out.figure("checkpoint before corrupting", _checkpoint(db))
            size = db.stat().st_size
            start, length = size * 3 // 8, max(size // 4, 4096)
            with db.open("r+b") as f:
                f.seek(start)
                original = f.read(length)
                f.seek(start)
                f.write(os.urandom(len(original)))
            corrupted = (start, original)
            out.figure("corrupted", f"bytes {start}-{start + len(original)} of {size}")
            out.figure("integrity_check after corrupting", integrity_check(db)[:120])

        successes, errors = session.save()
        shown = "; ".join(errors)[:300] or "no error shown"
        out.check("the save during the fault does not report success", not successes, shown)
        words = FAULT_WORDS[fault]
        out.check(
            f"an error says the read was not saved and why ({' / '.join(words)})",
            any("Not saved" in e and any(w in e.lower() for w in words) for e in errors),
            shown,
        )
        out.check("no exception in the page", not session.exception(), session.exception())
        if successes:
            found = SAVED.search(successes[0])
            if found:
                confirmed.append((int(found[1]), "IDC-negative", session.case_id))
        if fault in ("delete", "replace"):
            after = logical_state(old_main, old_wal if old_wal.exists() else None)
            out.check(
                "nothing written into the unlinked original",
                after == before,
                state_diff(before, after) or "same rows",
            )
        if fault == "replace":
            # What a connection opening the path sees (the WAL beside it included), and the
            # main file alone: tells rows written into the file from rows only in a WAL left
            # beside it.
            now = logical_state(db, wal)
            alone = logical_state(db)
            out.check(
                "nothing written into the file that replaced it",
                now == other_before,
                f"with the WAL at the path: {state_diff(other_before, now) or 'same rows'}; "
                f"main file alone: {state_diff(other_before, alone) or 'same rows'}",
            )
            out.figure(
                "WAL at the path when checked",
                f"{wal.stat().st_size} bytes" if wal.exists() else "none",
            )

        # Restore the original (the same inode back at the path, or its bytes in place).
        if fault in ("delete", "replace"):
            os.replace(old_main, db)
        else:
            assert corrupted is not None
            with db.open("r+b") as f:
                f.seek(corrupted[0])
                f.write(corrupted[1])
        out.figure("integrity_check after restoring", integrity_check(db)[:120])
        # The reader's next click: a rerun that draws the page again (while the database was
        # missing or corrupt, the Review page showed only the error).
        session.at.run()
        if successes:
            # The faulty save claimed success: carry on with the next case.
            session.next_case()
            session.draft("IDC-negative", (5, 5, 25, 40))
        restored, said = attempt()
        out.figure("save after restoring the original, without a restart", said)
        if not restored:
            # A restart of the app opens the database afresh: its cached Store is dropped.
            from ui import cache

            cache.store.clear()
            session.at.run()
            restored, said = attempt()
            out.figure("save after restoring the original and a restart", said)
        out.check(
            "saving works again after restoring the original (without, else with a restart)",
            restored,
            said,
        )
        out.figure("errors shown during the fault", shown)
        if fault == "replace":
            kept = logical_state(workdir / "kept-backup.sqlite")
            out.figure(
                "the replacing file (kept by a hard link) at the end",
                f"reviews {kept.get('reviews')}, cases {kept.get('cases')}",
            )

    out.figure("integrity_check at the end", integrity_check(db)[:120])
    problems, reads = half_stored(url)
    stored = {r["id"]: (r["reader"], r["label"], r["case_id"]) for r in reads}
    missing = [c for c in confirmed if stored.get(c[0]) != (reader, c[1], c[2])]
    out.check(
        "every confirmed read is in the file (reader, case, label)",
        not missing,
        f"{len(confirmed) - len(missing)} of {len(confirmed)}; missing {missing}; stored {stored}",
    )
    out.check(
        "no read stored that was not confirmed",
        not set(stored) - {c[0] for c in confirmed},
        f"stored ids {sorted(stored)}",
    )
    out.check("no half-stored read, no orphan rows", not problems, "; ".join(problems[:5]))
    out.check("the file passes integrity_check", integrity_check(db) == "ok", integrity_check(db))
    out.data.update(confirmed=confirmed, reads=reads)
    return out


# ---------------------------------------------------------------------------------------------
# Case 3: kill -9 during saves


def _saver(url: str, log_path: str, seed: int) -> None:
    """The child process: saves reads in a loop, appending each to the log (one JSON line,
    one write) after save_review returned; 'ready' once the store is open."""
    store = Store(url)
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, b'"ready"\n')
    rng = random.Random(seed)
    i = 0
    while True:
        i += 1
        reader = f"killed-{rng.randrange(3)}"
        label = rng.choice(CLASSES)
        rec = store_record(reader, rng.randrange(4), label, seed * 100_000 + i)
        saved = store.save_review(rec)
        line = {
            "id": saved.review_id,
            "version": saved.version,
            "reader": reader,
            "label": label,
            "item_hash": rec.item_hash,
        }
        os.write(fd, (json.dumps(line) + "\n").encode())


def run_kill9(url: str, workdir: Path, kills: int = 20, seed: int = 0) -> Outcome:
    """Kills a saving process with SIGKILL ``kills`` times at random moments; checks the
    database after each kill."""
    out = Outcome("kill")
    workdir.mkdir(parents=True, exist_ok=True)
    Store(url).close()  # created (migrated) once, not by the first child
    rng = random.Random(seed)
    logged: dict[int, dict[str, Any]] = {}
    failures: list[str] = []
    unopened: list[str] = []
    unlogged = 0
    path = sqlite_path(url)
    for k in range(kills):
        log = workdir / f"saves-{k}.jsonl"
        log.unlink(missing_ok=True)  # a log of an earlier run would read as this one's
        child = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "_saver", url, str(log), str(k)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 60
        while not (log.is_file() and log.read_bytes().startswith(b'"ready"')):
            if child.poll() is not None or time.monotonic() > deadline:
                child.kill()
                _, err = child.communicate()
                raise RuntimeError(f"the saving process did not start: {err.decode()[-2000:]}")
            time.sleep(0.02)
        time.sleep(rng.uniform(0.05, 0.8))
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        if child.stderr is not None:
            child.stderr.close()
        lines = log.read_text().splitlines()[1:]
        for line in lines:
            row = json.loads(line)
            logged[int(row["id"])] = row
        try:
            Store(url).close()
        except StoreError as err:
            unopened.append(f"kill {k + 1}: {err}")
            break
        if path is not None and (result := integrity_check(path)) != "ok":
            failures.append(f"kill {k + 1}: integrity_check {result}")
        problems, reads = half_stored(url, predictions=2, scores=2)
        failures += [f"kill {k + 1}: {p}" for p in problems]
        stored = {r["id"]: r for r in reads}
        for rid, row in logged.items():
            found = stored.get(rid)
            values = None if found is None else {k_: found[k_] for k_ in row if k_ != "id"}
            if values != {k_: v for k_, v in row.items() if k_ != "id"}:
                failures.append(f"kill {k + 1}: logged read {rid} stored as {values}")
        failures += [f"kill {k + 1}: {g}" for g in version_gaps(reads)]
        unlogged = len(stored) - len(logged)
    reads = stored_reads(url)
    out.figure("kills", str(kills))
    out.figure("reads logged as saved", str(len(logged)))
    out.figure("reads committed but not yet logged when killed (all kills)", str(unlogged))
    out.check("the database opens after every kill", not unopened, "; ".join(unopened))
    out.check(
        "after every kill: integrity, no half-stored read, every logged read, no version gap",
        not failures,
        "; ".join(failures[:5]) or f"{len(reads)} reads stored",
    )
    out.check("reads were saved between kills", len(logged) >= kills, f"{len(logged)} logged")
    out.data.update(logged=logged, reads=reads)
    return out


# ---------------------------------------------------------------------------------------------
# Case 4: forged Host / foreign Origin on the WebSocket


def run_websocket(server: AppServer) -> Outcome:
    """The allowed-hosts checks against the real app."""
    out = Outcome("websocket")
    port = server.port
    good = f"127.0.0.1:{port}"
    forged = f"evil.example:{port}"
    control = ws_handshake(port, good, f"http://{good}")
    rebound = ws_handshake(port, forged, f"http://{forged}")
    foreign = ws_handshake(port, good, "http://evil.example")
    out.check("control: the right Host and Origin are upgraded (101)", control == 101, str(control))
    out.check("forged Host + matching Origin refused (403)", rebound == 403, str(rebound))
    out.check("right Host + foreign Origin refused (403)", foreign == 403, str(foreign))
    status, _ = get(port, "/", forged)
    out.check("HTTP with a forged Host gets 400", status == 400, str(status))
    out.check("server alive afterwards", server.healthy())
    out.data.update(control=control, rebound=rebound, foreign=foreign, http=status)
    return out


# ---------------------------------------------------------------------------------------------
# Case 5: memory bombs through the real upload


# The page's answers to an add, as a JavaScript expression (an array of texts).
_ADD_OUTCOME_JS = """
[...document.querySelectorAll('[data-testid=stAlert]')]
  .map(a => a.textContent)
  .filter(t => /Added \\d+ case|Not added/.test(t))
"""


@dataclass
class Upload:
    """One file added through the Worklist page, and when: the click on "Add them", the
    page settled with its answer, and the end of the wait after it (monotonic seconds)."""

    name: str
    data: bytes
    wait_after_s: float
    messages: list[str] = field(default_factory=list)
    clicked: float = 0.0
    answered: float = 0.0
    ended: float = 0.0
    hwm_mib: float | None = None


async def _uploads(url: str, reader: str, uploads: list[Upload], pid: int, timeout_ms: int) -> None:
    """Adds files one after the other through the Worklist page's uploader, in one Chromium
    page; fills in each Upload's messages and times, and the server's VmHWM over each (reset
    just before its click)."""
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = await _open_as(browser, url, reader, timeout_ms)
            for i, upload in enumerate(uploads):
                if i:
                    # After an add the page still shows the old uploader, holding the files
                    # just added; files chosen in it now would vanish with the rerun that
                    # replaces it by a new, empty one. A reload shows the new one.
                    await page.reload()
                    await page.get_by_role("heading", name="LRAN Review").wait_for()
                    await _settle(page)
                # The uploader lives in a collapsed expander (in the page, hidden).
                if not await page.locator("[data-testid=stFileUploader]").first.is_visible():
                    await page.get_by_text("Add images to this study").click()
                chooser = page.locator("input[type=file]")
                payload: FilePayload = {
                    "name": upload.name,
                    "mimeType": "image/png",
                    "buffer": upload.data,
                }
                await chooser.set_input_files([payload])
                await page.get_by_role("button", name="Add them").wait_for()
                await _settle(page)
                # The answer to the previous add is gone before this one is waited for.
                await page.wait_for_function(f"() => ({_ADD_OUTCOME_JS}).length === 0")
                hwm = reset_peak_rss(pid)
                upload.clicked = time.monotonic()
                await page.get_by_role("button", name="Add them").click()
                await page.wait_for_function(f"() => ({_ADD_OUTCOME_JS}).length > 0")
                await _settle(page)
                upload.answered = time.monotonic()
                upload.messages = [
                    str(m).strip() for m in await page.evaluate(f"() => {_ADD_OUTCOME_JS}")
                ]
                await asyncio.sleep(upload.wait_after_s)
                upload.ended = time.monotonic()
                upload.hwm_mib = peak_rss_mib(pid) if hwm else None
        except Exception:
            with contextlib.suppress(Exception):
                ARTIFACTS.mkdir(parents=True, exist_ok=True)
                await page.screenshot(path=str(ARTIFACTS / "memory-failure.png"))
            raise
        finally:
            await browser.close()


def run_memory(server: AppServer, after_s: float = 10.0, timeout_ms: int = 300_000) -> Outcome:
    """The two memory bombs through the real upload (see the module docstring, ``memory``),
    after a small patch that makes the server load its models (about 1.2 GB with torch: not
    what the bombs are measured for). RSS is sampled every 0.1 s throughout."""
    out = Outcome("memory")
    bomb, flat = bomb_png(), flat_png()
    warm = Upload("warm.png", random_patch(7), 1.0)
    bombed = Upload("bomb.png", bomb, 1.0)
    flat_up = Upload("flat.png", flat, after_s)
    pid = server.proc.pid
    with RssSampler(pid, interval=0.1) as rss:
        asyncio.run(_uploads(server.url, "memory-test", [warm, bombed, flat_up], pid, timeout_ms))

    def figures(up: Upload) -> dict[str, float]:
        before = rss.between(up.clicked - 1.0, up.clicked) or [rss.at(up.clicked)]
        return {
            "before": statistics.median(before),
            "peak": max(rss.between(up.clicked, up.ended) or [rss.at(up.ended)]),
            "hwm": float("nan") if up.hwm_mib is None else up.hwm_mib,
            "after": rss.at(up.ended),
            "seconds": up.answered - up.clicked,
        }

    out.check(
        "warm-up: a 50 x 50 patch is added",
        any("Added 1 case" in m for m in warm.messages),
        str(warm.messages)[:200],
    )
    store = Store(server.db_url)
    try:
        cases = [c for s in store.studies() for c in store.cases(s.study_id)]
        fig = figures(bombed)
        out.figure(
            "20000 x 20000 header: server RSS before / peak",
            f"{fig['before']:.0f} / {fig['peak']:.0f} (VmHWM {fig['hwm']:.0f}) MiB; "
            f"answered in {fig['seconds']:.1f} s",
        )
        refused = [m for m in bombed.messages if "bomb.png" in m and "Not added" in m]
        out.check(
            "20000 x 20000 header: refused by name",
            bool(refused) and not any("Added 1" in m for m in bombed.messages),
            "; ".join(bombed.messages)[:200],
        )
        out.check(
            "... without decoding (server RSS grew < 100 MiB)",
            fig["peak"] - fig["before"] < 100,
            f"before {fig['before']:.0f}, peak {fig['peak']:.0f} MiB",
        )
        out.check(
            "... and nothing of it stored",
            content_hash(bomb) not in store.item_hashes()
            and not any(c.item.filename == "bomb.png" for c in cases),
        )
        fig = figures(flat_up)
        out.data.update(flat_messages=flat_up.messages, flat_rss=fig)
        out.figure("10900 x 10900 PNG", f"{len(flat) / 1024:.0f} KiB, grayscale, one colour")
        out.figure("10900 x 10900 outcome", "; ".join(flat_up.messages)[:240] or "no message")
        out.figure(
            f"10900 x 10900: server RSS before / peak / {after_s:.0f} s after",
            f"{fig['before']:.0f} / {fig['peak']:.0f} (VmHWM {fig['hwm']:.0f}) / "
            f"{fig['after']:.0f} MiB; answered in {fig['seconds']:.1f} s",
        )
        added = any("Added 1 case" in m for m in flat_up.messages)
        refused = [m for m in flat_up.messages if "flat.png" in m and "Not added" in m]
        mine = [c for c in cases if c.item.filename == "flat.png"]
        if added:
            ok = (
                len(mine) == 1
                and (mine[0].item.width, mine[0].item.height) == (10_900, 10_900)
                and store.image_bytes(mine[0].item.item_hash) == flat
            )
            detail = f"added: {[(c.item.width, c.item.height, c.item.kind) for c in mine]}"
        else:
            ok = bool(refused) and not mine
            detail = f"refused by name, no case stored ({len(mine)})"
        out.check("10900 x 10900: the database agrees with the page", ok, detail)
        out.check("server alive afterwards", server.healthy())
    finally:
        store.close()
    return out


def decode_cost(data: bytes, name: str) -> dict[str, float]:
    """What decoding an image costs when it is accepted (review.items.read_image with the
    pixel budget lifted), in a process of its own: {'before', 'peak', 'seconds'} (RSS MiB
    before decoding and the kernel's peak during it)."""
    with tempfile.TemporaryDirectory(prefix="lran-decode-") as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        code = (
            "import json, sys, time\n"
            "from pathlib import Path\n"
            "from review.items import read_image\n"
            "def status(key):\n"
            "    for line in Path('/proc/self/status').read_text().splitlines():\n"
            "        if line.startswith(key):\n"
            "            return int(line.split()[1]) / 1024\n"
            "data = Path(sys.argv[1]).read_bytes()\n"
            "before = status('VmRSS:')\n"
            "Path('/proc/self/clear_refs').write_text('5')\n"
            "started = time.perf_counter()\n"
            "item = read_image(sys.argv[2], data, max_pixels=10**10)\n"
            "seconds = time.perf_counter() - started\n"
            "print(json.dumps({'before': before, 'peak': status('VmHWM:'), "
            "'seconds': seconds}))\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", code, str(path), name],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        )
    found: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


# ---------------------------------------------------------------------------------------------
# Case 6: writers on one item at the same moment


def run_contention(url: str, writers: int = 6, saves: int = 30) -> Outcome:
    """``writers`` threads, each with its own Store, save ``saves`` reads each of one item by
    one reader, released together by a barrier."""
    backend = "postgresql" if url.startswith("postgresql") else "sqlite"
    out = Outcome(f"contention:{backend}")
    Store(url).close()  # migrated once, before the writers race
    barrier = threading.Barrier(writers)
    errors: list[str] = []
    versions: list[int] = []
    durations: list[float] = []
    lock = threading.Lock()

    def write(w: int) -> None:
        store = Store(url)
        try:
            barrier.wait()
            for i in range(saves):
                started = time.perf_counter()
                try:
                    saved = store.save_review(
                        store_record("dr-contention", 0, CLASSES[(w + i) % 2], w * 1000 + i)
                    )
                except Exception as err:  # every failure is counted, whatever it is
                    with lock:
                        errors.append(f"writer {w} save {i}: {type(err).__name__}: {err}")
                    continue
                with lock:
                    versions.append(saved.version)
                    durations.append(time.perf_counter() - started)
        finally:
            store.close()

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    total = writers * saves
    problems, reads = half_stored(url, predictions=2, scores=2)
    stored = sorted(int(r["version"]) for r in reads if r["reader"] == "dr-contention")
    p50, p95 = percentiles(durations)
    out.figure("writers x saves", f"{writers} x {saves} on one item, one reader")
    out.figure("wall time", f"{wall:.1f} s ({total / wall:.0f} saves/s)")
    out.figure("save p50 / p95", f"{p50:.0f} / {p95:.0f} ms")
    out.check("no failed save", not errors, f"{len(errors)}: " + "; ".join(errors[:3]))
    out.check(
        f"stored versions are exactly 1..{total}",
        stored == list(range(1, total + 1)),
        f"{len(stored)} stored; gaps/duplicates: {_gaps(stored, total)}",
    )
    out.check(
        "the versions the writers were given are 1..N once each",
        sorted(versions) == list(range(1, total + 1)),
        f"{len(versions)} given",
    )
    out.check("no half-stored read, no orphan rows", not problems, "; ".join(problems[:5]))
    out.data.update(stored=stored, given=sorted(versions), errors=errors)
    return out


def _gaps(values: list[int], total: int) -> str:
    """Missing and repeated values of 1..total, briefly."""
    counts = Counter(values)
    missing = [v for v in range(1, total + 1) if v not in counts]
    repeated = [v for v, n in counts.items() if n > 1]
    return f"missing {missing[:10]}, repeated {repeated[:10]}" if missing or repeated else "none"


# ---------------------------------------------------------------------------------------------
# The command line


def _database(
    args: argparse.Namespace, folder: Path, name: str
) -> contextlib.AbstractContextManager[str]:
    """A fresh database for one case: a PostgreSQL schema with --pg, else a SQLite file."""
    if args.pg:
        return pg_schema(args.pg)
    return contextlib.nullcontext(sqlite_url(folder / f"{name}.sqlite"))


def _run(case: str, outcomes: list[Outcome], job: Callable[[], Outcome | list[Outcome]]) -> None:
    """Runs one case; an exception is a failed check of that case, not the end of the run."""
    print(f"[{time.strftime('%H:%M:%S')}] {case} ...", flush=True)
    try:
        found = job()
    except Exception as err:
        failed = Outcome(case)
        failed.check("ran to the end", False, f"{type(err).__name__}: {err}"[:400])
        found = failed
    outcomes.extend(found if isinstance(found, list) else [found])


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; gives the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_saver"]:  # the child process of the kill -9 case
        _saver(argv[1], argv[2], int(argv[3]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readers", type=int, default=10, help="browser readers (load)")
    parser.add_argument("--minutes", type=float, default=5.0, help="duration of the load")
    parser.add_argument("--cases", type=int, default=100, help="patches in the load's study")
    parser.add_argument("--pg", metavar="URL", help="PostgreSQL database (fresh schema)")
    parser.add_argument("--kills", type=int, default=20, help="kill -9 rounds")
    parser.add_argument("--only", nargs="+", choices=CASES, help="run only these cases")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    only = set(args.only or CASES)
    os.chdir(ROOT)  # AppTest and st.Page resolve the app's pages from here
    outcomes: list[Outcome] = []
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="lran-fault-load-") as tmp_name:
        tmp = Path(tmp_name)
        print(f"backend: {'postgresql' if args.pg else 'sqlite'}; work folder {tmp}", flush=True)
        models = random_models(tmp / "models", input_size=128)

        def load() -> list[Outcome]:
            with _database(args, tmp, "load") as url:
                populate(url, args.cases)
                with AppServer(url, models, ARTIFACTS / "load-server.log") as server:
                    found = [run_load(server, args.readers, args.minutes * 60)]
                    found.append(run_name_race(server))
                    found.append(run_quick_save(server))
                    return found

        def servers() -> list[Outcome]:
            with _database(args, tmp, "server") as url:
                with AppServer(url, models, ARTIFACTS / "memory-server.log") as server:
                    found = []
                    if "websocket" in only:
                        found.append(run_websocket(server))
                    if "memory" in only:
                        found.append(run_memory(server))
                        # What the server would pay if it accepted the 10900 px image.
                        cost = decode_cost(flat_png(), "flat.png")
                        found[-1].figure(
                            "10900 x 10900 decoded if accepted (read_image, own process)",
                            f"RSS {cost['before']:.0f} -> peak {cost['peak']:.0f} MiB "
                            f"(+{cost['peak'] - cost['before']:.0f}) in {cost['seconds']:.1f} s",
                        )
                    return found

        def files() -> list[Outcome]:
            return [run_file_fault(f, tmp / f"files-{f}", models) for f in FILE_FAULTS]

        def kill() -> Outcome:
            with _database(args, tmp, "kill") as url:
                return run_kill9(url, tmp / "kill", args.kills)

        def contention() -> Outcome:
            with _database(args, tmp, "contention") as url:
                return run_contention(url)

        if "load" in only:
            _run("load", outcomes, load)
        if only & {"websocket", "memory"}:
            _run("websocket+memory", outcomes, servers)
        if "files" in only:
            _run("files", outcomes, files)
        if "kill" in only:
            _run("kill", outcomes, kill)
        if "contention" in only:
            _run("contention", outcomes, contention)
    print()
    print_table(outcomes)
    failed = [c for o in outcomes for c in o.failures]
    print()
    print(f"{len(failed)} of {sum(len(o.checks) for o in outcomes)} checks failed")
    if args.json:
        args.json.write_text(
            json.dumps(
                [
                    {
                        "case": o.case,
                        "checks": [c.__dict__ for c in o.checks],
                        "figures": o.figures,
                    }
                    for o in outcomes
                ],
                indent=2,
            )
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
