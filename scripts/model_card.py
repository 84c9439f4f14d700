"""Reproduces the figures of a shipped set's MODEL_CARD.md from its weights (and the runs).

    python scripts/model_card.py SET [--data ../shared/data] [--runs runs]

For ``idc``: the validation patients of fold 0 (5 patient folds, seed 0, as trained) and the
external IDC patients; for ``pcam``: pcam/valid. On each: accuracy, balanced accuracy, AUC, F1,
calibration, and the map-quality figures (border bias, PCam centre check, randomisation check).
Then where the maps point on the BACH regions (4.67 µm/px) and tiles (0.467 µm/px) against the
pathologists' tumour labels. Writes ``lran_core/weights/SET/figures/`` (metrics JSON, ROC and
confusion PNGs), ``lran_core/weights/SET/map-quality.json`` (the figures the app shows as
badges), and prints the card's markdown tables; with ``--runs``, also the cross-validation
(mean and standard deviation over folds) and ablation tables from ``runs/*/eval.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from PIL import Image
from scipy.stats import ttest_1samp

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from lran_core import LRANClassifier, load_model_set
from lran_core.evaluate import evaluate, labelled_images, read_tumour, region_localisation
from lran_core.maps import resize_map
from lran_core.models import display_name
from lran_core.region import RegionError, map_region

WEIGHTS = Path(__file__).resolve().parent.parent / "lran_core" / "weights"
# BACH A03: regions are 5000 px at 0.467 µm/px downsized 10x; tiles are at full resolution.
BACH = {"regions": 4.67, "tiles": 0.467}


def splits(data: Path, name: str) -> dict[str, dict[str, Any]]:
    if name == "idc":
        return {
            "validation": {"data": data / "idc", "fold": (5, 0, 0)},
            "external": {"data": data / "idc-external"},
        }
    return {"validation": {"data": data / "pcam" / "valid", "centre": 1 / 3}}


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("set", choices=("idc", "pcam"))
    p.add_argument("--data", type=Path, default=Path("../shared/data"))
    p.add_argument("--runs", type=Path, default=None)
    p.add_argument("--max-maps", type=int, default=256, help="map-quality images per class")
    args = p.parse_args()
    out = WEIGHTS / args.set / "figures"
    out.mkdir(parents=True, exist_ok=True)
    models = load_model_set(args.set)
    labels = {n: display_name(n) for n in models}
    results: dict[str, dict[str, Any]] = {}
    for split, spec in splits(args.data, args.set).items():
        results[split] = {
            n: evaluate(
                m,
                spec["data"],
                fold=spec.get("fold"),
                maps=True,
                centre=spec.get("centre"),
                max_maps=args.max_maps,
            )
            for n, m in models.items()
        }
        _write_split(out, split, results[split], labels)
    localisation: dict[str, dict[str, Any]] = {n: {} for n in models}
    for kind, mpp in BACH.items():
        folder = args.data / "bach-a03" / kind
        for n, m in models.items():
            try:
                localisation[n][kind] = region_localisation(m, folder, mpp)
            except RegionError as err:
                # PCam's models see 0.97 µm/px: the 4.67 µm/px regions are too coarse for them.
                localisation[n][kind] = {"refused": str(err)}
        if not any("refused" in localisation[n][kind] for n in models):
            _region_figure(models, folder, mpp, out / f"bach-{kind}.jpg", labels)
    (out / "localisation.json").write_text(json.dumps(localisation, indent=1))
    quality = {
        n: _badge(results["validation"][n], localisation[n], models[n].meta.class_names[-1])
        for n in models
    }
    (WEIGHTS / args.set / "map-quality.json").write_text(json.dumps(quality, indent=1) + "\n")
    _print_maps(results["validation"], localisation, labels)
    if args.runs:
        _print_runs(args.runs, args.set, labels)


def _write_split(
    out: Path, split: str, by_model: dict[str, dict[str, Any]], labels: dict[str, str]
) -> None:
    slim = {n: {k: v for k, v in r.items() if k != "roc"} for n, r in by_model.items()}
    (out / f"metrics-{split}.json").write_text(json.dumps(slim, indent=1))
    first = next(iter(by_model.values()))
    positive, names = first["class_names"][-1], first["class_names"]
    fig, axes = plt.subplots(1, 1 + len(by_model), figsize=(4.3 * (1 + len(by_model)), 4.2))
    for n, r in by_model.items():
        curve = r["roc"][positive]
        axes[0].plot(curve["fpr"], curve["tpr"], label=f"{labels[n]} (AUC {r['auc']:.3f})")
    axes[0].plot([0, 1], [0, 1], ":", color="gray")
    axes[0].set(
        xlabel="false positive rate",
        ylabel="true positive rate",
        title=f"ROC, {positive} ({split}, n={first['n']})",
    )
    axes[0].legend(loc="lower right")
    for ax, (n, r) in zip(axes[1:], by_model.items()):
        ax.imshow(r["confusion"], cmap="Blues")
        for i, row in enumerate(r["confusion"]):
            for j, v in enumerate(row):
                ax.text(j, i, str(v), ha="center", va="center")
        ax.set(
            xticks=range(len(names)),
            yticks=range(len(names)),
            xticklabels=names,
            yticklabels=names,
            xlabel="predicted",
            ylabel="true",
            title=f"{labels[n]}: accuracy {r['accuracy']:.3f}",
        )
    fig.tight_layout()
    fig.savefig(out / f"roc-confusion-{split}.png", dpi=90)
    plt.close(fig)
    rows: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        ("n", lambda r: str(r["n"])),
        ("accuracy", lambda r: f"{r['accuracy']:.3f}"),
        ("balanced accuracy", lambda r: f"{r['balanced_accuracy']:.3f}"),
        ("AUC", lambda r: f"{r['auc']:.3f}"),
        *[(f"F1 {c}", _at("per_class", c, "f1")) for c in names],
        ("ECE (15 bins)", lambda r: f"{r['ece']:.3f}"),
        ("confusion [[TN, FP], [FN, TP]]", lambda r: str(r["confusion"])),
    ]
    _table(f"{split}", by_model, labels, rows)


def _region_figure(
    models: dict[str, LRANClassifier],
    folder: Path,
    mpp: float,
    path: Path,
    labels: dict[str, str],
    rows: int = 3,
) -> None:
    """Writes a figure of the ``rows`` images of ``folder`` whose tumour share is nearest one
    half: each image with the tumour (BACH labels 2, 3) outlined, then every model's tumour
    probability map over it (0 to 1 on one colour scale), as the region command maps it."""
    candidates = []
    for image, mask_path in labelled_images(folder):
        tumour = read_tumour(mask_path)
        candidates.append((abs(float(tumour.mean()) - 0.5), image.stem, image, tumour))
    chosen = sorted(candidates, key=lambda c: c[:2])[:rows]
    fig, axes = plt.subplots(
        len(chosen), 1 + len(models), figsize=(3.2 * (1 + len(models)), 3.3 * len(chosen))
    )
    axes = np.atleast_2d(axes)
    for row, (_, stem, image, tumour) in zip(axes, chosen):
        rgb = np.asarray(Image.open(image).convert("RGB"))
        row[0].imshow(rgb)
        row[0].set_title(f"{stem}, {mpp} µm/px", fontsize=9)
        for ax, (n, maps) in zip(row[1:], map_region(models, rgb, mpp).items()):
            positive = models[n].meta.class_names[maps.cam_class]
            ax.imshow(resize_map(maps.probs[maps.cam_class], tumour.shape), vmin=0, vmax=1)
            ax.set_title(f"{labels[n]}: P({positive})", fontsize=9)
        for ax in row:
            ax.contour(tumour, levels=[0.5], colors="cyan", linewidths=1.2)
            ax.axis("off")
    fig.suptitle("BACH tumour (labels 2, 3) outlined in cyan; probability 0 (dark) to 1 (yellow)")
    fig.tight_layout()
    # JPEG: tissue compresses to a fifth of the PNG's bytes, and the figure ships with the set.
    fig.savefig(path, dpi=80, pil_kwargs={"quality": 85})
    plt.close(fig)


def _badge(val: dict[str, Any], loc: dict[str, Any], positive: str) -> dict[str, Any]:
    """The figures the app's badge shows (ui/views/maps.py)."""
    maps = val["maps"]
    border = maps["per_class"][positive]["cam_border_bias"]
    out: dict[str, Any] = {
        "peak_in_ring": border["peak_in_ring"],
        "mass_in_ring": border["mass_in_ring"],
        "ring_area": border["ring_area"],
        "ring_chance": maps["per_class"][positive]["cam_border_chance"]["peak_in_ring"],
        "randomisation_cam": maps["randomisation"]["cam"],
        "randomisation_attention": maps["randomisation"]["attention"],
    }
    centre = maps["per_class"][positive].get("cam_centre")
    if centre:
        out["centre_ratio"] = centre["ratio"]
    for kind, result in loc.items():
        if "mean" in result:
            out[f"bach_{kind}_auroc"] = result["mean"]["probability"]["auroc"]
    return out


def _print_maps(
    by_model: dict[str, dict[str, Any]],
    localisation: dict[str, dict[str, Any]],
    labels: dict[str, str],
) -> None:
    first = next(iter(by_model.values()))
    rows: list[tuple[str, Callable[[dict[str, Any]], str]]] = []
    for c in first["class_names"]:
        per = ("maps", "per_class", c)
        rows += [
            (
                f"{c}: CAM peaks in the outer 1/8 ring (area {_ring(first, c):.2f})",
                _at(*per, "cam_border_bias", "peak_in_ring"),
            ),
            (f"{c}: CAM positive mass in the ring", _at(*per, "cam_border_bias", "mass_in_ring")),
            (
                f"{c}: attention mass in the ring",
                _at(*per, "attention_border_bias", "mass_in_ring"),
            ),
        ]
        if "cam_centre" in first["maps"]["per_class"][c]:
            rows.append(
                (f"{c}: CAM centre mass / centre area (1/9)", _at(*per, "cam_centre", "ratio"))
            )
    rows += [
        ("randomisation check, CAM (Spearman)", _at("maps", "randomisation", "cam")),
        ("randomisation check, attention (Spearman)", _at("maps", "randomisation", "attention")),
    ]
    _table("map quality (validation)", by_model, labels, rows)
    loc_rows: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        (f"BACH {kind}: {key} {score}", _at(kind, "mean", key, score))
        for kind in BACH
        for key, score in (
            ("probability", "auroc"),
            ("cam", "auroc"),
            ("cam", "energy"),
            ("attention", "auroc"),
            ("attention", "energy"),
        )
    ]
    _table("localisation on BACH tumour (labels 2, 3)", localisation, labels, loc_rows)
    for n, loc in localisation.items():
        for kind, result in loc.items():
            if "per_image" in result:
                share = {k: round(v["mask_share"], 3) for k, v in result["per_image"].items()}
                aurocs = {k: _f(v["probability"]["auroc"]) for k, v in result["per_image"].items()}
                print(f"{labels[n]} {kind}: tumour share {share}; probability AUROC {aurocs}")


def _print_runs(runs: Path, name: str, labels: dict[str, str]) -> None:
    if name == "idc":
        # The folds every variant has run, so that the rows compare (a fold's patients can be
        # harder for all three); a fold under way is printed apart.
        complete = [
            f
            for f in sorted(runs.glob("cv/fold*"))
            if all((f / v / "eval.json").is_file() for v in labels)
        ]
        folds: dict[str, list[dict[str, Any]]] = {
            v: [json.loads((f / v / "eval.json").read_text()) for f in complete] for v in labels
        }
        for path in sorted(runs.glob("cv/fold*/*/eval.json")):
            if path.parent.parent not in complete:
                r = json.loads(path.read_text())
                print(
                    f"{path.parent.parent.name} (under way), {labels[path.parent.name]}: "
                    f"accuracy {r['accuracy']:.3f}, balanced accuracy "
                    f"{r['balanced_accuracy']:.3f}, AUC {r['auc']:.3f}"
                )
        if complete:
            names = ", ".join(f.name for f in complete)
            print(f"\n### cross-validation (mean ± sd over {names})\n")
            print("| | folds | accuracy | balanced accuracy | AUC | IDC+ CAM peaks in ring |")
            print("|---|---|---|---|---|---|")
            for variant in labels:
                rs = folds.get(variant, [])
                if not rs:
                    continue
                cells = [
                    _mean_sd([r["accuracy"] for r in rs]),
                    _mean_sd([r["balanced_accuracy"] for r in rs]),
                    _mean_sd([r["auc"] for r in rs]),
                    _mean_sd(
                        [
                            r["maps"]["per_class"]["IDC-positive"]["cam_border_bias"][
                                "peak_in_ring"
                            ]
                            for r in rs
                        ]
                    ),
                ]
                print(f"| {labels[variant]} | {len(rs)} | " + " | ".join(cells) + " |")
            _print_paired(runs, labels)
        ablation = sorted(runs.glob("ablation/*/*/eval.json"))
        if ablation:
            print("\n### ablation (IDC fold 0, 6 epochs)\n")
            print(
                "| recipe | model | accuracy | balanced | AUC | IDC+ CAM peaks in ring | "
                "IDC+ CAM mass in ring | randomisation check |"
            )
            print("|---|---|---|---|---|---|---|---|")
            for path in ablation:
                r = json.loads(path.read_text())
                pos = r["maps"]["per_class"]["IDC-positive"]["cam_border_bias"]
                print(
                    f"| {path.parent.parent.name} | {display_name(path.parent.name)} | "
                    f"{r['accuracy']:.3f} | {r['balanced_accuracy']:.3f} | {r['auc']:.3f} | "
                    f"{pos['peak_in_ring']:.2f} | {pos['mass_in_ring']:.2f} | "
                    f"{r['maps']['randomisation']['cam']:.2f} |"
                )


def _print_paired(runs: Path, labels: dict[str, str]) -> None:
    """R-RAN and R-LRAN minus the base, fold by fold (the folds where both have run): the
    issue's goal is R-LRAN's balanced accuracy at least 1 point above the base's."""
    base, *others = labels
    for variant in others:
        pairs = [
            (json.loads((fold / base / "eval.json").read_text()), json.loads(path.read_text()))
            for fold in sorted(runs.glob("cv/fold*"))
            if (path := fold / variant / "eval.json").is_file()
            and (fold / base / "eval.json").is_file()
        ]
        if not pairs:
            continue
        diffs = {
            # Rounded first: 0.836 - 0.8415 is -0.54999... points, and -0.55 is what it is.
            label: [round(100 * (v[key] - b[key]), 9) for b, v in pairs]
            for key, label in (
                ("accuracy", "accuracy"),
                ("balanced_accuracy", "balanced accuracy"),
                ("auc", "AUC"),
            )
        }
        print(
            f"\n{labels[variant]} minus {labels[base]}, fold by fold ({len(pairs)} of them), "
            "in points (AUC x 100), mean ± sd (each fold) [paired t 95% interval of the mean]: "
            + "; ".join(
                f"{label} {_mean_sd(d, 1)} ({', '.join(f'{x:+.1f}' for x in d)}){_interval(d)}"
                for label, d in diffs.items()
            )
        )


def _interval(diffs: list[float]) -> str:
    """The paired t 95% interval of the mean difference, from three folds on. The folds share
    most of their training patients, so the interval is narrower than it should be."""
    if len(diffs) < 3:
        return ""
    ci = ttest_1samp(diffs, 0.0).confidence_interval(0.95)
    return f" [{ci.low:+.1f}, {ci.high:+.1f}]"


def _table(
    title: str,
    by_model: dict[str, Any],
    labels: dict[str, str],
    rows: list[tuple[str, Callable[[Any], str]]],
) -> None:
    print(f"\n### {title}\n")
    print("| | " + " | ".join(labels[n] for n in by_model) + " |")
    print("|---" * (len(by_model) + 1) + "|")
    for label, fmt in rows:
        print(f"| {label} | " + " | ".join(fmt(r) for r in by_model.values()) + " |")


def _at(*keys: str) -> Callable[[dict[str, Any]], str]:
    """A cell: the value at ``keys`` in a result, formatted; n/a where absent or None."""

    def cell(result: dict[str, Any]) -> str:
        value: Any = result
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        return _f(value)

    return cell


def _ring(result: dict[str, Any], c: str) -> float:
    return float(result["maps"]["per_class"][c]["cam_border_bias"]["ring_area"])


def _f(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _mean_sd(values: list[float], digits: int = 3) -> str:
    if len(values) < 2:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


if __name__ == "__main__":
    main()
