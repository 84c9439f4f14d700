"""The case in the viewer: the image at full resolution (zoom, pan, draw), and, once the maps
may be seen, one aligned grid of them (a column per model, a row per map type) with colour bars,
the reader's region and the reference outlined, and each model's map-quality badge."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import streamlit as st

from lran_core.maps import COLOUR_MAPS
from review.display import DEFAULT_CMAP, Coloured, colour_maps
from review.drawing import mask_to_polygons
from review.items import ImageItem, Reference
from review.modelsets import ModelSet
from review.patches import PatchMaps
from review.records import READER_RGB, REFERENCE_RGB
from review.scoring import ScoredMap
from ui.components.viewer import Legend, Outline, Overlay, Polygon, ViewerState, viewer

ROW_NAMES = {"probability": "probability", "cam": "CAM", "attention": "attention"}


@dataclass(frozen=True)
class Look:
    """How maps are drawn: opacity, colour map, and whether one scale spans the models."""

    opacity: float
    cmap: str
    shared: bool


def controls(class_names: list[str], region: bool) -> tuple[int | None, Look]:
    """The class of the CAMs (a patch: default each model's predicted class; a region: the
    positive class), opacity, colour map (perceptual by default) and scale."""
    c1, c2, c3, c4 = st.columns(4)
    if region:
        target = c1.selectbox(
            "Class (CAM and probability)",
            range(len(class_names)),
            key="region_class",
            index=len(class_names) - 1,
            format_func=lambda i: class_names[i],
        )
    else:
        target = c1.selectbox(
            "CAM class",
            [None, *range(len(class_names))],
            key="target",
            format_func=lambda i: "each model's prediction" if i is None else class_names[i],
        )
    opacity = c2.slider("Opacity", 0.0, 1.0, 0.6, 0.05, key="alpha")
    cmap = c3.selectbox(
        "Colour map", COLOUR_MAPS, index=COLOUR_MAPS.index(DEFAULT_CMAP), key="cmap"
    )
    scale = c4.radio(
        "Scale",
        ["shared, 1-99%", "per map"],
        horizontal=True,
        key="scale",
        help="Shared: one scale for a row across the models, clipped at its 1st and 99th "
        "percentiles, so a weaker map looks weaker and one hot pixel does not wash out the "
        "rest. Per map: each map stretched on its own.",
    )
    return target, Look(opacity, cmap, scale.startswith("shared"))


def _row(
    rows: dict[str, dict[str, ScoredMap]],
    name: str,
    label: str,
    look: Look,
    fixed: tuple[float, float] | None = None,
) -> dict[str, Overlay]:
    models = [m for m in rows if name in rows[m]]
    # Where the models' CAMs are of different classes (each its own prediction), one class's
    # evidence is not on the other's scale: a shared scale spans the CAMs of one class, and
    # each colour bar names its class, which the row's label cannot.
    groups: dict[str | None, list[str]] = {}
    for m in models:
        groups.setdefault(rows[m][name].cam_class, []).append(m)
    coloured: dict[str, Coloured] = {}
    for group in groups.values():
        values = [rows[m][name].values for m in group]
        made = colour_maps(values, shared=look.shared, fixed=fixed, cmap=look.cmap)
        coloured.update(zip(group, made, strict=True))
    scale = (
        "0-1"
        if fixed
        else "per map, 1-99%"
        if not look.shared
        else "shared by class, 1-99%"
        if len(groups) > 1
        else "shared, 1-99%"
    )

    def caption(m: str) -> str:
        own = rows[m][name].cam_class
        return f"{label} ({own}; {scale})" if len(groups) > 1 and own else f"{label} ({scale})"

    return {
        m: Overlay(
            coloured[m].rgba,
            Legend(look.cmap, coloured[m].low, coloured[m].high, caption(m)),
            look.opacity,
        )
        for m in models
    }


def patch_rows(outputs: list[PatchMaps], target: int | None) -> dict[str, dict[str, ScoredMap]]:
    """Every model's maps of a patch by stored name, the CAMs of ``target``."""
    return {out.variant: out.maps(target) for out in outputs}


def grid(
    item: ImageItem,
    maps: dict[str, dict[str, ScoredMap]] | None,
    titles: dict[str, str],
    look: Look | None,
    mpp: float | None,
    drawing: list[Polygon] | None,
    outlines: Sequence[Outline],
    key: str,
    common_only: bool = False,
    draw: bool = True,
    view_key: str | None = None,
) -> ViewerState:
    """The viewer: the image (drawing on where ``draw``), and the maps when given (None: the
    image only, as in a blinded first read). ``common_only``: only the rows every model has
    (an anonymised study: attention only in R-RAN and R-LRAN, gates only in R-LRAN, would name
    the maps). ``view_key``: see :func:`ui.components.viewer.viewer`."""
    overlays: dict[tuple[str, str], Overlay] = {}
    row_names: list[str] = []
    # Columns in the titles' order: by letter when anonymised (model order would give the
    # identities away), else base, R-RAN, R-LRAN.
    columns = [titles[m] for m in titles if m in (maps or {})]
    if maps and look is not None:
        present = all if common_only else any
        found = {n for v in maps.values() for n in v if present(n in w for w in maps.values())}
        names = [n for n in ("probability", "cam", "attention") if n in found]
        gates = sorted(n for n in found if n.startswith("gate"))
        for name in [*names, *gates]:
            label = ROW_NAMES.get(name, f"gate {name.removeprefix('gate')}")
            classes = {v[name].cam_class for v in maps.values() if name in v}
            if name in ("cam", "probability") and len(classes) == 1 and None not in classes:
                label = f"{label} ({classes.pop()})"
            fixed = (0.0, 1.0) if name == "probability" or name.startswith("gate") else None
            for model, overlay in _row(maps, name, label, look, fixed).items():
                overlays[(label, titles[model])] = overlay
            row_names.append(label)
    return viewer(
        item.rgb,
        mpp=mpp,
        columns=columns,
        rows=row_names,
        overlays=overlays,
        outlines=outlines,
        drawing=drawing,
        draw=draw,
        height=_height(item, len(row_names)),
        key=key,
        view_key=view_key,
    )


def _height(item: ImageItem, rows: int) -> int:
    """Room for the image pane and the map rows in a 1000 px window."""
    return 560 if rows == 0 else min(1400, 470 + 220 * rows)


def outlines(saved: np.ndarray | None, reference: Reference | None) -> list[Outline]:
    """The reader's saved region and the imported reference as outlines over every pane."""
    out = []
    if saved is not None and saved.any():
        out.append(Outline("your saved region", READER_RGB, mask_to_polygons(saved)))
    if reference is not None:
        out.append(
            Outline(
                f"reference ({reference.summary})",
                REFERENCE_RGB,
                mask_to_polygons(reference.region),
            )
        )
    return out


def quality_badges(model_set: ModelSet, titles: dict[str, str]) -> None:
    """Each model's map-quality figures (border bias, PCam centre check, randomisation check)
    in a line, with a plain warning where a map misses the goals its model card measures it
    against: CAM peaks in the border ring for at most half the positives, centre mass at least
    twice its area, Spearman below 0.5."""
    if not model_set.quality:
        return
    parts = []
    for model, title in titles.items():
        figures = model_set.quality.get(model)
        if not figures:
            continue
        warnings = []
        ring = figures.get("peak_in_ring")
        area = figures.get("ring_area")
        chance = figures.get("ring_chance")
        if ring is not None and area is not None:
            # A map blind to position peaks there more often than the border's area share.
            blind = f"; a map blind to position: {chance:.0%}" if chance is not None else ""
            warnings.append(
                f"CAM peaks at the patch border in {ring:.0%} of positives "
                f"(border = {area:.0%} of the area{blind})"
            )
        # PCam labels a patch by its central 32 x 32 px: positives' CAMs belong there.
        centre = figures.get("centre_ratio")
        if centre is not None:
            warnings.append(f"CAM mass in the patch centre {centre:.1f}x its area on positives")
        rho = figures.get("randomisation_cam")
        if rho is not None:
            warnings.append(f"randomisation check: Spearman {rho:.2f}")
        failed = (
            (ring is not None and ring > 0.5)
            or (centre is not None and centre < 2)
            or (rho is not None and rho >= 0.5)
        )
        icon = "⚠️" if failed else "✓"
        parts.append(f"{icon} **{title}**: " + "; ".join(warnings))
    if parts:
        st.caption(
            "Map quality on held-out data: "
            + " · ".join(parts)
            + " (⚠️: the map misses a goal of its model card: it lights the patch's frame, "
            "ignores the labelled centre or barely depends on what the model learnt; read it "
            "with care)."
        )


__all__ = ["Look", "controls", "grid", "outlines", "patch_rows", "quality_badges"]
