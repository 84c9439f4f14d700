"""Context for IDC patches: a 50 px patch alone shows no surrounding tissue, but its file name
gives its patient and its place (x, y) in the patient's slide at 2.5x. Patches of one patient
are assembled into a mosaic by those places; gaps (patches not in the study) stay empty."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from lran_core.data import IDC_MPP, IDC_NATIVE, IDCName, parse_idc_name

# The colour of places with no patch: a light grey, so gaps never pass for glass or tissue.
GAP_RGB = (232, 232, 232)


@dataclass(frozen=True)
class Placed:
    """A patch and where its file name puts it."""

    name: IDCName
    rgb: np.ndarray


@dataclass(frozen=True)
class Mosaic:
    """Patches of one patient assembled by their places: ``rgb`` (H, W, 3) uint8 at IDC's
    2.5x (``mpp`` µm/px), ``origin`` = (x, y) of its top-left corner in the slide, ``boxes``:
    (x0, y0, x1, y1) of each patch in the mosaic's pixels, in the order given."""

    rgb: np.ndarray
    origin: tuple[int, int]
    boxes: list[tuple[int, int, int, int]]
    mpp: float = IDC_MPP


def placed(filename: str, rgb: np.ndarray) -> Placed | None:
    """A patch with its place, None when its name is not an IDC patch name."""
    name = parse_idc_name(filename)
    return None if name is None else Placed(name, rgb)


def assemble(patches: Sequence[Placed], max_side: int = 4000) -> Mosaic:
    """Assembles patches of one patient (ValueError for several patients, none, or a mosaic
    wider or taller than ``max_side`` px)."""
    if not patches:
        raise ValueError("no patches to assemble")
    patients = {p.name.patient for p in patches}
    if len(patients) > 1:
        raise ValueError(f"patches of {len(patients)} patients cannot make one mosaic")
    x0 = min(p.name.x for p in patches)
    y0 = min(p.name.y for p in patches)
    x1 = max(p.name.x + max(IDC_NATIVE, p.rgb.shape[1]) for p in patches)
    y1 = max(p.name.y + max(IDC_NATIVE, p.rgb.shape[0]) for p in patches)
    if max(x1 - x0, y1 - y0) > max_side:
        raise ValueError(
            f"the patches span {x1 - x0} x {y1 - y0} px, more than {max_side} px on a side"
        )
    canvas = np.empty((y1 - y0, x1 - x0, 3), dtype=np.uint8)
    canvas[...] = GAP_RGB
    boxes = []
    for p in patches:
        top, left = p.name.y - y0, p.name.x - x0
        h, w = p.rgb.shape[:2]
        canvas[top : top + h, left : left + w] = p.rgb
        boxes.append((left, top, left + w, top + h))
    return Mosaic(canvas, (x0, y0), boxes)


def neighbourhood(target: Placed, others: Sequence[Placed], radius: int = 2) -> Mosaic:
    """The target patch with the patches of its patient within ``radius`` patch widths around
    it; the target's box is the first of ``boxes``."""
    reach = radius * IDC_NATIVE
    near = [
        p
        for p in others
        if p.name.patient == target.name.patient
        and abs(p.name.x - target.name.x) <= reach
        and abs(p.name.y - target.name.y) <= reach
        and (p.name.x, p.name.y) != (target.name.x, target.name.y)
    ]
    return assemble([target, *near])


def as_tiff(mosaic: Mosaic) -> bytes:
    """A mosaic as TIFF bytes whose resolution tags give its µm/px, so it is reviewed as a
    region at the right scale."""
    buffer = io.BytesIO()
    per_cm = 10_000 / mosaic.mpp
    Image.fromarray(mosaic.rgb).save(
        buffer, format="TIFF", resolution=per_cm, resolution_unit=3, compression="tiff_deflate"
    )
    return buffer.getvalue()
