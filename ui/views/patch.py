"""A patch's maps: every model's probabilities and maps side by side, and how they are drawn."""

from __future__ import annotations

import streamlit as st

from lran_core.maps import COLOUR_MAPS
from review.items import ImageItem
from review.patches import PatchMaps
from ui import widgets


def map_controls(
    class_names: list[str], region: bool = False
) -> tuple[int | None, float, str, bool]:
    """Target class, opacity, colour map, shared scale.

    For a patch the target may be None (each model's predicted class); a region has no one
    prediction, so its class (of the CAM and the probability map) is chosen, the last one (the
    positive class) by default.
    """
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
            "CAM target class",
            [None, *range(len(class_names))],
            key="target",
            format_func=lambda i: "predicted class" if i is None else class_names[i],
        )
    alpha = c2.slider("Opacity", 0.0, 1.0, 0.5, 0.05, key="alpha")
    cmap = c3.selectbox("Colour map", COLOUR_MAPS, key="cmap")
    scale = c4.radio(
        "Scale",
        ["per map", "shared"],
        horizontal=True,
        key="scale",
        help="Shared: one scale for the maps of one type across models, so a weaker map looks "
        "weaker.",
    )
    return target, alpha, cmap, scale == "shared"


def show_patch_maps(
    item: ImageItem, outputs: list[PatchMaps], titles: dict[str, str], class_names: list[str]
) -> int | None:
    """Every model's probabilities and maps of a patch, under ``titles``; gives the class the
    CAMs are shown (and scored) for, None for each model's predicted class."""
    widgets.show_probabilities(outputs, titles)
    target, alpha, cmap, shared = map_controls(class_names)
    panels = widgets.map_panels(item.rgb, outputs, titles, target, alpha, cmap, shared)
    widgets.show_gallery([("patch", widgets.for_display(item.rgb)), *panels])
    return target
