"""Region figures on BACH A03, run by hand:
``python bench/region_figures.py [--out DIR] [--block PX] [--precision P] [--limit N]``.

Maps the three BACH regions (``regions/A03_k.png``, about 4.7 um/px) and the twelve 1000 x 1000
tiles (``tiles/A03_k_n.png``, about 0.47 um/px) under ``../shared/data/bach-a03`` with a model set
through the region command (``lran-review region``), and writes ``figures.json``
(every image's report) and ``figures.md`` (a table per image and model: tumour AUROC of the
probability map against labels 2-3, and AUROC / energy pointing game / pointing game of CAM and
attention against every annotated pixel), with the windows each model classified, its forward
passes (blocks) and seconds. A folder that is absent is skipped with a note. ``--limit N`` maps
only the first N images of each folder (a quick check that it runs).

The BACH localisation figures of the model card (tumour AUROC, energy and AUROC of CAM and
attention against labels 2-3 only, through :func:`lran_core.evaluate.region_localisation`) come
from ``scripts/model_card.py``; this script goes through the region command end to end and adds
the pointing games, the scores against every annotated pixel and the timings per image.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from lran_core.predict import PRECISIONS
from lran_core.region import BLOCK
from review.region import main as region_main

ROOT = Path(__file__).resolve().parent.parent

BACH = ROOT.parent / "shared" / "data" / "bach-a03"
# Scale of each folder (data README): regions are 5000 px at 0.467 um/px downsized 10x.
FOLDERS = {"regions": 4.67, "tiles": 0.467}


def run(models: str, out: Path, block: int, precision: str, limit: int = 0) -> list[dict[str, Any]]:
    reports = []
    for folder, mpp in FOLDERS.items():
        path = BACH / folder
        if not path.is_dir():
            print(f"skipped {folder}: {path} is absent")
            continue
        images = sorted(p for p in path.glob("A03_*.png") if not p.stem.endswith("_mask"))
        for image in images[:limit] if limit else images:
            json_path = out / folder / f"{image.stem}.json"
            code = region_main(
                [
                    "--models",
                    models,
                    "--image",
                    str(image),
                    "--mpp",
                    str(mpp),
                    "--mask",
                    str(image.with_name(f"{image.stem}_mask.png")),
                    "--json",
                    str(json_path),
                    "--block",
                    str(block),
                    "--precision",
                    precision,
                ]
            )
            if code:
                raise SystemExit(f"{image}: the region command failed (exit {code})")
            report = json.loads(json_path.read_text())
            report["folder"] = folder
            reports.append(report)
            print(
                f"{folder}/{image.name}: "
                + ", ".join(
                    f"{n} {m['scores']['auroc_tumour_2_3']}" for n, m in report["models"].items()
                ),
                flush=True,
            )
    return reports


def _fmt(value: float | bool | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "hit" if value else "miss"
    return f"{value:.3f}"


def _mean(values: list[Any]) -> float | None:
    numbers = [float(v) for v in values if v is not None]
    return sum(numbers) / len(numbers) if numbers else None


def table(reports: list[dict[str, Any]]) -> str:
    head = (
        "| image | um/px | model | windows | blocks | s | AUROC tumour (2,3) | CAM AUROC "
        "| CAM energy | CAM pointing | attention AUROC | attention energy | attention pointing |"
    )
    lines = [head, "|" + "---|" * 13]
    rows: dict[tuple[str, str], list[list[Any]]] = {}
    for r in reports:
        name = Path(r["image"]).stem
        for model, m in r["models"].items():
            s = m["scores"]
            cam, att = s["cam"], s["attention"] or {}
            values = [
                s["auroc_tumour_2_3"],
                cam["auroc"],
                cam["energy_pointing_game"],
                cam["pointing_game"],
                att.get("auroc"),
                att.get("energy_pointing_game"),
                att.get("pointing_game"),
            ]
            rows.setdefault((r["folder"], model), []).append(values)
            lines.append(
                f"| {name} | {r['mpp']} | {model} | {m['windows']} | {m['blocks']} | "
                f"{m['seconds']:.1f} | " + " | ".join(_fmt(v) for v in values) + " |"
            )
    lines.append("")
    lines.append("Means per folder and model (pointing: hit rate; '-' where undefined):")
    lines.append("")
    lines.append(
        "| folder | model | AUROC tumour (2,3) | CAM AUROC | CAM energy | CAM pointing "
        "| attention AUROC | attention energy | attention pointing |"
    )
    lines.append("|" + "---|" * 9)
    for (folder, model), values in rows.items():
        means = [_mean([v[i] for v in values]) for i in range(7)]
        lines.append(f"| {folder} | {model} | " + " | ".join(_fmt(v) for v in means) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="idc", help="a model set name or a folder of checkpoints")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "region")
    p.add_argument("--block", type=int, default=BLOCK, help="side of one forward pass in input px")
    p.add_argument("--precision", choices=PRECISIONS, default="auto")
    p.add_argument("--limit", type=int, default=0, help="only the first N images per folder")
    args = p.parse_args()
    reports = run(args.models, args.out, args.block, args.precision, args.limit)
    if not reports:
        print(f"no BACH data under {BACH}: nothing to report")
        return
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "figures.json").write_text(json.dumps(reports, indent=2))
    markdown = table(reports)
    (args.out / "figures.md").write_text(markdown)
    print(markdown)


if __name__ == "__main__":
    main()
