"""Benchmarks of the review app, run by hand: ``python bench/bench_app.py [--repeats N]``.

Prints three figures (goals in brackets):

1. upload -> all maps shown: in a browser (Chromium via Playwright, from handing the file to the
   uploader until every map image is in the page) [< 1.5 s], and server-side (AppTest: the
   script run that follows an upload), each for a patch not seen before, models loaded;
2. per-patch cost of explain (three models) plus the agreement scores of every map, for a
   128 x 128 patch;
3. resident memory of the `streamlit run app.py` process with the three models loaded: now and
   peak (psutil, and VmHWM on Linux) [< 1.5 GB].

Uses the shipped weights when `lran_core/weights/idc` exists, else a random-weight set of the
same architecture (speed and memory do not depend on the weights' values). The browser parts
need /usr/bin/chromium and are skipped (with a note) without it.
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

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
VARIANTS = ["resnet18", "resnet18-ran", "resnet18-lran"]


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
        )
    os.environ["LRAN_MODELS_DIR"] = str(tmp)
    return "random weights, same architecture (no shipped weights)"


def ms(values: list[float]) -> str:
    """Median and range of durations in seconds, as milliseconds."""
    return (
        f"median {statistics.median(values) * 1000:.0f} ms "
        f"(min {min(values) * 1000:.0f}, max {max(values) * 1000:.0f}, n={len(values)})"
    )


def bench_apptest(repeats: int) -> None:
    """Server-side time of the script run that follows an upload."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    start = time.perf_counter()
    at.run()
    print(f"  AppTest first run (imports, models loaded): {time.perf_counter() - start:.2f} s")
    times = []
    for i in range(repeats):
        at.file_uploader(key="uploads").set_value(("p.png", png_bytes(1000 + i, 50), "image/png"))
        start = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - start)
        if at.exception:
            raise RuntimeError(at.exception[0].message)
    print(f"  AppTest, upload of a new 50 x 50 patch -> page with all maps: {ms(times)}")


def bench_explain(repeats: int) -> None:
    """explain (three models, cache missed) plus scores of every map, 128 x 128 patch."""
    import torch

    from lran_core.data import load_image
    from review import modelsets
    from review.patches import explain_patch
    from review.scoring import score_maps

    model_set = modelsets.load("idc")
    modelsets.warm_up(model_set, 1)
    region = np.zeros((128, 128), bool)
    region[32:96, 16:80] = True
    explain_t, score_t = [], []
    for i in range(repeats):
        rgb = load_image(png_bytes(2000 + i, 128))
        start = time.perf_counter()
        outputs = explain_patch(model_set, rgb)
        middle = time.perf_counter()
        rows = score_maps({o.variant: o.maps() for o in outputs}, region, 0.47)
        score_t.append(time.perf_counter() - middle)
        explain_t.append(middle - start)
    print(f"  explain, 3 models, 128 x 128 patch: {ms(explain_t)}")
    print(f"  agreement scores of all {len(rows)} maps: {ms(score_t)}")
    print(
        f"  together: median {statistics.median(np.add(explain_t, score_t)) * 1000:.0f} ms "
        f"(torch threads: {torch.get_num_threads()})"
    )


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peak_rss_bytes(pid: int) -> int | None:
    """Peak resident set size of a process (Linux VmHWM), None where unavailable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def bench_browser(repeats: int, tmp: Path) -> None:
    """Upload-to-maps in Chromium, and the server process's memory."""
    import psutil
    from playwright.sync_api import sync_playwright

    port = free_port()
    env = {**os.environ, "LRAN_REVIEW_DB": f"sqlite:///{tmp / 'bench.sqlite'}"}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "app.py",
            "--server.port",
            str(port),
            "--server.headless",
            "true",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                    break
            except OSError:
                time.sleep(0.3)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(120_000)
            start = time.perf_counter()
            page.goto(url)
            page.get_by_text("Model set idc").wait_for()
            print(f"  browser: first page with models loaded: {time.perf_counter() - start:.2f} s")
            times = []
            # Images that are loaded and not left over from the previous run (Streamlit marks
            # those stale until the new run replaces them).
            count = (
                "() => [...document.querySelectorAll('[data-testid=stMain] img')].filter("
                "i => i.complete && i.naturalWidth > 0 && !i.closest('[data-stale=true]'))"
                ".length"
            )
            for i in range(repeats):
                files = [
                    {
                        "name": f"p{i}.png",
                        "mimeType": "image/png",
                        "buffer": png_bytes(3000 + i, 50),
                    }
                ]
                # Each upload adds to the uploader; wait until this patch's preview is complete.
                start = time.perf_counter()
                page.locator("input[type=file]").set_input_files(files)
                page.get_by_role("heading", name=f"Preview: p{i}.png").wait_for()
                page.wait_for_function(f"{count} >= 7")
                times.append(time.perf_counter() - start)
            browser.close()
        print(
            f"  browser, upload of a new 50 x 50 patch -> all maps shown: {ms(times)}; "
            f"first {times[0] * 1000:.0f} ms"
        )
        proc = psutil.Process(server.pid)
        mem = proc.memory_full_info()
        peak = peak_rss_bytes(server.pid)
        print(
            f"3. app process with 3 models loaded: RSS {mem.rss / 2**20:.0f} MiB now"
            + (f", peak {peak / 2**20:.0f} MiB" if peak else "")
            + f"; unique (USS) {mem.uss / 2**20:.0f} MiB"
        )
    finally:
        server.terminate()
        server.wait(timeout=20)


def main() -> None:
    """Runs every benchmark and prints its figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(f"models: {ensure_models(Path(tmp))}; CPU cores: {os.cpu_count()}")
        os.environ.setdefault("LRAN_REVIEW_DB", f"sqlite:///{Path(tmp) / 'apptest.sqlite'}")
        print("1. upload -> all maps shown")
        if CHROMIUM.exists():
            bench_browser(args.repeats, Path(tmp))
        else:
            print(f"  browser: skipped (no {CHROMIUM}); app process memory not measured")
        bench_apptest(args.repeats)
        print("2. per-patch cost")
        bench_explain(args.repeats)


if __name__ == "__main__":
    main()
