"""The training runs behind the shipped model sets and the model cards, resumable.

    python scripts/experiments.py GROUP [--data-root ../shared/data] [--runs runs] [--device cuda]
        [--precision bf16] [--only fold3,fold4/resnet18]
    python scripts/experiments.py ship [--runs runs]

Groups: ``shipped`` (the six shipped models: ``cv`` fold 0 and ``pcam``; the one command to run
where a GPU is lent), ``ablation`` (IDC fold 0: padding, augmentation, input size), ``cv`` (IDC
patient-level 5-fold cross-validation of the three variants with the chosen recipe; fold 0's
models, selected on its validation patients, are the shipped ``idc`` set), ``pcam`` (the three
PCam models, trained on pcam/train, selected on pcam/valid: the shipped ``pcam`` set).
Every run writes ``runs/GROUP/NAME/`` (training log, checkpoints) and ``eval.json`` (validation
metrics with map-quality figures). A finished run is skipped; an interrupted one resumes from
its last epoch, so the whole group can be restarted at any time. ``ship`` copies the shipped runs'
best checkpoints (fp16), training logs and configurations into ``lran_core/weights/``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from lran_core.checkpoint import load_model
from lran_core.evaluate import evaluate
from lran_core.predict import PRECISIONS
from lran_core.train import TrainConfig, train

VARIANTS = ("resnet18", "resnet18-ran", "resnet18-lran")


def idc_recipe(data: Path, out: Path, **changes: Any) -> TrainConfig:
    """The recipe chosen by the ablation (see the model card)."""
    base = TrainConfig(
        data=data,
        out=out,
        input_size=128,
        epochs=12,
        lr_steps="6:1e-5,9:5e-6",
        options={"padding_mode": "reflect"},
        shift=0.125,
        hed=0.05,
        colour=0.3,
        precision="auto",
        progress=False,
    )
    return replace(base, **changes)


def groups(root: Path, runs: Path) -> dict[str, list[tuple[str, TrainConfig, dict[str, Any]]]]:
    idc, pcam = root / "idc", root / "pcam"
    short = {"epochs": 6, "lr_steps": "4:1e-5"}
    ablation = {
        "zeros-noshift-128": {"options": {"padding_mode": "zeros"}, "shift": 0.0, "hed": 0.0},
        "reflect-noshift-128": {"shift": 0.0, "hed": 0.0},
        "zeros-shift-hed-128": {"options": {"padding_mode": "zeros"}},
        "reflect-shift-hed-128": {},
        "reflect-shift-hed-96": {"input_size": 96},
    }
    out: dict[str, list[tuple[str, TrainConfig, dict[str, Any]]]] = {
        "ablation": [],
        "cv": [],
        "pcam": [],
    }
    for name, changes in ablation.items():
        # The border bias is in every variant; the base network is three times cheaper to train,
        # so the ablation runs on it, and R-LRAN runs at both ends (here: the first release's
        # recipe; the chosen recipe is the cross-validation's fold 0).
        variants = ("resnet18", "resnet18-lran") if name == "zeros-noshift-128" else ("resnet18",)
        for variant in variants:
            run = f"{name}/{variant}"
            cfg = idc_recipe(idc, runs / "ablation" / run, model=variant, **short, **changes)
            out["ablation"].append((run, cfg, {"fold": (5, 0, 0), "data": idc}))
    for fold in range(5):
        for variant in VARIANTS:
            run = f"fold{fold}/{variant}"
            cfg = idc_recipe(idc, runs / "cv" / run, model=variant, fold=fold)
            out["cv"].append((run, cfg, {"fold": (5, fold, 0), "data": idc}))
    for variant in VARIANTS:
        cfg = TrainConfig(
            data=pcam / "train",
            out=runs / "pcam" / variant,
            model=variant,
            input_size=96,
            val_data=pcam / "valid",
            epochs=10,
            lr_steps="6:1e-5,9:5e-6",
            folds=1,
            mpp=0.97,
            native_size=96,
            class_names=["no tumour", "metastasis"],
            options={"padding_mode": "reflect"},
            # The label is about the central 32 px: shifts stay well inside it.
            shift=0.0625,
            hed=0.05,
            colour=0.3,
            precision="auto",
            progress=False,
        )
        out["pcam"].append((variant, cfg, {"data": pcam / "valid", "centre": 1 / 3}))
    out["shipped"] = [
        (f"{name}", cfg, ev) for name, cfg, ev in out["cv"] if name.startswith("fold0/")
    ] + out["pcam"]
    return out


# Shipped set -> the run folder of each variant.
SHIPPED = {"idc": Path("cv/fold0"), "pcam": Path("pcam")}


def ship(runs: Path, weights: Path) -> None:
    """Copies each shipped run's best checkpoint (already fp16), its training log and its
    configuration into ``weights/<set>/``."""
    for name, folder in SHIPPED.items():
        missing = [v for v in VARIANTS if not (runs / folder / v / "best.safetensors").is_file()]
        if missing:
            # A set ships whole or not at all: its models are compared with one another.
            print(f"{name}: not shipped, no best.safetensors for {', '.join(missing)}")
            continue
        target = weights / name
        (target / "training-logs").mkdir(parents=True, exist_ok=True)
        for variant in VARIANTS:
            run = runs / folder / variant
            shutil.copyfile(run / "best.safetensors", target / f"{variant}.safetensors")
            shutil.copyfile(run / "metrics.jsonl", target / "training-logs" / f"{variant}.jsonl")
            shutil.copyfile(
                run / "config.json", target / "training-logs" / f"{variant}-config.json"
            )
            print(f"{run} -> {target / variant}.safetensors")


def selected(name: str, only: str | None) -> bool:
    """Whether ``--only`` (comma-separated run names or folders) takes the run ``name``: fold3
    takes fold3/*, fold3/resnet18 that run alone (not fold3/resnet18-ran)."""
    if not only:
        return True
    return any(_takes(o, name) for o in _entries(only))


def _entries(only: str) -> list[str]:
    return [o.strip().rstrip("/") for o in only.split(",") if o.strip()]


def _takes(entry: str, name: str) -> bool:
    return name == entry or name.startswith(entry + "/")


def finished(cfg: TrainConfig) -> bool:
    log = cfg.out / "metrics.jsonl"
    return log.is_file() and len(log.read_text().splitlines()) >= cfg.epochs


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("group", choices=("shipped", "ablation", "cv", "pcam", "ship"))
    p.add_argument("--data-root", type=Path, default=Path("../shared/data"))
    p.add_argument("--runs", type=Path, default=Path("runs"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--only",
        default=None,
        help="comma-separated run names or folders: fold3 runs fold3/*, fold3/resnet18 that run",
    )
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=None,
        help="instead of the recipe's auto (bf16 on CPUs with bf16 instructions, fp32 on GPUs): "
        "bf16 on a GPU trains as this project's CPU did",
    )
    p.add_argument("--weights", type=Path, default=Path("lran_core/weights"), help="for ship")
    args = p.parse_args()
    if args.group == "ship":
        ship(args.runs, args.weights)
        return
    torch.set_num_threads(args.threads)
    group = groups(args.data_root, args.runs)[args.group]
    names = [name for name, _, _ in group]
    # Each entry must take a run: a typo would otherwise drop its runs without a word.
    for entry in _entries(args.only or ""):
        if not any(_takes(entry, name) for name in names):
            p.error(f"--only {entry} takes no run of {args.group}: {', '.join(names)}")
    runs = [run for run in group if selected(run[0], args.only)]
    for name, cfg, ev in runs:
        if not finished(cfg):
            print(f"== train {args.group}/{name}", flush=True)
            precision = args.precision or cfg.precision
            train(replace(cfg, resume=True, device=args.device, precision=precision))
        target = cfg.out / "eval.json"
        if target.is_file():
            continue
        print(f"== evaluate {args.group}/{name}", flush=True)
        t0 = time.time()
        model = load_model(cfg.out / "best.safetensors", args.device)
        result = evaluate(
            model,
            ev["data"],
            device=args.device,
            fold=ev.get("fold"),
            maps=True,
            centre=ev.get("centre"),
            max_maps=256,
        )
        result.pop("roc", None)
        target.write_text(json.dumps(result, indent=1))
        print(
            json.dumps({k: result[k] for k in ("n", "accuracy", "balanced_accuracy", "auc")}),
            f"{time.time() - t0:.0f} s",
            flush=True,
        )


if __name__ == "__main__":
    main()
