"""Training with the paper's recipe (design.md §4).

    python -m lran_core.train --data DIR --model resnet18-lran --out DIR [options]

Defaults: 50 epochs, batch 24, 256 x 256 inputs, cross-entropy, Adam at 1e-4, then 1e-5 after
epoch 10 and 5e-6 after epoch 20, class-balanced batches, flips / 90-degree rotations / colour
jitter. Splits by patient (IDC layout) or by image (class folders). Writes per epoch a JSON line
to ``metrics.jsonl``, ``last.safetensors`` plus ``state.safetensors`` (for ``--resume``) and,
when validation improves, ``best.safetensors``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file
from torch.utils.data import DataLoader
from tqdm import tqdm

from . import build_model, list_models, save_checkpoint
from .data import (
    BalancedBatchSampler,
    PatchDataset,
    augment,
    kfold_by_group,
    normalise_batch,
    read_dataset,
    split_by_group,
)
from .metrics import compute_metrics
from .models import LRANClassifier

IDC_NATIVE = 50
IDC_MPP = 4.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; defaults are the paper's recipe."""
    p = argparse.ArgumentParser(
        prog="python -m lran_core.train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", required=True, type=Path, help="IDC layout or class folders")
    p.add_argument("--model", default="resnet18-lran", choices=list_models())
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--input-size", type=int, default=256)
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--batch-size", type=int, default=24)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument(
        "--lr-steps",
        default="10:1e-5,20:5e-6",
        help="epoch:lr pairs; from that epoch (0-based) on the lr is lr",
    )
    p.add_argument(
        "--batches-per-epoch", type=int, default=0, help="0: as many as cover the training set once"
    )
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--folds", type=int, default=5, help="k for patient-level k folds")
    p.add_argument("--fold", type=int, default=0, help="which fold is validation")
    p.add_argument(
        "--max-groups",
        type=int,
        default=0,
        help="use only this many patients/images (smoke runs); 0 = all",
    )
    p.add_argument("--workers", type=int, default=0)
    p.add_argument(
        "--mpp",
        type=float,
        default=None,
        help="microns per pixel of the data (IDC: 4.0, the default for that layout)",
    )
    p.add_argument("--cut", default=None, help="where the base network is cut")
    p.add_argument("--resume", action="store_true", help="continue from OUT/state.safetensors")
    p.add_argument(
        "--max-minutes",
        type=float,
        default=0,
        help="stop after the first epoch that ends past this many minutes; 0 = none",
    )
    p.add_argument("--no-progress", action="store_true")
    p.add_argument(
        "--nondeterministic",
        action="store_true",
        help="allow cuDNN's fastest (non-deterministic) kernels on a GPU",
    )
    return p.parse_args(argv)


def lr_at(epoch: int, base: float, steps: str) -> float:
    """The learning rate for a 0-based epoch from ``"10:1e-5,20:5e-6"``-style steps."""
    lr = base
    for item in filter(None, steps.split(",")):
        start, value = item.split(":")
        if epoch >= int(start):
            lr = float(value)
    return lr


@torch.no_grad()
def predict(
    model: LRANClassifier, images: torch.Tensor, mean: Any, std: Any, device: str, batch: int = 128
) -> np.ndarray:
    """Takes uint8 images (N, 3, S, S); gives class probabilities (N, K) as numpy."""
    model.eval()
    out = []
    for i in range(0, len(images), batch):
        x = normalise_batch(images[i : i + batch].to(device), mean, std)
        out.append(model(x).softmax(-1).float().cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, model.fc.out_features))


def channel_stats(images: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 images (N, 3, H, W) in [0, 1] units."""
    total = torch.zeros(3, dtype=torch.float64)
    squares = torch.zeros(3, dtype=torch.float64)
    for i in range(0, len(images), 512):  # chunks: a float copy of everything would not fit
        x = images[i : i + 512].double() / 255.0
        total += x.sum((0, 2, 3))
        squares += (x * x).sum((0, 2, 3))
    count = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / count
    std = (squares / count - mean**2).clamp_min(1e-12).sqrt()
    return mean.tolist(), std.tolist()


def _save_state(
    path: Path,
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    gen: torch.Generator,
    info: dict[str, Any],
) -> None:
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    for i, state in opt.state_dict()["state"].items():
        for key, value in state.items():
            t = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"opt.{i}.{key}"] = t.detach().cpu().contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    tensors["rng.augment"] = gen.get_state()
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata={"info": json.dumps(info)})
    tmp.replace(path)  # a stop mid-write must not destroy the previous state


def _load_state(
    path: Path, model: torch.nn.Module, opt: torch.optim.Optimizer, gen: torch.Generator
) -> dict[str, Any]:
    with safe_open(str(path), framework="pt") as f:
        info = json.loads(f.metadata()["info"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    opt_state = opt.state_dict()
    for k, v in tensors.items():
        if k.startswith("opt."):
            _, i, key = k.split(".", 2)
            opt_state["state"].setdefault(int(i), {})[key] = v
    opt.load_state_dict(opt_state)
    torch.set_rng_state(tensors["rng.torch"])
    gen.set_state(tensors["rng.augment"])
    return info


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Runs training; gives the best validation metrics."""
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(not args.nondeterministic, warn_only=True)
    torch.backends.cudnn.benchmark = args.nondeterministic
    samples, class_names, layout = read_dataset(args.data)
    if args.max_groups:
        keep = sorted({s.group for s in samples})[: args.max_groups]
        samples = [s for s in samples if s.group in set(keep)]
    train_s, val_s = (
        kfold_by_group(samples, args.folds, args.seed)[args.fold]
        if args.folds >= 2
        else split_by_group(samples, 0.2, args.seed)
    )
    native = IDC_NATIVE if layout == "idc" else None
    mpp = args.mpp if args.mpp is not None else (IDC_MPP if layout == "idc" else None)
    train_ds = PatchDataset(train_s, args.input_size, native)
    val_ds = PatchDataset(val_s, args.input_size, native)
    mean, std = channel_stats(train_ds.images)
    print(
        f"{layout} data: {len(train_ds)} train / {len(val_ds)} val images, "
        f"{len({s.group for s in train_ds.samples})} / {len({s.group for s in val_ds.samples})} "
        f"groups, classes {class_names}, train counts {dict(train_ds.class_counts())}",
        flush=True,
    )

    options = {"cut": args.cut} if args.cut else {}
    model = build_model(args.model, num_classes=len(class_names), **options).to(args.device)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    gen = torch.Generator().manual_seed(args.seed)
    per_epoch = args.batches_per_epoch or math.ceil(len(train_ds) / args.batch_size)
    sampler = BalancedBatchSampler(train_ds.labels, args.batch_size, per_epoch, args.seed)
    loader = DataLoader(train_ds, batch_sampler=sampler, num_workers=args.workers)
    args.out.mkdir(parents=True, exist_ok=True)
    state_path, log_path = args.out / "state.safetensors", args.out / "metrics.jsonl"
    start, best = 0, {"score": -1.0}
    if args.resume and state_path.exists():
        info = _load_state(state_path, model, opt, gen)
        start, best = info["epoch"] + 1, info["best"]
        print(f"resumed after epoch {info['epoch']}", flush=True)
    description = (
        f"{args.data.name}: {len(train_ds)} train images ({layout}, split by "
        f"{'patient' if layout == 'idc' else 'image'}, fold {args.fold} of {args.folds})"
    )
    meta = {
        "class_names": class_names,
        "input_size": args.input_size,
        "mean": tuple(mean),
        "std": tuple(std),
        "mpp": mpp,
        "native_size": native,
        "data_description": description,
    }

    started = time.time()
    for epoch in range(start, args.epochs):
        lr = lr_at(epoch, args.lr, args.lr_steps)
        for group in opt.param_groups:
            group["lr"] = lr
        sampler.set_epoch(epoch)
        model.train()
        t0, losses, correct, seen = time.time(), [], 0, 0
        bar = tqdm(
            loader,
            desc=f"epoch {epoch + 1}/{args.epochs}",
            disable=args.no_progress,
            file=sys.stdout,
        )
        for images, labels in bar:
            images, labels = images.to(args.device), labels.to(args.device)
            x = augment(images.float() / 255.0, gen)
            x = (x - torch.tensor(mean, device=x.device).view(1, 3, 1, 1)) / torch.tensor(
                std, device=x.device
            ).view(1, 3, 1, 1)
            logits = model(x)
            loss = F.cross_entropy(logits, labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            correct += (logits.argmax(1) == labels).sum().item()
            seen += len(labels)
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
        probs = predict(model, val_ds.images, mean, std, args.device)
        val = compute_metrics(val_ds.labels, probs, class_names)
        val_loss = float(
            F.nll_loss(
                torch.log(torch.from_numpy(probs).clamp_min(1e-8)), torch.tensor(val_ds.labels)
            ).item()
        )
        record = {
            "epoch": epoch + 1,
            "lr": lr,
            "train_loss": float(np.mean(losses)),
            "train_accuracy": correct / max(seen, 1),
            "val_loss": val_loss,
            "val_accuracy": val["accuracy"],
            "val_balanced_accuracy": val["balanced_accuracy"],
            "val_auc": val["auc"],
            "val_ece": val["ece"],
            "seconds": round(time.time() - t0, 1),
        }
        with log_path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        print(json.dumps(record), flush=True)
        score = (
            val["balanced_accuracy"] if val["balanced_accuracy"] is not None else val["accuracy"]
        )
        save_checkpoint(
            model, args.out / "last.safetensors", metrics={"validation": record}, **meta
        )
        if score > best["score"]:
            best = {"score": score, "epoch": epoch + 1, **record}
            save_checkpoint(
                model,
                args.out / "best.safetensors",
                metrics={"validation": val | {"epoch": epoch + 1}},
                **meta,
            )
        _save_state(
            state_path,
            model,
            opt,
            gen,
            {"epoch": epoch, "best": best, "args": {k: str(v) for k, v in vars(args).items()}},
        )
        if args.max_minutes and time.time() - started > args.max_minutes * 60:
            print(
                f"stopping after epoch {epoch + 1}: past --max-minutes {args.max_minutes}",
                flush=True,
            )
            break
    print(
        f"best validation balanced accuracy {best['score']:.4f} at epoch {best.get('epoch')}",
        flush=True,
    )
    return best


if __name__ == "__main__":
    main()
