"""Benchmark of region mapping, run by hand:
``python bench/bench_region.py [--repeats N] [--large SIDE] [--sweep] [--quick]``.

Prints, for the three models of a set mapping a region end to end with
:func:`lran_core.region.map_region` at its defaults, as the app does (resample to the models'
input scale, the fully convolutional part over the region in blocks, every window's
probability, CAM and attention from box sums, the maps kept at most ``MAP_SIDE`` px a side):

1. a 500 x 500 region at 4.7 um/px [goal: < 5 s for all three models] and a 1000 x 1000 tile
   at 0.47 um/px (BACH A03 images when ``../shared/data/bach-a03`` holds them, else synthetic
   tissue-like noise): seconds (best of ``--repeats``), windows classified per model, forward
   passes (blocks), windows per second, peak memory, and the estimate
   :func:`lran_core.region.estimate_region_bytes` (what ``map_region`` compares with
   ``limit_bytes``, by default the memory available, before allocating);
2. a synthetic 6000 x 6000 region at 0.47 um/px (``--large``, default 6000; 0 skips it) in a
   fresh process (so nothing of the runs above is counted): wall time, the process's peak RSS
   over its whole life (models and the 108 MB image included) [goal < 2 GB], its rise during
   the run, RSS sampled after every block, the kept maps' shape and bytes, and the estimate,
   with whether ``check_region_memory`` would refuse it under a 2 GB ``limit_bytes``;
3. ``--sweep``: the 500 x 500 region under alternatives (fp32 or bf16 autocast, block side 512 /
   1024 / 2048), with the tumour AUROC on BACH A03 regions when present, to show what each
   costs in quality.

Memory: peak RSS of the process (VmHWM, reset before each run through /proc/self/clear_refs on
Linux; else the largest RSS seen at progress callbacks), with its rise over the RSS before the
run (memory freed by an earlier run is reused, so later rises read low), and tracemalloc's peak
of Python/numpy allocations (torch's CPU allocator is not traced). Uses the shipped weights when
installed, else random weights of the same architecture (speed does not depend on the values).
``--quick`` is ``--repeats 1`` (proves the script runs end to end).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import psutil  # noqa: E402
import torch  # noqa: E402

from lran_core import NoWeightsError, build_model  # noqa: E402
from lran_core.data import load_image  # noqa: E402
from lran_core.models import LRANClassifier  # noqa: E402
from lran_core.predict import use_bf16  # noqa: E402
from lran_core.region import (  # noqa: E402
    BLOCK,
    MAP_SIDE,
    RegionTooLargeError,
    check_region_memory,
    estimate_region_bytes,
    map_region,
)
from review import modelsets  # noqa: E402

BACH = ROOT.parent / "shared" / "data" / "bach-a03"
VARIANTS = ("resnet18", "resnet18-ran", "resnet18-lran")
MB = 2**20
LARGE_GOAL = 2 * 10**9  # bytes: the 6000 x 6000 region's peak RSS goal (2 GB)


def load_models(name: str) -> tuple[dict[str, LRANClassifier], str]:
    """The set's models by variant, or random ones of the same architecture."""
    try:
        return modelsets.load(name).models, f"shipped set {name!r}"
    except NoWeightsError:
        models = {}
        for v in VARIANTS:
            m = build_model(v).eval()
            m.meta.mpp, m.meta.data = 4.0, "random: 0 train images (idc, split by patient)"
            models[v] = m
        return models, "random weights (no set installed)"


def cpu_seconds() -> float:
    """CPU time of this process (user + system): on a shared machine, wall time over-counts."""
    t = psutil.Process().cpu_times()
    return t.user + t.system


def rss() -> int:
    return psutil.Process().memory_info().rss


def reset_peak() -> bool:
    """Resets the kernel's peak-RSS counter (Linux); False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss() -> int:
    """The process's peak RSS since the last reset (VmHWM), 0 where unknown."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def region(side: int, seed: int = 0) -> np.ndarray:
    """Tissue-like noise: smooth pink-purple blobs, so windows are not all identical."""
    rng = np.random.default_rng(seed)
    small = rng.integers(120, 240, (max(2, side // 40), max(2, side // 40), 3), dtype=np.uint8)
    return cv2.resize(small, (side, side), interpolation=cv2.INTER_CUBIC)


def measure(
    models: dict[str, LRANClassifier],
    rgb: np.ndarray,
    mpp: float,
    on_block: Callable[[float], None] | None = None,
    trace: bool = True,
    **kwargs: Any,
) -> dict[str, Any]:
    """One end-to-end run: seconds, windows, windows/s and memory above the starting RSS."""
    before = rss()
    exact = reset_peak()
    seen = [before]

    def progress(fraction: float) -> None:
        seen.append(rss())
        if on_block is not None:
            on_block(fraction)

    load = os.getloadavg()[0]
    if trace:
        tracemalloc.start()
    t0, c0 = time.perf_counter(), cpu_seconds()
    maps = map_region(models, rgb, mpp, progress=progress, **kwargs)
    seconds, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    traced = tracemalloc.get_traced_memory()[1] if trace else 0
    if trace:
        tracemalloc.stop()
    peak = peak_rss() if exact else max(seen)
    windows = sum(m.windows for m in maps.values())
    first = next(iter(maps.values()))
    return {
        "seconds": seconds,
        "cpu": cpu,
        "load": load,
        "windows": first.windows,
        "blocks": first.blocks,
        "windows_per_s": windows / seconds,
        "rise_mb": (peak - before) / MB,
        "rss_mb": peak / MB,
        "traced_mb": traced / MB,
        "maps": maps,
        "map_shape": first.probs.shape[1:],
        "estimate_mb": estimate_region_bytes(
            models,
            rgb.shape[:2],
            mpp,
            kwargs.get("block", BLOCK),
            kwargs.get("map_side", MAP_SIDE),
        )
        / MB,
    }


def show(label: str, r: dict[str, Any]) -> None:
    print(
        f"{label:<46} {r['seconds']:6.2f} s (CPU {r['cpu']:6.2f} s, load {r['load']:.1f})  "
        f"{r['windows']:6d} windows in {r['blocks']} blocks per model  "
        f"{r['windows_per_s']:6.0f} windows/s  peak RSS {r['rss_mb']:5.0f} MiB "
        f"({r['rise_mb']:+.0f})  numpy {r['traced_mb']:6.1f} MiB  "
        f"(estimate {r['estimate_mb']:.0f} MiB)",
        flush=True,
    )


def bach_regions() -> list[tuple[str, np.ndarray, np.ndarray]]:
    folder = BACH / "regions"
    if not folder.is_dir():
        return []
    out = []
    for image in sorted(folder.glob("A03_?.png")):
        mask = np.asarray(load_image(image.with_name(f"{image.stem}_mask.png")))[..., 0]
        out.append((image.stem, load_image(image), mask))
    return out


def tumour_auroc(maps: dict[str, Any], mask: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import roc_auc_score

    from lran_core.maps import resize_map

    tumour = np.isin(mask, (2, 3)).ravel()
    return {
        name: float(roc_auc_score(tumour, resize_map(m.probs[m.cam_class], mask.shape).ravel()))
        for name, m in maps.items()
    }


def sweep(models: dict[str, LRANClassifier]) -> None:
    regions = bach_regions()
    rgb = regions[0][1] if regions else region(500)
    print(
        f"\nSweep on a 500 x 500 region at 4.7 um/px; tumour AUROC (labels 2, 3) per model, "
        f"mean over {len(regions)} BACH regions"
        if regions
        else "\nSweep (no BACH data: no AUROC)"
    )
    configs = [(precision, BLOCK) for precision in ("fp32", "bf16")] + [
        ("auto", 512),
        ("auto", 2048),
    ]
    for precision, block in configs:
        options: dict[str, Any] = {"precision": precision, "block": block}
        r = measure(models, rgb, 4.7, **options)
        show(f"{precision} block {block}", r)
        if regions and block == BLOCK:
            scores = [
                tumour_auroc(measure(models, im, 4.7, **options)["maps"] if i else r["maps"], mask)
                for i, (_, im, mask) in enumerate(regions)
            ]
            print(
                "    AUROC "
                + "  ".join(f"{v}: {np.mean([s[v] for s in scores]):.3f}" for v in models),
                flush=True,
            )


def large_child(models_name: str, side: int) -> dict[str, Any]:
    """In a fresh process: map a synthetic ``side`` x ``side`` region at 0.47 um/px with the
    set; gives the figures as a dict (printed as JSON by ``--child``)."""
    models, source = load_models(models_name)
    rgb = region(side)
    before = rss()
    loading_peak = peak_rss()  # torch, the models and the image, before the run
    trace: list[tuple[float, int]] = []
    # No tracemalloc: on an image this size it would slow numpy's allocations noticeably.
    r = measure(models, rgb, 0.47, on_block=lambda f: trace.append((f, rss())), trace=False)
    estimate = int(r["estimate_mb"] * MB)
    try:
        check_region_memory(models, rgb.shape[:2], 0.47, LARGE_GOAL)
        refused = False
    except RegionTooLargeError:
        refused = True
    maps_bytes = sum(
        m.probs.nbytes + m.cam.nbytes + (0 if m.attention is None else m.attention.nbytes)
        for m in r["maps"].values()
    )
    return {
        "source": source,
        "side": side,
        "seconds": r["seconds"],
        "cpu": r["cpu"],
        "load": r["load"],
        "windows": r["windows"],
        "blocks": r["blocks"],
        "per_model": {n: round(m.seconds, 2) for n, m in r["maps"].items()},
        "rss_before_mb": before / MB,
        "peak_rss_mb": max(r["rss_mb"], loading_peak / MB),
        "rise_mb": r["rise_mb"],
        "trace_mb": [(round(f, 3), round(m / MB)) for f, m in trace],
        "map_shape": list(r["map_shape"]),
        "maps_mb": maps_bytes / MB,
        "estimate_mb": estimate / MB,
        "refused_at_2gb": refused,
    }


def large(models_name: str, side: int) -> None:
    """Runs :func:`large_child` in a fresh process and prints its figures."""
    done = subprocess.run(
        [
            sys.executable,
            __file__,
            "--models",
            models_name,
            "--threads",
            str(torch.get_num_threads()),
            "--child",
            str(side),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        print(f"\n{side} x {side} at 0.47 um/px: the child process failed\n{done.stderr}")
        return
    r = json.loads(done.stdout.strip().splitlines()[-1])
    goal = "met" if r["peak_rss_mb"] * MB < LARGE_GOAL else "NOT met"
    print(
        f"\n{side} x {side} at 0.47 um/px (synthetic, all models, fresh process): "
        f"{r['seconds']:.2f} s (CPU {r['cpu']:.2f} s, load {r['load']:.1f}), "
        f"{r['windows']} windows in {r['blocks']} blocks per model; "
        + ", ".join(f"{n} {s:.2f} s" for n, s in r["per_model"].items())
    )
    print(
        f"    peak RSS {r['peak_rss_mb']:.0f} MiB = {r['peak_rss_mb'] * MB / 1e9:.2f} GB "
        f"[goal < 2 GB: {goal}]; {r['rss_before_mb']:.0f} MiB before the run (torch, models, "
        f"the image), {r['rise_mb']:+.0f} MiB during it"
    )
    trace = r["trace_mb"]
    if trace:
        print(
            "    RSS after each block: "
            + ", ".join(f"{100 * f:.0f}% {m}" for f, m in trace[:: max(1, len(trace) // 12)])
            + " MiB (the peak can fall between blocks: features to maps)"
        )
    print(
        f"    maps kept at {r['map_shape'][1]} x {r['map_shape'][0]} (MAP_SIDE {MAP_SIDE}): "
        f"{r['maps_mb']:.0f} MiB; estimate_region_bytes {r['estimate_mb']:.0f} MiB "
        f"({'above' if r['estimate_mb'] >= r['rise_mb'] else 'BELOW'} the measured rise); "
        f"check_region_memory with limit_bytes = 2 GB: "
        + ("refused" if r["refused_at_2gb"] else "allowed")
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="idc")
    p.add_argument("--repeats", type=int, default=3, help="runs of each default-settings case")
    p.add_argument("--quick", action="store_true", help="--repeats 1")
    p.add_argument("--sweep", action="store_true", help="alternatives on the 500 x 500 region")
    p.add_argument(
        "--large",
        type=int,
        default=6000,
        metavar="SIDE",
        help="side of the synthetic region at 0.47 um/px mapped in a fresh process (0: skip)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=int(os.environ.get("LRAN_TORCH_THREADS", "1")),
        help="torch threads (default: the app's, LRAN_TORCH_THREADS or 1)",
    )
    p.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.child:
        print(json.dumps(large_child(args.models, args.child)))
        return
    repeats = 1 if args.quick else args.repeats
    models, source = load_models(args.models)
    print(
        f"models: {source}; torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; maps kept at most "
        f"{MAP_SIDE} px a side, blocks of {BLOCK} px, precision auto = "
        f"{'bf16' if use_bf16(torch.device('cpu'), 'auto') else 'fp32'}"
    )
    regions = bach_regions()
    small = regions[0][1] if regions else region(500)
    tile = BACH / "tiles" / "A03_0_6.png"
    big = load_image(tile) if tile.is_file() else region(1000)
    map_region(models, small[:60, :60], 4.7)  # warm-up: first-call allocations, thread pool
    for label, rgb, mpp in (
        ("500 x 500 at 4.7 um/px (default settings)", small, 4.7),
        ("1000 x 1000 at 0.47 um/px (default settings)", big, 0.47),
    ):
        # The fastest of a few runs: on a shared machine, other loads only ever add time.
        r = min((measure(models, rgb, mpp) for _ in range(repeats)), key=lambda x: x["seconds"])
        show(f"{label}, best of {repeats}", r)
        if mpp == 4.7:
            print(
                f"    goal < 5 s for all three models: {'met' if r['seconds'] < 5 else 'NOT met'}"
            )
        print("    per model: " + ", ".join(f"{n} {m.seconds:.2f} s" for n, m in r["maps"].items()))
    if args.sweep:
        sweep(models)
    if args.large:
        del models
        large(args.models, args.large)


if __name__ == "__main__":
    main()
