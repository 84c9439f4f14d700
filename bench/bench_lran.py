"""Speed of the resnet18 variants: explain() per patch and one training step, next to a plain
torchvision ResNet-18 forward in the same run (the goal: R-LRAN's explain at most 2x that).

    python bench/bench_lran.py [--sizes 128 256] [--batches 1 32] [--repeats 7] [--threads 2]
    python bench/bench_lran.py --quick     (size 128, batches 1 and 4, 1 repeat: runs end to end)

Prints a markdown table of medians (ms per patch) for batch 1 and 32. explain() runs without
gradients (as in the app); the training step is a forward, backward and Adam step in train mode.
Random weights: speed does not depend on their values.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torchvision.models import resnet18

from lran_core import build_model

VARIANTS = ("resnet18", "resnet18-ran", "resnet18-lran")


def median_ms(fn: Callable[..., object], repeats: int, *args: object) -> float:
    """Median wall time of ``fn(*args)`` in milliseconds, after one warm-up call."""
    fn(*args)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(*args)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def train_step(
    model: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor
) -> None:
    """One optimisation step on a batch."""
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    p.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--quick", action="store_true", help="--sizes 128 --batches 1 4 --repeats 1")
    args = p.parse_args()
    if args.quick:
        args.sizes, args.batches, args.repeats = [128], [1, 4], 1
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {args.threads} threads, medians of {args.repeats}\n")
    print("| size | batch | what | ms per patch | x plain ResNet-18 forward |")
    print("|---|---|---|---|---|")
    plain = resnet18(weights=None, num_classes=2).eval()
    for size in args.sizes:
        for batch in args.batches:
            x = torch.randn(batch, 3, size, size)
            with torch.inference_mode():
                ref = median_ms(plain, args.repeats, x) / batch
            print(f"| {size} | {batch} | plain ResNet-18 forward | {ref:.2f} | 1.00 |")
            for name in VARIANTS:
                model = build_model(name, num_classes=2).eval()
                ms = median_ms(model.explain, args.repeats, x) / batch
                print(f"| {size} | {batch} | {name} explain | {ms:.2f} | {ms / ref:.2f} |")
                if batch == 1:
                    continue
                model.train()
                opt = torch.optim.Adam(model.parameters(), lr=1e-4)
                y = torch.randint(0, 2, (batch,))
                ms = median_ms(train_step, max(3, args.repeats // 2), model, opt, x, y) / batch
                print(f"| {size} | {batch} | {name} training step | {ms:.2f} | {ms / ref:.2f} |")


if __name__ == "__main__":
    main()
