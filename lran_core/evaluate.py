"""Evaluation of a trained model on a labelled folder.

    python -m lran_core.evaluate --model PATH_OR_NAME --data DIR --json OUT [--report OUT.html]

Gives accuracy, balanced accuracy, per-class precision/recall/F1, the confusion matrix,
one-vs-rest ROC curves and AUC, expected calibration error, and per-patient figures for the IDC
layout. ``--model`` is a checkpoint file or a shipped name such as ``idc/resnet18-lran``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from .checkpoint import load_model
from .cliargs import device as device_arg
from .cliargs import fraction, positive_int
from .data import IDC_NATIVE, PatchDataset, kfold_by_group, read_dataset
from .mapquality import (
    border_bias,
    cam_grid,
    centre_ratio,
    chance_border_bias,
    localisation,
    patch_maps,
    randomisation_check,
)
from .maps import resize_map
from .metrics import compute_metrics
from .models import LRANClassifier
from .predict import predict
from .region import map_region

# BACH mask values: 0 unannotated, 1 benign, 2 in situ and 3 invasive carcinoma.
BACH_LABELS = (0, 1, 2, 3)
TUMOUR_LABELS = (2, 3)


def evaluate(
    model: LRANClassifier,
    data: str | Path,
    batch_size: int = 128,
    device: str = "cpu",
    fold: tuple[int, int, int] | None = None,
    maps: bool = False,
    centre: float | None = None,
    max_maps: int = 512,
) -> dict[str, Any]:
    """Predicts every readable image under ``data``; gives :func:`compute_metrics` output plus
    ``model``, ``data``, ``skipped`` (unreadable files, by name) and ``seconds``.

    ``fold`` = (k, i, seed) keeps only the validation part of fold i of the patient-level k
    folds that training made with that seed (see :func:`lran_core.data.kfold_by_group`).
    With ``maps``, adds ``maps`` (:func:`map_quality`) over at most ``max_maps`` images per class.
    """
    t0 = time.time()
    samples, folder_names, layout = read_dataset(data)
    if fold is not None:
        k, i, seed = fold
        samples = kfold_by_group(samples, k, seed)[i][1]
    meta = model.meta
    if folder_names not in (meta.class_names, meta.class_folders):
        raise ValueError(
            f"{data}: classes {folder_names} differ from the model's {meta.class_names}"
            + (f" (folders {meta.class_folders})" if meta.class_folders else "")
        )
    class_names = meta.class_names
    native = meta.native_size or (IDC_NATIVE if layout == "idc" else None)
    ds = PatchDataset(samples, native or meta.input_size, native)
    probs = predict(model.to(device), ds.images, batch_size)
    groups = [s.group for s in ds.samples] if layout == "idc" else None
    out = compute_metrics(ds.labels, probs, class_names, groups)
    if maps:
        out["maps"] = map_quality(model, ds.images, ds.labels, centre, max_maps)
    out.update(
        model=model.variant,
        data=str(data),
        fold=fold,
        skipped=ds.skipped,
        seconds=round(time.time() - t0, 2),
    )
    return out


def map_quality(
    model: LRANClassifier,
    images: torch.Tensor,
    labels: list[int],
    centre: float | None = None,
    max_maps: int = 512,
) -> dict[str, Any]:
    """Map-quality figures (design.md §3b) of a model on uint8 images (N, 3, h, h) with labels.

    Per class (by true label, at most ``max_maps`` images each, evenly spaced): ``border_bias``
    of the predicted class's CAM and of the attention map (:func:`border_bias`), the level a
    map blind to position reaches on the same grid (:func:`chance_border_bias`), and with
    ``centre`` (PCam: 1/3) ``centre_ratio`` of the true class's CAM. Over up to ``max_maps``
    images of all classes: ``randomisation`` (:func:`randomisation_check`).
    """
    y = np.asarray(labels)
    out: dict[str, Any] = {"per_class": {}}
    # The same for every class: it depends on the model's grid and the images' size only.
    side = images.shape[-1]
    chance = chance_border_bias(cam_grid(model), (side, side))
    picked_all = []
    for c, name in enumerate(model.meta.class_names):
        idx = np.flatnonzero(y == c)
        if len(idx) == 0:
            continue
        idx = idx[np.linspace(0, len(idx) - 1, min(max_maps, len(idx))).round().astype(int)]
        picked_all.append(idx)
        m = patch_maps(model, images[torch.from_numpy(idx)])
        entry: dict[str, Any] = {
            "cam_border_bias": border_bias(m["cam"]),
            "cam_border_chance": chance,
        }
        if m["attention"] is not None:
            entry["attention_border_bias"] = border_bias(m["attention"])
        if centre is not None:
            # The CAM of the class the centre holds (PCam positives: tumour), not of the
            # prediction: a missed positive's own-class CAM says nothing of the tumour.
            truth = torch.full((len(idx),), c, dtype=torch.long)
            cams = patch_maps(model, images[torch.from_numpy(idx)], truth)["cam"]
            entry["cam_centre"] = centre_ratio(cams, centre)
        out["per_class"][name] = entry
    sample = np.sort(np.concatenate(picked_all))
    sample = sample[np.linspace(0, len(sample) - 1, min(max_maps, len(sample))).round().astype(int)]
    out["randomisation"] = randomisation_check(model, images[torch.from_numpy(sample)])
    return out


def held_out_fold(model: LRANClassifier) -> tuple[int, int] | None:
    """(k, i): the patient-level fold i of k that training held out, as its checkpoint's
    ``data`` says (:func:`lran_core.train.train` writes it); None when it does not say."""
    found = re.search(r"patient-level fold (\d+) of (\d+) held out", model.meta.data)
    return None if found is None else (int(found[2]), int(found[1]))


def labelled_images(folder: str | Path) -> list[tuple[Path, Path]]:
    """The (image, mask) pairs of a folder of ``<name>.png`` images with ``<name>_mask.png``
    label masks, by name. Raises FileNotFoundError for a folder with no pairs, ValueError for
    a mask of another size than its image or with values that are not BACH labels (a map
    stretched onto the wrong mask scores without a word)."""
    folder = Path(folder)
    pairs = [
        (p, p.with_name(f"{p.stem}_mask.png"))
        for p in sorted(folder.glob("*.png"))
        if not p.stem.endswith("_mask") and p.with_name(f"{p.stem}_mask.png").is_file()
    ]
    if not pairs:
        raise FileNotFoundError(f"{folder}: no <name>.png with a <name>_mask.png")
    for image_path, mask_path in pairs:
        with Image.open(image_path) as image:
            width, height = image.size
        mask = _labels(mask_path)
        if mask.shape != (height, width):
            raise ValueError(
                f"{mask_path}: {mask.shape[1]} x {mask.shape[0]} px, but its image "
                f"{image_path.name} is {width} x {height} px"
            )
    return pairs


def _labels(mask_path: str | Path) -> np.ndarray:
    """(H, W) label values of a mask (an RGB mask's first channel); ValueError for values that
    are not BACH labels."""
    labels = np.asarray(Image.open(mask_path))
    labels = labels[..., 0] if labels.ndim == 3 else labels
    odd = np.setdiff1d(np.unique(labels), BACH_LABELS)
    if odd.size:
        raise ValueError(
            f"{mask_path}: values {', '.join(str(v) for v in odd[:5].tolist())} are not BACH "
            "labels (0 unannotated, 1 benign, 2 in situ, 3 invasive)"
        )
    return labels


def read_tumour(
    mask_path: str | Path, tumour_labels: tuple[int, ...] = TUMOUR_LABELS
) -> np.ndarray:
    """(H, W) bool: the pixels of a label mask (BACH values; an RGB mask's first channel) whose
    label is one of ``tumour_labels``. ValueError for values that are not BACH labels."""
    return np.isin(_labels(mask_path), tumour_labels)


def region_localisation(
    model: LRANClassifier,
    folder: str | Path,
    mpp: float,
    tumour_labels: tuple[int, ...] = TUMOUR_LABELS,
) -> dict[str, Any]:
    """Where a model's maps point on labelled regions (design.md §3b, localisation).

    Takes a folder of ``<name>.png`` RGB images, each with a ``<name>_mask.png`` of labels (BACH
    values), all at ``mpp`` microns per pixel. Maps every image with :func:`map_region` (the
    CAM of the last class, the tumour class of the shipped sets) and scores, against the mask's
    ``tumour_labels`` pixels, the tumour probability map (AUROC), the CAM and the attention map
    (energy pointing game and AUROC, :func:`localisation`). Gives ``per_image`` (name -> map ->
    scores, with ``mask_share``) and ``mean`` (map -> score -> mean over images where defined,
    None where none is), ``n`` and ``mpp``. Raises FileNotFoundError for a folder with no pairs.
    """
    per_image: dict[str, dict[str, Any]] = {}
    for image_path, mask_path in labelled_images(folder):
        rgb = np.asarray(Image.open(image_path).convert("RGB"))
        tumour = read_tumour(mask_path, tumour_labels)
        maps = map_region({"model": model}, rgb, mpp)["model"]
        shape = tumour.shape
        probability = localisation(resize_map(maps.probs[maps.cam_class], shape), tumour)
        entry: dict[str, Any] = {
            "mask_share": probability["mask_share"],
            "probability": {"auroc": probability["auroc"]},
            "cam": _scores(localisation(resize_map(maps.cam, shape), tumour)),
        }
        if maps.attention is not None:
            entry["attention"] = _scores(localisation(resize_map(maps.attention, shape), tumour))
        per_image[image_path.stem] = entry
    mean: dict[str, dict[str, float | None]] = {}
    for key in ("probability", "cam", "attention"):
        rows = [e[key] for e in per_image.values() if key in e]
        if not rows:
            continue
        mean[key] = {}
        for score in rows[0]:
            values = [r[score] for r in rows if r[score] is not None]
            mean[key][score] = float(np.mean(values)) if values else None
    return {"n": len(per_image), "mpp": mpp, "mean": mean, "per_image": per_image}


def _scores(result: dict[str, float | None]) -> dict[str, float | None]:
    return {"energy": result["energy"], "auroc": result["auroc"]}


def _figure(value: float | None) -> str:
    """A figure to four places; 'n/a' where the set has one class only (no AUC, no balance)."""
    return "n/a" if value is None else f"{value:.4f}"


def write_report(results: dict[str, Any], path: str | Path) -> Path:
    """Writes a self-contained plotly HTML report: ROC, confusion matrix, reliability bars and
    per-patient accuracy (when present)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    names = results["class_names"]
    fig = make_subplots(
        rows=1,
        cols=3,
        subplot_titles=("ROC (one vs rest)", "Confusion matrix", "Per patient accuracy"),
    )
    for name, curve in results["roc"].items():
        auc = _figure(results["per_class"][name]["auc"])
        fig.add_trace(
            go.Scatter(x=curve["fpr"], y=curve["tpr"], mode="lines", name=f"{name} (AUC {auc})"),
            row=1,
            col=1,
        )
    fig.add_trace(
        go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot"}, showlegend=False),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Heatmap(
            z=results["confusion"],
            x=names,
            y=names,
            colorscale="Blues",
            text=results["confusion"],
            texttemplate="%{text}",
            showscale=False,
        ),
        row=1,
        col=2,
    )
    groups = results.get("per_group") or {}
    if groups:
        fig.add_trace(
            go.Bar(x=list(groups), y=[g["accuracy"] for g in groups.values()], name="accuracy"),
            row=1,
            col=3,
        )
    fig.update_xaxes(title_text="false positive rate", row=1, col=1)
    fig.update_yaxes(title_text="true positive rate", row=1, col=1)
    fig.update_xaxes(title_text="predicted", row=1, col=2)
    fig.update_yaxes(title_text="true", autorange="reversed", row=1, col=2)
    fig.update_layout(
        title=(
            f"{results['model']} on {results['data']}: n={results['n']}, accuracy "
            f"{results['accuracy']:.4f}, balanced {_figure(results['balanced_accuracy'])}, AUC "
            f"{_figure(results['auc'])}, ECE {results['ece']:.4f}"
        ),
        height=480,
        width=1500,
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.write_html(str(path), include_plotlyjs=True)
    return path


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Command line: evaluates, prints the headline figures, writes JSON (and HTML); gives the
    results. Refused input ends with ``error: <reason>`` on stderr and exit status 2."""
    p = argparse.ArgumentParser(
        prog="python -m lran_core.evaluate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", required=True, help="checkpoint file or name like idc/resnet18-lran")
    p.add_argument("--data", required=True, type=Path)
    p.add_argument("--json", required=True, type=Path)
    p.add_argument("--report", type=Path, default=None, help="plotly HTML report")
    p.add_argument("--batch-size", type=positive_int, default=128)
    p.add_argument(
        "--folds",
        type=int,
        default=0,
        help="with --fold: evaluate only that validation fold of k patient folds",
    )
    p.add_argument("--fold", type=int, default=None, help="with --folds: which (default 0)")
    p.add_argument(
        "--seed", type=int, default=None, help="with --folds: the seed they were made with (0)"
    )
    p.add_argument(
        "--device", type=device_arg, default="cuda" if torch.cuda.is_available() else "cpu"
    )
    p.add_argument(
        "--maps",
        action="store_true",
        help="add map-quality figures: border bias, randomisation check",
    )
    p.add_argument(
        "--centre",
        type=fraction,
        default=None,
        help="with --maps: side of the labelled centre, a fraction (PCam: 0.3333)",
    )
    p.add_argument(
        "--max-maps", type=positive_int, default=512, help="with --maps: images per class"
    )
    p.add_argument(
        "--regions",
        nargs=2,
        action="append",
        default=[],
        metavar=("DIR", "MPP"),
        help="with --maps: a folder of <name>.png + <name>_mask.png (BACH labels) at MPP µm/px; "
        "adds where the maps point on its tumour (labels 2 and 3); may be repeated",
    )
    args = p.parse_args(argv)
    for target in (args.json, args.report):
        # Found now, not after an evaluation of minutes.
        if target is not None and target.is_dir():
            p.error(f"{target} is a folder: give a file name")
    try:
        regions = [(Path(folder), _positive(mpp, "--regions MPP")) for folder, mpp in args.regions]
        if regions and not args.maps:
            raise ValueError("--regions needs --maps")
        if args.folds < 2 and (args.fold is not None or args.seed is not None):
            # Without folds the whole set is evaluated, its training patients included.
            raise ValueError("--fold and --seed need --folds 2 or more")
        index, seed = args.fold or 0, args.seed or 0
        if args.folds >= 2 and not 0 <= index < args.folds:
            # Checked here: evaluate() would index the folds with it, and -1 would pass silently.
            raise ValueError(
                f"--fold {index} is not one of the {args.folds} folds (0 to {args.folds - 1})"
            )
        for folder, _ in regions:
            labelled_images(folder)  # refused before the evaluation, not after it
        model = load_model(args.model, args.device)
        fold = (args.folds, index, seed) if args.folds >= 2 else None
        if fold is not None and (held := held_out_fold(model)) not in (None, fold[:2]):
            print(
                f"warning: {args.model} was trained with fold {held[1]} of {held[0]} held out: "
                f"fold {index} of {args.folds} holds patients it was trained on",
                file=sys.stderr,
            )
        results = evaluate(
            model,
            args.data,
            args.batch_size,
            args.device,
            fold,
            args.maps,
            args.centre,
            args.max_maps,
        )
        if regions:
            results["maps"]["localisation"] = {
                str(folder): region_localisation(model, folder, mpp) for folder, mpp in regions
            }
    except (FileNotFoundError, PermissionError, ValueError) as err:
        # Refused input: an unreadable checkpoint (CheckpointError is a ValueError,
        # NoWeightsError a FileNotFoundError), a missing or malformed data folder, classes that
        # differ. One line and status 2, not a traceback.
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        raise SystemExit(2) from err
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1, default=_jsonable))
    if args.report:
        write_report(results, args.report)
    print(
        json.dumps(
            {k: results[k] for k in ("model", "n", "accuracy", "balanced_accuracy", "auc", "ece")}
        )
    )
    return results


def _positive(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{what} must be a positive number, got {text!r}")
    return value


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value)}")


def cli() -> None:
    """The ``lran-evaluate`` console script: :func:`main` without its return value (which a
    console script would print and take for a failure)."""
    main()


if __name__ == "__main__":
    cli()
