"""Benchmarks of the review app, run by hand: ``python bench/bench_app.py [--repeats N]``.

Prints four figures (goals in brackets), for an OPEN study (the maps are shown at once, no
blinded first read), made in a temporary database with
``Store(url).create_study(name, "IDC", "open", "idc")``:

1. patch added -> all maps shown, for a patch not seen before, models loaded:

   - in a browser (Chromium via Playwright against ``streamlit run app.py``): from handing the
     file to the Worklist page's uploader, through "Add them" and "Next unread case", until the
     Review page's viewer shows every map pane with its tiles loaded
     (``window.__viewer.ready()`` in the viewer's iframe) [< 1.5 s]; split into the add (file
     -> "Added 1 case.") and the open (click -> all maps shown);
   - server side (AppTest, the same steps as script runs: the upload, "Add them", "Next unread
     case" -> the Review page with every map).

   The first add after start loads the models (the Worklist page does not load them before);
   it is reported apart. After each case is shown the bench stores an open read of it in the
   database, as the reader would, so that "Next unread case" leads to the next new one.
2. per-patch cost of explain (three models) plus the agreement scores of every map, for a
   ``--patch-side`` (default 128) patch, in this process;
3. resident memory of the ``streamlit run app.py`` process with the three models loaded, after
   the browser run: now, peak (VmHWM on Linux) and unique (USS) [< 1.5 GB];
4. the time from starting ``streamlit run app.py`` until the Worklist page is usable in
   Chromium (its title, the study and the uploader drawn, the script run finished) [< 5 s],
   with the time the server took to answer its health check.
5. a large region in the app (``--region SIDE``, default 6000; 0 skips it; ``--region-only``
   runs nothing else): a fresh ``streamlit run app.py`` over a new open study, a SIDE x SIDE
   TIFF at 0.47 um/px (resolution tags; JPEG-compressed to stay under the upload limit; BACH
   A03 tiles from ``../shared/data/bach-a03/tiles`` with random turns and flips, else smooth
   colour noise) uploaded on the Worklist page in Chromium, opened on the Review page until
   the viewer shows the region maps of every model, a polygon drawn in the viewer and the read
   saved. The server's RSS (its children included) is sampled every 0.2 s throughout: peak
   [goal < 2 GB], before the upload, the peak of each step, and the process's VmHWM; with the
   wall times upload -> maps shown (split into add and open) and save.

Uses the shipped weights when ``lran_core/weights/idc`` holds all three, else a random-weight set
of the same architecture (speed and memory do not depend on the weights' values). The browser
parts (1 in Chromium, 3, 4, 5) need /usr/bin/chromium and are skipped (with a note) without it or
with ``--no-browser``. ``--quick`` is ``--repeats 1`` (proves the script runs end to end).
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlparse

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    from playwright.sync_api import FilePayload, Page

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from appserver import CHROMIUM, CHROMIUM_ARGS, StreamlitServer  # noqa: E402

VARIANTS = ["resnet18", "resnet18-ran", "resnet18-lran"]
IFRAME = "iframe[title*='lran_viewer']"
READER = "dr-bench"
STUDY = "Bench open study"
WORKLIST = "ui/pages/start.py"
# Every map of the page shown: one viewer iframe whose panes (the image and one per map) are
# all open with their tiles loaded. Same origin, so the page reaches the iframe's hook.
MAPS_SHOWN = """([selector, panes]) => {
  const frames = [...document.querySelectorAll(selector)];
  if (frames.length !== 1 || frames[0].closest("[data-stale=true]")) return false;
  const v = frames[0].contentWindow && frames[0].contentWindow.__viewer;
  return !!v && v.ready() && v.views().length === panes;
}"""
IDLE = "() => !document.querySelector('[data-testid^=stStatusWidgetRunning]')"


def png_bytes(seed: int, side: int) -> bytes:
    """A random RGB patch as PNG bytes; a new seed gives a new content hash."""
    rgb = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def ensure_models(tmp: Path) -> str:
    """Describes the weights used; points LRAN_MODELS_DIR at random ones when none shipped."""
    if os.environ.get("LRAN_MODELS_DIR"):
        return f"LRAN_MODELS_DIR={os.environ['LRAN_MODELS_DIR']}"
    shipped = ROOT / "lran_core" / "weights" / "idc"
    if all((shipped / f"{v}.safetensors").is_file() for v in VARIANTS):
        return "shipped weights (lran_core/weights/idc)"
    import lran_core

    for variant in VARIANTS:
        lran_core.save_checkpoint(
            lran_core.build_model(variant, num_classes=2),
            tmp / "idc" / f"{variant}.safetensors",
            class_names=["IDC-negative", "IDC-positive"],
            input_size=128,
            mpp=4.0,
            data_description="random weights (bench)",
        )
    os.environ["LRAN_MODELS_DIR"] = str(tmp)
    return "random weights, same architecture (no shipped weights)"


def open_study(url: str) -> int:
    """A new open (unblinded) study in the database at ``url``; gives its id."""
    from annotations.store import Store

    return Store(url).create_study(STUDY, "IDC", "open", "idc").study_id


def mark_read(url: str, study_id: int, case_id: int) -> None:
    """Stores an open read (no region) of a case, as the reader would after looking at it, so
    that "Next unread case" moves on to the next one."""
    from annotations.geojson import mask_to_geojson
    from annotations.records import ReviewRecord
    from annotations.store import Store

    store = Store(url)
    case = next(c for c in store.cases(study_id) if c.case_id == case_id)
    mask = np.zeros((case.item.height, case.item.width), bool)
    store.save_review(
        ReviewRecord(
            item_hash=case.item.item_hash,
            filename=case.item.filename,
            width=case.item.width,
            height=case.item.height,
            kind="patch",
            reader=READER,
            model_set="idc",
            label="IDC-negative",
            mask=mask,
            geojson=mask_to_geojson(mask),
            study_id=study_id,
            case_id=case_id,
            read_kind="open",
            blinded=False,
            visible=["image", "predictions", "maps", "scores"],
            no_region=True,
            label_set="IDC",
        )
    )


def expected_panes() -> int:
    """Panes of the viewer for a patch of the installed set: the image and every map."""
    from review import modelsets
    from review.patches import explain_patch

    rgb = np.zeros((50, 50, 3), np.uint8)
    return 1 + sum(len(o.maps()) for o in explain_patch(modelsets.load("idc"), rgb))


def ms(values: list[float]) -> str:
    """Median and range of durations in seconds, as milliseconds."""
    return (
        f"median {statistics.median(values) * 1000:.0f} ms "
        f"(min {min(values) * 1000:.0f}, max {max(values) * 1000:.0f}, n={len(values)})"
    )


def bench_apptest(repeats: int, url: str, panes: int) -> None:
    """Server side: the script runs from an upload to the Review page with every map."""
    from streamlit.testing.v1 import AppTest

    # AppTest runs the app in this process; Streamlit warns once that the caller thread has no
    # script-run context, which is expected here.
    logging.getLogger("streamlit.runtime.scriptrunner_utils.script_run_context").setLevel(
        logging.ERROR
    )
    study = open_study(url)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    start = time.perf_counter()
    at.run()
    at.text_input(key="reader").input(READER).run()
    at.selectbox(key="study_choice").set_value(study).run()
    print(
        "  AppTest: first runs to the Worklist page of the open study: "
        f"{time.perf_counter() - start:.2f} s"
    )
    adds, opens, totals = [], [], []
    for i in range(repeats + 1):
        start = time.perf_counter()
        at.file_uploader[0].set_value([(f"a{i}.png", png_bytes(1000 + i, 50), "image/png")])
        at.run()
        at.button(key="add_uploads").click().run()
        middle = time.perf_counter()
        assert not at.exception, at.exception
        assert any("Added 1 case" in s.value for s in at.success), [s.value for s in at.success]
        at.button(key="next_unread_start").click().run()
        end = time.perf_counter()
        assert not at.exception, at.exception
        # The Review page gave the viewer every model's maps (one cell per map).
        (component,) = at.get("component_instance")
        shown = json.loads(component.proto.json_args)
        assert len(shown["cells"]) == panes - 1, (len(shown["cells"]), panes)
        case = int(at.session_state["case_id"])
        if i == 0:
            print(
                f"  AppTest: first patch (models loaded then): add {middle - start:.2f} s, "
                f"open {end - middle:.2f} s"
            )
        else:
            adds.append(middle - start)
            opens.append(end - middle)
            totals.append(end - start)
        mark_read(url, study, case)
        at.switch_page(WORKLIST).run()
    print(f"  AppTest, new 50 x 50 patch: upload + add {ms(adds)}")
    print(f"  AppTest, open -> Review page with all {panes - 1} maps: {ms(opens)}")
    print(f"  AppTest, patch added -> all maps (together): {ms(totals)}")


def bench_explain(repeats: int, side: int) -> None:
    """explain (three models, cache missed) plus scores of every map, one patch."""
    import torch

    from lran_core.data import load_image
    from review import modelsets
    from review.patches import explain_patch
    from review.scoring import score_maps
    from ui.cache import TORCH_THREADS

    model_set = modelsets.load("idc")
    modelsets.warm_up(model_set, TORCH_THREADS)
    region = np.zeros((side, side), bool)
    region[side // 4 : 3 * side // 4, side // 8 : 5 * side // 8] = True
    explain_t, score_t = [], []
    rows = []
    for i in range(repeats):
        rgb = load_image(png_bytes(2000 + i, side))
        start = time.perf_counter()
        outputs = explain_patch(model_set, rgb)
        middle = time.perf_counter()
        rows = score_maps({o.variant: o.maps() for o in outputs}, region, 0.47)
        score_t.append(time.perf_counter() - middle)
        explain_t.append(middle - start)
    print(f"  explain, {len(model_set.models)} models, {side} x {side} patch: {ms(explain_t)}")
    print(f"  agreement scores of all {len(rows)} maps: {ms(score_t)}")
    print(
        f"  together: median {statistics.median(np.add(explain_t, score_t)) * 1000:.0f} ms "
        f"(torch threads: {torch.get_num_threads()}, as the app: LRAN_TORCH_THREADS)"
    )


def peak_rss_bytes(pid: int) -> int | None:
    """Peak resident set size of a process (Linux VmHWM), None where unavailable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def start_server(tmp: Path, db: str) -> StreamlitServer:
    """``streamlit run app.py`` (appserver.StreamlitServer) in local mode (local mode needs
    loopback) over the database ``db``, logging to ``tmp/streamlit.log``."""
    env = {**os.environ, "LRAN_REVIEW_DB": db, "LRAN_AUTH": "local"}
    return StreamlitServer("app.py", env, tmp / "streamlit.log")


def open_worklist(page: Page, url: str, study: int) -> None:
    """Opens the Worklist page of ``study`` for the bench reader (both from the address bar)
    and waits until it is usable: title, study, uploader drawn and the script run over."""
    page.goto(f"{url}/?study={study}&reader={READER}")
    page.get_by_role("heading", name="LRAN Review").wait_for()
    page.get_by_text(STUDY).first.wait_for()
    page.get_by_text("Add images to this study").wait_for()
    page.wait_for_function(IDLE)


def bench_browser(repeats: int, tmp: Path, panes: int) -> None:
    """Server start to a usable Worklist page, patch added -> all maps shown in Chromium, and
    the server process's memory."""
    import psutil
    from playwright.sync_api import sync_playwright

    db = f"sqlite:///{tmp / 'browser.sqlite'}"
    study = open_study(db)
    with sync_playwright() as pw:
        # The browser is up before the server starts: its own start is not the app's.
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.set_default_timeout(180_000)
        server = start_server(tmp, db)
        url, started = server.url, server.started
        try:
            server.wait(poll_s=0.05)
            healthy = time.perf_counter() - started
            open_worklist(page, url, study)
            usable = time.perf_counter() - started
            print(
                f"4. server start -> Worklist page usable in Chromium: {usable:.2f} s "
                f"[goal < 5 s] (health check answered at {healthy:.2f} s; page load and first "
                f"script run {usable - healthy:.2f} s)"
            )
            print("1. patch added -> all maps shown (open study)")
            adds, opens, totals = [], [], []
            for i in range(repeats + 1):
                if i:
                    page.get_by_test_id("stSidebarNav").get_by_text("Worklist").click()
                    page.get_by_text("Add images to this study").wait_for()
                    page.wait_for_function(IDLE)
                uploader = page.locator("input[type=file]")
                if not page.get_by_test_id("stFileUploaderDropzone").is_visible():
                    page.get_by_text("Add images to this study").click()
                    page.get_by_test_id("stFileUploaderDropzone").wait_for()
                files: list[FilePayload] = [
                    {
                        "name": f"b{i}.png",
                        "mimeType": "image/png",
                        "buffer": png_bytes(3000 + i, 50),
                    }
                ]
                start = time.perf_counter()
                uploader.set_input_files(files)
                page.get_by_role("button", name="Add them").click()
                page.get_by_text("Added 1 case.").wait_for()
                page.wait_for_function(IDLE)
                middle = time.perf_counter()
                page.get_by_role("button", name="Next unread case").click()
                page.get_by_text(f"Case {i + 1} of {i + 1}").wait_for()
                page.wait_for_function(MAPS_SHOWN, arg=[IFRAME, panes], polling=20)
                end = time.perf_counter()
                if i == 0:
                    print(
                        f"  browser: first patch (models loaded then): add {middle - start:.2f} s,"
                        f" open {end - middle:.2f} s"
                    )
                else:
                    adds.append(middle - start)
                    opens.append(end - middle)
                    totals.append(end - start)
                case = int(parse_qs(urlparse(page.url).query)["case"][0])
                mark_read(db, study, case)
            if repeats:
                print(f"  browser, new 50 x 50 patch: upload + add {ms(adds)}")
                print(f"  browser, open -> all {panes - 1} maps shown: {ms(opens)}")
                print(f"  browser, patch added -> all maps shown: {ms(totals)} [goal < 1.5 s]")
            proc = psutil.Process(server.proc.pid)
            mem = proc.memory_full_info()
            peak = peak_rss_bytes(server.proc.pid)
            print(
                f"3. app process with {len(VARIANTS)} models loaded: "
                f"RSS {mem.rss / 2**20:.0f} MiB now"
                + (f", peak {peak / 2**20:.0f} MiB" if peak else "")
                + f"; unique (USS) {mem.uss / 2**20:.0f} MiB [goal < 1.5 GB = 1431 MiB]"
            )
            # A new session (tab) on the warm server: what a reader waits for once it is up.
            second = browser.new_page(viewport={"width": 1600, "height": 1000})
            second.set_default_timeout(180_000)
            start = time.perf_counter()
            open_worklist(second, url, study)
            print(
                f"4. (for comparison) a new tab on the warm server -> Worklist page usable: "
                f"{time.perf_counter() - start:.2f} s"
            )
        except Exception:
            page.screenshot(path=str(tmp / "failure.png"))
            print(f"  (server log {tmp / 'streamlit.log'}, screenshot {tmp / 'failure.png'})")
            raise
        finally:
            browser.close()
            server.close(timeout_s=20)


MIB = 2**20
REGION_GOAL = 2 * 10**9  # bytes: the large region's peak RSS in the app (issue 12)
REGION_MPP = 0.47
BACH_TILES = ROOT.parent / "shared" / "data" / "bach-a03" / "tiles"
# Mapping a 36-megapixel region with three models takes minutes on a busy 2-core machine.
REGION_TIMEOUT_MS = 1_800_000


def region_tiff(side: int, mpp: float = REGION_MPP) -> tuple[bytes, str]:
    """A ``side`` x ``side`` H&E-like RGB image as a JPEG-compressed TIFF whose resolution tags
    say ``mpp`` µm/px (Streamlit's upload limit is 50 MB; uncompressed it would be 3 side^2
    bytes), and what it was made of. BACH A03 tiles, each turned and flipped at random, when
    present; else smooth random colour noise in H&E-like pinks and purples."""
    rng = np.random.default_rng(12)
    tiles = [
        np.asarray(Image.open(p).convert("RGB"))
        for p in sorted(BACH_TILES.glob("*.png"))
        if not p.name.endswith("_mask.png")
    ]
    rgb = np.empty((side, side, 3), np.uint8)
    if tiles:
        what = f"{len(tiles)} BACH A03 tiles, turned and flipped at random"
        for y in range(0, side, tiles[0].shape[0]):
            for x in range(0, side, tiles[0].shape[1]):
                tile = np.rot90(tiles[int(rng.integers(len(tiles)))], int(rng.integers(4)))
                if rng.integers(2):
                    tile = tile[:, ::-1]
                h, w = min(tile.shape[0], side - y), min(tile.shape[1], side - x)
                rgb[y : y + h, x : x + w] = tile[:h, :w]
    else:
        import cv2

        what = "smooth random colour noise (no BACH tiles)"
        coarse = rng.random((side // 16 + 1, side // 16 + 1, 3)).astype(np.float32)
        smooth = cv2.resize(coarse, (side, side), interpolation=cv2.INTER_CUBIC)
        pink, purple = np.array([235, 170, 200]), np.array([120, 70, 160])
        t = np.clip(smooth[..., :1], 0, 1)
        base = pink * (1 - t) + purple * t + (smooth - 0.5) * 40
        noise = rng.normal(0, 12, (side, side, 1))
        rgb[...] = np.clip(base + noise, 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(
        buffer, format="TIFF", compression="jpeg", quality=90, dpi=(25400 / mpp,) * 2
    )
    return buffer.getvalue(), what


class RssSampler:
    """Samples the RSS of a process and its children every ``period`` seconds in a thread;
    :meth:`mark` names the step that starts now."""

    def __init__(self, pid: int, period: float = 0.2) -> None:
        import psutil

        self.process = psutil.Process(pid)
        self.period = period
        self.samples: list[tuple[float, int]] = []
        self.marks: list[tuple[float, str]] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        """RSS of the process and its children now (bytes); 0 once it is gone."""
        import psutil

        try:
            total = self.process.memory_info().rss
            for child in self.process.children(recursive=True):
                total += child.memory_info().rss
        except psutil.Error:
            return 0
        return total

    def _run(self) -> None:
        while not self.stopped.is_set():
            self.samples.append((time.perf_counter(), self.rss()))
            self.stopped.wait(self.period)

    def start(self) -> RssSampler:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join()
        self.samples.append((time.perf_counter(), self.rss()))

    def mark(self, name: str) -> int:
        """Starts step ``name`` (printed with the RSS so far); gives the RSS now."""
        now = self.rss()
        if self.marks:
            print(
                f"    ... {name} (RSS {now / MIB:.0f} MiB, peak so far "
                f"{self.peak() / MIB:.0f} MiB)",
                flush=True,
            )
        self.marks.append((time.perf_counter(), name))
        self.samples.append((time.perf_counter(), now))
        return now

    def peak(self, start: float = 0.0, end: float = float("inf")) -> int:
        """The largest RSS sampled from ``start`` to ``end`` (perf_counter times)."""
        return max((r for t, r in self.samples if start <= t <= end), default=0)

    def steps(self) -> list[tuple[str, float, int, int]]:
        """(name, seconds, RSS at its start, peak RSS) of every marked step."""
        out = []
        ends = [t for t, _ in self.marks[1:]] + [self.samples[-1][0]]
        for (start, name), end in zip(self.marks, ends, strict=True):
            first = next((r for t, r in self.samples if t >= start), 0)
            out.append((name, end - start, first, self.peak(start, end)))
        return out


def bench_region_app(side: int, tmp: Path) -> dict[str, Any]:
    """A ``side`` x ``side`` region at 0.47 µm/px through the app in Chromium: uploaded on the
    Worklist page, opened until every model's region maps are shown, a polygon drawn and the
    read saved, with the server's RSS sampled throughout. Prints and gives the figures."""
    from playwright.sync_api import sync_playwright

    from annotations.store import Store

    data, what = region_tiff(side)
    path = tmp / f"region-{side}.tif"
    path.write_bytes(data)
    print(
        f"5. a {side} x {side} region at {REGION_MPP} um/px in the app ({what}; TIFF "
        f"{len(data) / 1e6:.1f} MB, JPEG-compressed, {side * side * 3 / 1e6:.0f} MB decoded)"
    )
    db = f"sqlite:///{tmp / 'region.sqlite'}"
    study = open_study(db)
    figures: dict[str, Any] = {"side": side, "tiff_bytes": len(data)}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.set_default_timeout(180_000)
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        main = page.get_by_test_id("stMain")
        server = start_server(tmp, db)
        url = server.url
        sampler = RssSampler(server.proc.pid).start()

        def settle(timeout: float = 180_000) -> None:
            """Waits for the rerun an action caused to finish."""
            page.wait_for_timeout(500)
            page.wait_for_function(IDLE, timeout=timeout)
            page.wait_for_timeout(200)

        try:
            sampler.mark("start, Worklist page")
            server.wait(poll_s=0.05)
            open_worklist(page, url, study)
            # The default study's models load in the background as the server starts: the
            # "before" figure is taken once they are in memory (RSS steady for 2 s).
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                first = sampler.rss()
                time.sleep(2)
                if abs(sampler.rss() - first) < 4 * MIB:
                    break
            if not page.get_by_test_id("stFileUploaderDropzone").is_visible():
                page.get_by_text("Add images to this study").click()
                page.get_by_test_id("stFileUploaderDropzone").wait_for()

            started = time.perf_counter()
            figures["rss_before_upload"] = sampler.mark("upload and add")
            page.locator("input[type=file]").set_input_files(str(path))
            page.get_by_role("button", name="Add them").click()
            page.get_by_text("Added 1 case.").wait_for(timeout=REGION_TIMEOUT_MS)
            settle(REGION_TIMEOUT_MS)
            added = time.perf_counter()
            sampler.mark("open, map, show")
            page.get_by_role("button", name="Next unread case").click()
            page.wait_for_url("**/review*")
            # The region's table (a row per model) once every model has mapped it, then the
            # viewer with a column per model and every pane's image loaded.
            main.get_by_test_id("stTable").get_by_text("R-LRAN", exact=True).wait_for(
                timeout=REGION_TIMEOUT_MS
            )
            settle(REGION_TIMEOUT_MS)
            frame = region_viewer(page, columns=len(VARIANTS))
            shown = time.perf_counter()
            panes = frame.evaluate("() => window.__viewer.views().length")

            sampler.mark("draw")
            iframe = page.locator(IFRAME)
            iframe.scroll_into_view_if_needed()
            page.frame_locator(IFRAME).get_by_role("button", name="Polygon").click()
            corners = [
                (side * fx, side * fy)
                for fx, fy in [(0.65, 0.70), (0.95, 0.62), (0.96, 0.95), (0.70, 0.96), (0.62, 0.85)]
            ]
            box = iframe.bounding_box()
            assert box is not None
            for x, y in [*corners, corners[0]]:  # the first corner again closes it
                client = frame.evaluate(
                    "([x, y]) => window.__viewer.imageToClient(x, y, '', '')", [x, y]
                )
                assert client["inside"], client
                page.mouse.click(box["x"] + client["x"], box["y"] + client["y"])
                page.wait_for_timeout(250)
            frame.wait_for_function("() => window.__viewer.drawing().length == 1")
            settle()
            main.get_by_role("button", name=re.compile(r"^IDC-positive")).click()
            settle()

            sampler.mark("save")
            saving = time.perf_counter()
            page.get_by_role("button", name="Save read").click()
            main.get_by_text(re.compile(r"Saved as read \d+, version 1")).wait_for(
                timeout=REGION_TIMEOUT_MS
            )
            settle(REGION_TIMEOUT_MS)
            saved = time.perf_counter()
            sampler.mark("after the save")
            page.wait_for_timeout(3000)
            if page.get_by_test_id("stException").count():
                raise RuntimeError("the page shows an exception")
            assert not errors, errors
            figures["hwm"] = peak_rss_bytes(server.proc.pid)
        except Exception:
            page.screenshot(path=str(tmp / "failure.png"))
            print(f"  (server log {tmp / 'streamlit.log'}, screenshot {tmp / 'failure.png'})")
            raise
        finally:
            sampler.stop()
            browser.close()
            server.close(timeout_s=20)
    figures.update(
        peak=sampler.peak(started),
        peak_whole=sampler.peak(),
        add_s=added - started,
        open_s=shown - added,
        shown_s=shown - started,
        save_s=saved - saving,
        panes=panes,
        steps=sampler.steps(),
        samples=len(sampler.samples),
    )
    peak, hwm = figures["peak"], figures["hwm"]
    goal = "met" if max(peak, hwm or 0) < REGION_GOAL else "NOT met"
    print(
        f"  peak RSS of the server (children included, sampled every {sampler.period} s) from "
        f"the upload to the saved read: {peak / MIB:.0f} MiB = {peak / 1e9:.2f} GB "
        f"[goal < 2 GB: {goal}]; VmHWM of the server process "
        + (f"{hwm / MIB:.0f} MiB = {hwm / 1e9:.2f} GB" if hwm else "unknown")
        + f"; RSS before the upload (models loaded) {figures['rss_before_upload'] / MIB:.0f} MiB"
    )
    print(
        f"  upload -> maps of {len(VARIANTS)} models shown ({panes} panes): "
        f"{figures['shown_s']:.1f} s (upload + add {figures['add_s']:.1f} s, open -> maps shown "
        f"{figures['open_s']:.1f} s); save read (region scored): {figures['save_s']:.1f} s"
    )
    for name, seconds, first, top in figures["steps"]:
        print(
            f"    {name:<22} {seconds:7.1f} s  RSS at start {first / MIB:6.0f} MiB, "
            f"peak {top / MIB:6.0f} MiB"
        )
    # The read is in the store: a region of the image's size at the tags' µm/px.
    reviews = Store(db).reviews_frame()
    assert len(reviews) == 1 and int(reviews["width"].iloc[0]) == side, reviews
    assert abs(reviews["mpp"].iloc[0] - REGION_MPP) < 1e-6, reviews["mpp"]
    assert reviews["kind"].iloc[0] == "region", reviews["kind"]
    return figures


def region_viewer(page: Page, columns: int) -> Any:
    """The viewer's frame once its single iframe shows ``columns`` model columns and every
    pane has its image (a frame replaced meanwhile is looked up again)."""
    from playwright.sync_api import Error

    deadline = time.monotonic() + 300
    while True:
        try:
            page.wait_for_function(f'() => document.querySelectorAll("{IFRAME}").length == 1')
            handle = page.locator(IFRAME).element_handle()
            frame = handle.content_frame() if handle else None
            if frame is None:
                raise Error("no viewer frame")
            frame.wait_for_function(
                """(columns) => window.__viewer && window.__viewer.ready()
                    && window.__viewer.settled()
                    && document.querySelectorAll('[data-testid=column-header]').length
                       == columns""",
                arg=columns,
                timeout=10_000,
            )
            return frame
        except Error:
            if time.monotonic() > deadline:
                raise
            page.wait_for_timeout(200)


def main() -> None:
    """Runs every benchmark and prints its figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=10, help="new patches per measure")
    parser.add_argument("--quick", action="store_true", help="--repeats 1")
    parser.add_argument("--patch-side", type=int, default=128, help="patch side for 2.")
    parser.add_argument("--no-browser", action="store_true", help="skip Chromium (1, 3, 4)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument(
        "--region",
        type=int,
        default=6000,
        metavar="SIDE",
        help="side of the large region of 5. in px (0 skips it)",
    )
    parser.add_argument("--region-only", action="store_true", help="run 5. only")
    args = parser.parse_args()
    repeats = 1 if args.quick else args.repeats
    tmp = Path(tempfile.mkdtemp(prefix="bench-app-"))
    keep = args.keep
    try:
        print(
            f"models: {ensure_models(tmp)}; CPU cores: {os.cpu_count()}; "
            f"load average {os.getloadavg()[0]:.1f}"
        )
        browser = not args.no_browser and CHROMIUM.exists()
        if args.region and browser:
            bench_region_app(args.region, tmp)
        elif args.region:
            print("5. large region in the app: skipped (no Chromium)")
        if args.region_only:
            return
        panes = expected_panes()
        if not browser:
            print(
                f"browser: skipped ({'--no-browser' if args.no_browser else f'no {CHROMIUM}'}); "
                "1 in Chromium, 3 and 4 not measured"
            )
            print("1. patch added -> all maps shown (open study)")
        else:
            bench_browser(repeats, tmp, panes)
        os.environ["LRAN_REVIEW_DB"] = f"sqlite:///{tmp / 'apptest.sqlite'}"
        os.environ["LRAN_AUTH"] = "local"
        bench_apptest(repeats, os.environ["LRAN_REVIEW_DB"], panes)
        print("2. per-patch cost")
        bench_explain(repeats, args.patch_side)
    except BaseException:
        keep = True  # the server log and the failure screenshot are there
        raise
    finally:
        if keep:
            print(f"kept {tmp}")
        else:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
