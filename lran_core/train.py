"""Training with the paper's recipe (design.md §4).

    python -m lran_core.train --data DIR --model resnet18-lran --out DIR [options]

Defaults: 50 epochs, batch 24, 256 x 256 inputs, cross-entropy, Adam at 1e-4, then 1e-5 after
epoch 10 and 5e-6 after epoch 20, class-balanced batches, flips / 90-degree rotations / colour
jitter (translation with reflected context and HED stain jitter on request). Splits by patient
(IDC layout) or by image (class folders). Images are decoded once into a cached uint8 array at
their native size and made into the network's input per batch. Writes per epoch a JSON line to
``metrics.jsonl``, ``last.safetensors`` plus ``state.safetensors`` (for ``--resume``) and, when
validation improves, ``best.safetensors``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm import tqdm

from .checkpoint import parse_meta, save_checkpoint
from .cliargs import device as device_arg
from .cliargs import positive_int
from .data import (
    IDC_MPP,
    IDC_NATIVE,
    BalancedBatchSampler,
    PatchDataset,
    kfold_by_group,
    read_dataset,
)
from .metrics import compute_metrics
from .models import MODELS, build_model
from .models.lran import PADDING_MODES
from .predict import PRECISIONS, autocast, predict
from .region import unmappable
from .transforms import augment, to_input


@dataclass
class TrainConfig:
    """One training run. Defaults are the paper's recipe (design.md §4).

    ``folds`` >= 2 holds out patient-level fold ``fold`` for validation; ``folds`` = 1 trains on
    everything, validated on ``val_data`` (a folder of the same layout, e.g. PCam's ``valid``)
    when given, else not at all (``best`` is then the last epoch). ``native_size`` is the side the
    images are stored at before resizing to ``input_size`` (IDC layout: 50; else the input
    size). ``shift``, ``hed`` and ``colour`` set the augmentation (:func:`augment`).
    ``precision`` ``auto`` trains under bf16 autocast on CPUs with bf16 instructions.
    ``out`` holding a run is refused unless ``resume`` (with the options it was trained with)
    or ``overwrite`` (start it again).
    """

    data: Path
    out: Path
    val_data: Path | None = None
    model: str = "resnet18-lran"
    input_size: int = 256
    epochs: int = 50
    batch_size: int = 24
    lr: float = 1e-4
    lr_steps: str = "10:1e-5,20:5e-6"
    batches_per_epoch: int = 0
    device: str = "cpu"
    seed: int = 0
    folds: int = 5
    fold: int = 0
    max_groups: int = 0
    mpp: float | None = None
    native_size: int | None = None
    class_names: list[str] | None = None
    options: dict[str, Any] = field(default_factory=dict)
    shift: float = 0.0
    hed: float = 0.0
    colour: float = 0.3
    precision: str = "fp32"
    threads: int = 0
    cache: bool = True
    resume: bool = False
    overwrite: bool = False
    max_minutes: float = 0.0
    progress: bool = True
    nondeterministic: bool = False


# What makes a run that run: resuming with another value would go on with another run.
# (Paths, epochs, the learning-rate steps, device, precision and threads may change.)
RUN_OPTIONS = (
    "model",
    "input_size",
    "batch_size",
    "lr",
    "batches_per_epoch",
    "seed",
    "folds",
    "fold",
    "max_groups",
    "mpp",
    "native_size",
    "class_names",
    "options",
    "shift",
    "hed",
    "colour",
)


# A run's files in its folder (config.json is written again by every start).
RUN_FILES = ("state.safetensors", "best.safetensors", "last.safetensors", "metrics.jsonl")


def _check_out(c: TrainConfig) -> None:
    """Refuses, before any data is read, an ``out`` that is a file, one that holds a run
    unless ``resume`` or ``overwrite``, resuming a run that left no state, and resuming with
    other :data:`RUN_OPTIONS`; with ``overwrite``, removes the run's :data:`RUN_FILES`."""
    if c.out.exists() and not c.out.is_dir():
        raise ValueError(f"--out {c.out} is a file, not a folder")
    state, config = c.out / "state.safetensors", c.out / "config.json"
    held = state.is_file() or (c.out / "best.safetensors").is_file()
    if held and not (c.resume or c.overwrite):
        raise ValueError(
            f"{c.out} holds a run already: --resume to go on with it, --overwrite to start it "
            "again, or another --out"
        )
    if c.overwrite:
        # Gone before the new run starts: a stopped restart must not leave the old run's state
        # for a --resume to pick up under the new run's options.
        for name in RUN_FILES:
            (c.out / name).unlink(missing_ok=True)
        return
    if not c.resume:
        return
    if not state.is_file():
        if held:
            raise ValueError(
                f"{c.out} holds a run without state.safetensors (finished, or copied without "
                "it): nothing to resume; --overwrite to start it again"
            )
        print(f"no run to resume in {c.out}: starting from the first epoch", flush=True)
        return
    if not config.is_file():
        return
    saved = json.loads(config.read_text())
    now = json.loads(json.dumps(asdict(c), default=str))
    # Options a run's config.json does not hold (an older release's) are not compared.
    changed = [
        f"{k} {saved[k]!r} -> {now[k]!r}" for k in RUN_OPTIONS if saved.get(k, now[k]) != now[k]
    ]
    if changed:
        raise ValueError(
            f"{c.out} was trained with other options ({'; '.join(changed)}): resume with its "
            "own, or --overwrite to start it again"
        )


def _lr_steps(text: str) -> str:
    """``--lr-steps`` checked before any data is read: ``epoch:lr`` pairs, comma-separated."""
    for item in filter(None, text.split(",")):
        start, _, value = item.partition(":")
        try:
            ok = int(start) >= 0 and 0 < float(value) < math.inf
        except ValueError:
            ok = False
        if not ok:
            raise argparse.ArgumentTypeError(
                f"{item!r} is not epoch:lr (e.g. 10:1e-5,20:5e-6), in {text!r}"
            )
    return text


def lr_at(epoch: int, base: float, steps: str) -> float:
    """The learning rate for a 0-based epoch from ``"10:1e-5,20:5e-6"``-style steps."""
    lr = base
    for item in filter(None, steps.split(",")):
        start, value = item.split(":")
        if epoch >= int(start):
            lr = float(value)
    return lr


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


def train(config: TrainConfig) -> dict[str, Any]:
    """Runs training (see module doc); gives the best epoch's validation record (or the last
    epoch's training record when there is no validation)."""
    c = config
    if c.threads:
        torch.set_num_threads(c.threads)
    torch.manual_seed(c.seed)
    torch.use_deterministic_algorithms(not c.nondeterministic, warn_only=True)
    torch.backends.cudnn.benchmark = c.nondeterministic
    device = torch.device(c.device)
    _check_out(c)
    samples, folder_names, layout = read_dataset(c.data)
    class_names = c.class_names or folder_names
    if len(class_names) != len(folder_names):
        raise ValueError(f"{len(class_names)} class names for {len(folder_names)} class folders")
    if c.max_groups:
        keep = set(sorted({s.group for s in samples})[: c.max_groups])
        samples = [s for s in samples if s.group in keep]
    if c.folds >= 2:
        if c.val_data is not None:
            raise ValueError("give either folds >= 2 or a validation folder, not both")
        train_s, val_s = kfold_by_group(samples, c.folds, c.seed)[c.fold]
    elif c.val_data is not None:
        train_s = list(samples)
        val_s, val_folders, _ = read_dataset(c.val_data)
        if val_folders != folder_names:
            raise ValueError(f"{c.val_data}: classes {val_folders} differ from {folder_names}")
    else:
        train_s, val_s = list(samples), []
    native = c.native_size or (IDC_NATIVE if layout == "idc" else None)
    mpp = c.mpp if c.mpp is not None else (IDC_MPP if layout == "idc" else None)
    side = native or c.input_size
    train_ds = PatchDataset(train_s, side, native, cache=c.cache)
    val_ds = PatchDataset(val_s, side, native, cache=c.cache) if val_s else None
    mean, std = channel_stats(train_ds.images)
    groups = len({s.group for s in train_ds.samples})
    print(
        f"{layout} data: {len(train_ds)} train images of {groups} groups, "
        f"{len(val_ds) if val_ds else 0} validation; classes {class_names}, "
        f"train counts {dict(train_ds.class_counts())}",
        flush=True,
    )

    model = build_model(c.model, num_classes=len(class_names), **c.options).to(device)
    model = model.to(memory_format=torch.channels_last)
    if c.folds >= 2:
        split = f"patient-level fold {c.fold} of {c.folds} held out"
    elif c.val_data is not None:
        split = f"selected on {c.val_data.name}"
    else:
        split = "no held-out validation"
    meta = model.meta
    meta.class_names = list(class_names)
    meta.class_folders = list(folder_names)
    meta.input_size = c.input_size
    meta.mean = (mean[0], mean[1], mean[2])
    meta.std = (std[0], std[1], std[2])
    meta.mpp = mpp
    meta.native_size = native
    if (why := unmappable(model)) is not None:
        # Patches are classified all the same; the maps of regions are not.
        print(f"warning: region maps will refuse this model: {why}", flush=True)
    meta.data = (
        f"{c.data.name}: {len(train_ds)} train images of {groups} "
        f"{'patients' if layout == 'idc' else 'images'} ({split})"
    )
    opt = torch.optim.Adam(model.parameters(), lr=c.lr)
    gen = torch.Generator().manual_seed(c.seed)
    per_epoch = c.batches_per_epoch or math.ceil(len(train_ds) / c.batch_size)
    sampler = BalancedBatchSampler(train_ds.labels, c.batch_size, per_epoch, c.seed)
    labels_all = torch.tensor(train_ds.labels)
    c.out.mkdir(parents=True, exist_ok=True)
    (c.out / "config.json").write_text(json.dumps(asdict(c), indent=1, default=str))
    state_path, log_path = c.out / "state.safetensors", c.out / "metrics.jsonl"
    start, best = 0, {"score": -1.0}
    if c.resume and state_path.exists():
        info = _load_state(state_path, model, opt, gen)
        start, best = info["epoch"] + 1, info["best"]
        print(f"resumed after epoch {info['epoch'] + 1}", flush=True)
    else:
        # A run from the start logs from the start: an earlier run's epochs in the same folder
        # would read as this run's (and experiments.finished counts the lines).
        log_path.write_text("")

    started = time.time()
    for epoch in range(start, c.epochs):
        lr = lr_at(epoch, c.lr, c.lr_steps)
        for group in opt.param_groups:
            group["lr"] = lr
        sampler.set_epoch(epoch)
        model.train()
        t0, losses, correct, seen = time.time(), [], 0, 0
        bar = tqdm(
            sampler, desc=f"epoch {epoch + 1}/{c.epochs}", disable=not c.progress, file=sys.stdout
        )
        for batch in bar:
            index = torch.tensor(batch)
            labels = labels_all[index].to(device)
            images = train_ds.images[index].to(device).float() / 255.0
            x = augment(images, gen, shift=c.shift, hed=c.hed, colour=c.colour)
            x = to_input(x, c.input_size, mean, std).contiguous(memory_format=torch.channels_last)
            with autocast(device, c.precision):
                logits = model(x)
            loss = F.cross_entropy(logits.float(), labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            losses.append(loss.item())
            correct += (logits.argmax(1) == labels).sum().item()
            seen += len(labels)
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
        train_seconds = time.time() - t0
        record: dict[str, Any] = {
            "epoch": epoch + 1,
            "lr": lr,
            "train_loss": float(np.mean(losses)),
            "train_accuracy": correct / max(seen, 1),
            "images_per_second": round(seen / max(train_seconds, 1e-9), 1),
        }
        val: dict[str, Any] | None = None
        if val_ds is not None:
            probs = predict(model, val_ds.images, precision=c.precision)
            val = compute_metrics(val_ds.labels, probs, class_names)
            record |= {
                "val_loss": float(
                    F.nll_loss(
                        torch.log(torch.from_numpy(probs).clamp_min(1e-8)),
                        torch.tensor(val_ds.labels),
                    )
                ),
                "val_accuracy": val["accuracy"],
                "val_balanced_accuracy": val["balanced_accuracy"],
                "val_auc": val["auc"],
                "val_ece": val["ece"],
            }
        record["seconds"] = round(time.time() - t0, 1)
        with log_path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        print(json.dumps(record), flush=True)
        if val is None:
            score = float(epoch)
        else:
            score = (
                val["balanced_accuracy"]
                if val["balanced_accuracy"] is not None
                else val["accuracy"]
            )
        save_checkpoint(model, c.out / "last.safetensors", metrics={"training": record})
        if score > best["score"]:
            best = {"score": score, **record}
            metrics = {"validation": val | {"epoch": epoch + 1}} if val else {"training": record}
            save_checkpoint(model, c.out / "best.safetensors", metrics=metrics)
        _save_state(
            state_path,
            model,
            opt,
            gen,
            {"epoch": epoch, "best": best, "config": {k: str(v) for k, v in asdict(c).items()}},
        )
        if c.max_minutes and time.time() - started > c.max_minutes * 60:
            print(
                f"stopping after epoch {epoch + 1}: past --max-minutes {c.max_minutes}", flush=True
            )
            break
    print(f"best epoch {best.get('epoch')} (score {best['score']:.4f})", flush=True)
    return best


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    """Command-line options into a :class:`TrainConfig`; defaults are the paper's recipe."""
    d = TrainConfig(data=Path(), out=Path())
    p = argparse.ArgumentParser(
        prog="lran-train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", required=True, type=Path, help="IDC layout or class folders")
    p.add_argument("--model", default=d.model, choices=MODELS)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--input-size", type=int, default=d.input_size)
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=positive_int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument(
        "--lr-steps",
        type=_lr_steps,
        default=d.lr_steps,
        help="epoch:lr pairs; from that epoch (0-based) on the lr is lr",
    )
    p.add_argument(
        "--batches-per-epoch", type=int, default=0, help="0: as many as cover the training set once"
    )
    p.add_argument(
        "--device", type=device_arg, default="cuda" if torch.cuda.is_available() else "cpu"
    )
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument(
        "--folds",
        type=int,
        default=d.folds,
        help="k for patient-level k folds; 1 = train on everything, no validation",
    )
    p.add_argument("--fold", type=int, default=d.fold, help="which fold is validation")
    p.add_argument(
        "--val-data",
        type=Path,
        default=None,
        help="with --folds 1: a validation folder of the same layout (e.g. PCam's valid)",
    )
    p.add_argument(
        "--max-groups",
        type=int,
        default=0,
        help="use only this many patients/images (smoke runs); 0 = all",
    )
    p.add_argument(
        "--mpp", type=float, default=None, help="microns per pixel of the data (IDC layout: 4.0)"
    )
    p.add_argument(
        "--native-size",
        type=int,
        default=None,
        help="side the images are stored at before resizing (IDC layout: 50)",
    )
    p.add_argument(
        "--class-names",
        default=None,
        help="comma-separated display names of the class folders, in folder order",
    )
    p.add_argument("--cut", default=None, help="where the base network is cut")
    p.add_argument(
        "--padding-mode",
        choices=PADDING_MODES,
        default="zeros",
        help="how convolutions pad their borders",
    )
    p.add_argument(
        "--shift",
        type=float,
        default=d.shift,
        help="random translation, a fraction of the side, with reflected context",
    )
    p.add_argument("--hed", type=float, default=d.hed, help="HED stain jitter strength")
    p.add_argument("--colour", type=float, default=d.colour, help="colour jitter strength")
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=d.precision,
        help="auto: bf16 autocast on CPUs with bf16 instructions",
    )
    p.add_argument("--threads", type=int, default=0, help="torch threads; 0 = torch's default")
    p.add_argument("--no-cache", action="store_true", help="decode the images every run")
    p.add_argument("--resume", action="store_true", help="continue from OUT/state.safetensors")
    p.add_argument(
        "--overwrite", action="store_true", help="start again in an OUT that holds a run"
    )
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
    a = p.parse_args(argv)
    options: dict[str, Any] = {"padding_mode": a.padding_mode}
    if a.cut:
        options["cut"] = a.cut
    return TrainConfig(
        data=a.data,
        out=a.out,
        val_data=a.val_data,
        model=a.model,
        input_size=a.input_size,
        epochs=a.epochs,
        batch_size=a.batch_size,
        lr=a.lr,
        lr_steps=a.lr_steps,
        batches_per_epoch=a.batches_per_epoch,
        device=a.device,
        seed=a.seed,
        folds=a.folds,
        fold=a.fold,
        max_groups=a.max_groups,
        mpp=a.mpp,
        native_size=a.native_size,
        class_names=a.class_names.split(",") if a.class_names else None,
        options=options,
        shift=a.shift,
        hed=a.hed,
        colour=a.colour,
        precision=a.precision,
        threads=a.threads,
        cache=not a.no_cache,
        resume=a.resume,
        overwrite=a.overwrite,
        max_minutes=a.max_minutes,
        progress=not a.no_progress,
        nondeterministic=a.nondeterministic,
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Command line: parses the options and runs :func:`train`; gives its record.

    Refused input (a missing or malformed data folder, classes that differ, a fold that does not
    exist, values a checkpoint may not hold) ends with one line ``error: <reason>`` on stderr
    and exit status 2 (SystemExit), not a traceback.
    """
    c = parse_args(argv)
    try:
        if c.folds >= 2 and not 0 <= c.fold < c.folds:
            # Checked here: train() would index the folds with it, and -1 would pass silently.
            raise ValueError(
                f"--fold {c.fold} is not one of the {c.folds} folds (0 to {c.folds - 1})"
            )
        # What the checkpoints will hold, checked by the loader's rules before any training, so
        # that a run never ends in files that cannot be loaded. Class names come from the data
        # folder when not given; the placeholders only stand in for the check.
        parse_meta(
            {
                "variant": c.model,
                "options": c.options,
                "class_names": c.class_names or ["class_0", "class_1"],
                "input_size": c.input_size,
                "mpp": c.mpp,
                "native_size": c.native_size,
            },
            "lran-train options",
        )
        return train(c)
    except (FileNotFoundError, PermissionError, ValueError) as err:
        # ValueError covers CheckpointError and ImageReadError; FileNotFoundError NoWeightsError.
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        raise SystemExit(2) from err


def cli() -> None:
    """The ``lran-train`` console script: :func:`main` without its return value (which a
    console script would print and take for a failure)."""
    main()


if __name__ == "__main__":
    cli()
