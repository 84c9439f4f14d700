"""Reproduces the figures of lran_core/weights/idc/MODEL_CARD.md from the shipped weights.

    python scripts/model_card.py [--data ../shared/data] [--out lran_core/weights/idc/figures]

Evaluates base ResNet-18, R-RAN and R-LRAN of the `idc` set on the validation fold (fold 0 of
5 patient folds, seed 0, as trained) and on the external IDC patients; writes metrics JSON, the
ROC curves and confusion matrices as PNG, and prints the card's markdown tables.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from lran_core import load_model_set
from lran_core.evaluate import evaluate

LABELS = {"resnet18": "ResNet-18", "resnet18-ran": "R-RAN", "resnet18-lran": "R-LRAN"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data", type=Path, default=Path("../shared/data"))
    p.add_argument("--out", type=Path, default=Path("lran_core/weights/idc/figures"))
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    models = load_model_set("idc")
    sets = {
        "validation": (args.data / "idc", (5, 0, 0)),
        "external": (args.data / "idc-external", None),
    }
    results = {
        split: {name: evaluate(m, folder, fold=fold) for name, m in models.items()}
        for split, (folder, fold) in sets.items()
    }
    for split, by_model in results.items():
        slim = {
            name: {k: v for k, v in r.items() if k not in ("roc",)} for name, r in by_model.items()
        }
        (args.out / f"metrics-{split}.json").write_text(json.dumps(slim, indent=1))
        fig, axes = plt.subplots(1, 4, figsize=(17, 4.2))
        for name, r in by_model.items():
            curve = r["roc"]["IDC-positive"]
            axes[0].plot(curve["fpr"], curve["tpr"], label=f"{LABELS[name]} (AUC {r['auc']:.3f})")
        axes[0].plot([0, 1], [0, 1], ":", color="gray")
        axes[0].set(
            xlabel="false positive rate",
            ylabel="true positive rate",
            title=f"ROC, IDC-positive ({split}, n={r['n']})",
        )
        axes[0].legend(loc="lower right")
        for ax, (name, r) in zip(axes[1:], by_model.items()):
            ax.imshow(r["confusion"], cmap="Blues")
            for (i, j), v in _cells(r["confusion"]):
                ax.text(j, i, str(v), ha="center", va="center")
            ax.set(
                xticks=[0, 1],
                yticks=[0, 1],
                xticklabels=["neg", "pos"],
                yticklabels=["neg", "pos"],
                xlabel="predicted",
                ylabel="true",
                title=f"{LABELS[name]}: acc {r['accuracy']:.4f}",
            )
        fig.tight_layout()
        fig.savefig(args.out / f"roc-confusion-{split}.png", dpi=90)
        plt.close(fig)
        print(f"\n### {split}\n")
        print("| | " + " | ".join(LABELS[n] for n in by_model) + " |")
        print("|---" * (len(by_model) + 1) + "|")
        rows = [
            ("n", lambda r: str(r["n"])),
            ("accuracy", lambda r: f"{r['accuracy']:.4f}"),
            ("balanced accuracy", lambda r: f"{r['balanced_accuracy']:.4f}"),
            ("AUC", lambda r: f"{r['auc']:.4f}"),
            ("F1 IDC-negative", lambda r: f"{r['per_class']['IDC-negative']['f1']:.4f}"),
            ("F1 IDC-positive", lambda r: f"{r['per_class']['IDC-positive']['f1']:.4f}"),
            ("ECE (15 bins)", lambda r: f"{r['ece']:.4f}"),
            ("confusion [[TN, FP], [FN, TP]]", lambda r: str(r["confusion"])),
        ]
        for label, fmt in rows:
            print(f"| {label} | " + " | ".join(fmt(r) for r in by_model.values()) + " |")


def _cells(matrix: list[list[int]]):
    return (((i, j), v) for i, row in enumerate(matrix) for j, v in enumerate(row))


if __name__ == "__main__":
    main()
