"""The region command: map an image region with a model set and, given a reference label mask,
score every model's maps against it.

    lran-review region --models idc --image IMG --mpp 4.7 [--mask MASK] --json OUT [--png DIR]
    python -m review.region ...   (the same)

The JSON holds the image, its size and µm/px, and per model: the windows classified and the
forward passes (blocks), seconds, the class of its CAM and probability map, the area-weighted
mean probability and, with ``--mask`` (BACH values 0-3),
``scores``: the AUROC of the probability map against tumour (values 2 and 3) and the design.md §3
scores of CAM and attention against every annotated pixel (values above 0). Exits 2 with a
one-line reason when the input is refused.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from annotations.masks import read_label_mask
from annotations.scores import auroc
from lran_core import CheckpointError, NoWeightsError
from lran_core.data import ImageReadError, load_image, read_mpp
from lran_core.maps import resize_map
from lran_core.predict import PRECISIONS
from lran_core.region import BLOCK, RegionError, field_of_view_um, map_region, write_pngs
from review import modelsets
from review.regions import RegionResult
from review.scoring import (
    DEFAULT_TOLERANCE_UM,
    ENV_TOLERANCE,
    configured_tolerance,
    score_maps,
    scoring_grid,
)

TUMOUR_LABELS = (2, 3)


def build_parser(prog: str = "lran-review region") -> argparse.ArgumentParser:
    """The command's options."""
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="idc", help="a model set name or a folder of checkpoints")
    p.add_argument("--image", type=Path, required=True, help="RGB image (PNG, JPEG, TIFF)")
    p.add_argument(
        "--mpp",
        type=float,
        default=None,
        help="microns per pixel of the image; read from TIFF tags when omitted",
    )
    p.add_argument(
        "--mask",
        type=Path,
        default=None,
        help="BACH label mask PNG of the image's size: 0 unannotated, 1 benign, 2 in situ, "
        "3 invasive",
    )
    p.add_argument("--json", type=Path, required=True, help="where to write the figures")
    p.add_argument("--png", type=Path, default=None, help="folder for heatmap PNGs of every map")
    p.add_argument(
        "--block",
        type=int,
        default=BLOCK,
        help="side of one forward pass in input px (a multiple of 32; less memory, more passes)",
    )
    p.add_argument(
        "--cam-class",
        type=int,
        default=None,
        help="class of the CAM and of the scored probability (default: the last)",
    )
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="auto: bf16 on CPUs with bf16 instructions, else fp32",
    )
    p.add_argument(
        "--tolerance-um",
        type=_tolerance_um,
        default=None,
        help=f"pointing-game tolerance in micrometres (default: {ENV_TOLERANCE}, as the app, "
        f"else {DEFAULT_TOLERANCE_UM:g})",
    )
    return p


def _tolerance_um(text: str) -> float:
    """``--tolerance-um``: a finite number of micrometres, 0 or more."""
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number of µm, 0 or more: {text}")
    return value


def _outputs(args: argparse.Namespace) -> None:
    """Makes the folders of ``--json`` and ``--png`` before the mapping (minutes for a large
    region), so that an unusable path is refused before it, not after; RegionError if not."""
    try:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        if args.json.is_dir():
            raise RegionError(f"--json {args.json} is a folder")
        if args.png is not None:
            args.png.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RegionError(f"cannot write the output: {err}") from err


def region_scores(
    result: RegionResult, labels: np.ndarray, tolerance_um: float
) -> dict[str, dict[str, Any]]:
    """Per model: the AUROC of its probability map against tumour (labels 2 and 3; None when
    the mask has no tumour or only tumour; on the scores' grid), and the §3 scores of its CAM
    and attention against every annotated pixel (labels above 0)."""
    region = labels > 0
    tumour = np.isin(labels, TUMOUR_LABELS)
    records = score_maps(
        {
            m: {k: v for k, v in named.items() if k != "probability"}
            for m, named in result.layers().items()
        },
        region,
        result.mpp,
        tolerance_um,
    )
    # On the scores' grid (at most SCORE_SIDE a side), as every other score: a large region at
    # full size is up to 120 million pixels to rank.
    tumour_grid, _ = scoring_grid(tumour)
    out: dict[str, dict[str, Any]] = {}
    for model, m in result.maps.items():
        probability = resize_map(m.probs[result.cam_class], tumour_grid.shape)
        entry: dict[str, Any] = {"auroc_tumour_2_3": auroc(probability, tumour_grid)}
        for r in records:
            if r.model == model:
                entry[r.map] = r.values() | {
                    "tolerance_px": r.tolerance_px,
                    "tolerance_um": r.tolerance_um,
                }
        entry.setdefault("attention", None)
        out[model] = entry
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Maps (and scores) as the options say; gives the report written to ``--json``. Raises
    RegionError, ImageReadError, NoWeightsError or CheckpointError for refused input and
    OSError for an output that cannot be written."""
    _outputs(args)
    try:
        tolerance = args.tolerance_um if args.tolerance_um is not None else configured_tolerance()
    except ValueError as err:
        raise RegionError(str(err)) from err
    rgb = load_image(args.image)
    mpp, mpp_source = args.mpp, "--mpp"
    if mpp is None:
        mpp, mpp_source = read_mpp(args.image), "image resolution tags"
        if mpp is None:
            raise RegionError(
                f"{args.image}: no resolution tags, so its microns per pixel are unknown; "
                "give them with --mpp (e.g. --mpp 0.47 for a 20x scan)"
            )
    labels = None
    if args.mask is not None:
        try:
            labels = read_label_mask(
                args.mask.read_bytes(), (rgb.shape[1], rgb.shape[0]), (0, 1, 2, 3)
            )
        except (OSError, ValueError) as err:
            raise RegionError(f"{args.mask}: {err}") from err
    model_set = modelsets.load(args.models)
    classes = model_set.class_names
    cam_class = len(classes) - 1 if args.cam_class is None else args.cam_class
    maps = map_region(
        model_set.models, rgb, mpp, cam_class, precision=args.precision, block=args.block
    )
    overlap = min(m.window_overlap for m in maps.values())
    result = RegionResult(maps, float(mpp), overlap, cam_class, classes)
    report: dict[str, Any] = {
        "image": str(args.image),
        "size": [rgb.shape[1], rgb.shape[0]],
        "mpp": mpp,
        "mpp_source": mpp_source,
        "mask": str(args.mask) if args.mask else None,
        "window_overlap": overlap,
        "precision": args.precision,
        "models": {},
    }
    scores = region_scores(result, labels, tolerance) if labels is not None else {}
    for name, m in maps.items():
        meta = model_set.models[name].meta
        report["models"][name] = {
            "windows": m.windows,
            "blocks": m.blocks,
            "seconds": round(m.seconds, 3),
            "mpp": mpp,
            "model_mpp": meta.mpp,
            "field_um": field_of_view_um(meta),
            "cam_class": m.cam_class,
            "mean_prob": float(m.probs[m.cam_class].mean()),
        } | ({"scores": scores[name]} if name in scores else {})
    if args.png is not None:
        report["png"] = write_pngs(args.png, args.image.stem, maps)
    args.json.write_text(json.dumps(report, indent=2))
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """Command line; writes the JSON (and PNGs); exits 2 with the reason when refused."""
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except (RegionError, ImageReadError, NoWeightsError, CheckpointError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
