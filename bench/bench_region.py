"""Benchmark of region mapping, run by hand: ``python bench/bench_region.py [--sweep] [--large]``.

Prints, for the three models of a set mapping a region end to end (resample, tile, predict,
blend, resize to the image):

1. a 500 x 500 region at 4.7 um/px [goal: < 5 s for all three models] and a 1000 x 1000 tile at
   0.47 um/px: seconds, tiles and patches (tile x model passes) per second, peak memory;
2. ``--sweep``: the 500 x 500 region under alternatives (overlap 0.5 / 0.25 / 0, fp32 or bf16
   autocast, batch size), with the tumour AUROC on BACH A03 regions when
   ``../shared/data`` holds them, to show what each costs in quality;
3. ``--large``: a synthetic 4000 x 4000 region at 4.7 um/px (base model, overlap 0: ~8,800
   tiles): resident memory sampled after every batch, to show it stays flat as tiles stream,
   against the estimate :func:`lran_core.region.estimate_region_bytes` refuses by.

Memory: peak RSS of the process (VmHWM, reset before each run through /proc/self/clear_refs on
Linux; else the largest RSS seen at progress callbacks), with its rise over the RSS before the
run (memory freed by an earlier run is reused, so later rises read low), and tracemalloc's peak of
Python/numpy allocations (torch's CPU allocator is not traced). Uses the shipped weights when
installed, else random weights of the same architecture (speed does not depend on the values).
"""

from __future__ import annotations

import argparse
import os
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import psutil
import torch

from lran_core import NoWeightsError, build_model
from lran_core.data import load_image
from lran_core.models import LRANClassifier
from lran_core.region import estimate_region_bytes, map_region
from review import modelsets

ROOT = Path(__file__).resolve().parent.parent


def _load_set(name: str) -> dict[str, LRANClassifier]:
    return modelsets.load(name).models


BACH = ROOT.parent / "shared" / "data" / "bach-a03"
VARIANTS = ("resnet18", "resnet18-ran", "resnet18-lran")
MB = 2**20


def load_models(name: str) -> tuple[dict[str, LRANClassifier], str]:
    try:
        return _load_set(name), f"shipped set {name!r}"
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
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def region(side: int, seed: int = 0) -> np.ndarray:
    """Tissue-like noise: smooth pink-purple blobs, so tiles are not all identical."""
    rng = np.random.default_rng(seed)
    small = rng.integers(120, 240, (max(2, side // 40), max(2, side // 40), 3), dtype=np.uint8)
    return cv2.resize(small, (side, side), interpolation=cv2.INTER_CUBIC)


def measure(
    models: dict[str, LRANClassifier],
    rgb: np.ndarray,
    mpp: float,
    on_batch: Callable[[float], None] | None = None,
    **kwargs,
) -> dict:
    """One end-to-end run: seconds, tiles, patches/s and memory above the starting RSS."""
    before = rss()
    exact = reset_peak()
    seen = [before]

    def progress(fraction: float) -> None:
        seen.append(rss())
        if on_batch is not None:
            on_batch(fraction)

    load = os.getloadavg()[0]
    tracemalloc.start()
    t0, c0 = time.perf_counter(), cpu_seconds()
    maps = map_region(models, rgb, mpp, progress=progress, **kwargs)
    seconds, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    _, traced = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    peak = peak_rss() if exact else max(seen)
    patches = sum(m.tiles for m in maps.values())
    return {
        "seconds": seconds,
        "cpu": cpu,
        "load": load,
        "tiles": next(iter(maps.values())).tiles,
        "patches": patches,
        "patches_per_s": patches / seconds,
        "peak_mb": (peak - before) / MB,
        "rss_mb": peak / MB,
        "traced_mb": traced / MB,
        "maps": maps,
        "estimate_mb": estimate_region_bytes(
            models, rgb.shape[:2], mpp, kwargs.get("batch_size", 32)
        )
        / MB,
    }


def show(label: str, r: dict) -> None:
    print(
        f"{label:<46} {r['seconds']:6.2f} s (CPU {r['cpu']:6.2f} s, load {r['load']:.1f})  "
        f"{r['tiles']:5d} tiles/model  "
        f"{r['patches_per_s']:6.1f} patches/s  peak RSS {r['rss_mb']:6.0f} MB "
        f"(+{r['peak_mb']:.0f})  "
        f"numpy {r['traced_mb']:7.1f} MB  (estimate {r['estimate_mb']:.0f} MB)",
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


def tumour_auroc(maps: dict, mask: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import roc_auc_score

    tumour = np.isin(mask, (2, 3)).ravel()
    return {
        name: float(roc_auc_score(tumour, m.probs[m.cam_class].ravel())) for name, m in maps.items()
    }


def sweep(models: dict[str, LRANClassifier]) -> None:
    regions = bach_regions()
    rgb = regions[0][1] if regions else region(500)
    print(
        f"\nSweep on a 500 x 500 region at 4.7 um/px; tumour AUROC (labels 2, 3) per model, "
        f"mean over {len(regions)} BACH regions"
        if regions
        else "\nSweep (no BACH data)"
    )
    configs = [
        (overlap, precision, 32) for overlap in (0.5, 0.25, 0.0) for precision in ("fp32", "bf16")
    ] + [(0.25, "bf16", 16), (0.25, "bf16", 64)]
    for overlap, precision, bs in configs:
        options = {"overlap": overlap, "precision": precision, "batch_size": bs}
        r = measure(models, rgb, 4.7, **options)
        show(f"overlap {overlap:.2f} {precision} batch {bs}", r)
        if regions and bs == 32:
            scores = [
                tumour_auroc(measure(models, im, 4.7, **options)["maps"] if i else r["maps"], mask)
                for i, (_, im, mask) in enumerate(regions)
            ]
            print(
                "    AUROC "
                + "  ".join(f"{v}: {np.mean([s[v] for s in scores]):.3f}" for v in models),
                flush=True,
            )


def large(models: dict[str, LRANClassifier], side: int) -> None:
    base = {"resnet18": models["resnet18"]}
    rgb = region(side)
    trace: list[tuple[float, int]] = []
    r = measure(base, rgb, 4.7, overlap=0.0, on_batch=lambda f: trace.append((f, rss())))
    show(f"synthetic {side} x {side} at 4.7 um/px, base only, overlap 0", r)
    settled = [m for f, m in trace if f >= 0.05]
    print(
        f"    RSS while tiles stream (after 5% of {r['tiles']} tiles): "
        f"min {min(settled) / MB:.0f} MB, max {max(settled) / MB:.0f} MB; "
        f"at 25/50/75/100%: "
        + ", ".join(
            f"{next(m for f, m in trace if f >= q) / MB:.0f}" for q in (0.25, 0.5, 0.75, 1.0)
        )
        + " MB"
    )
    # What a stitcher that kept every tile's maps (probs, CAM at the 128 px input) would hold.
    kept = r["tiles"] * (2 * 4 + 128 * 128 * 4) / MB
    print(f"    keeping every tile's maps instead would hold {kept:.0f} MB more by the end")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="idc")
    p.add_argument("--repeats", type=int, default=3, help="runs of each default-settings case")
    p.add_argument("--sweep", action="store_true", help="alternatives on the 500 x 500 region")
    p.add_argument(
        "--large",
        type=int,
        nargs="?",
        const=4000,
        default=0,
        help="also map a synthetic SIDE x SIDE region at 4.7 um/px (default 4000)",
    )
    args = p.parse_args()
    models, source = load_models(args.models)
    print(
        f"models: {source}; torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
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
        r = min(
            (measure(models, rgb, mpp) for _ in range(args.repeats)), key=lambda run: run["seconds"]
        )
        show(f"{label}, best of {args.repeats}", r)
        print("    per model: " + ", ".join(f"{n} {m.seconds:.2f} s" for n, m in r["maps"].items()))
    if args.sweep:
        sweep(models)
    if args.large:
        large(models, args.large)


if __name__ == "__main__":
    main()
