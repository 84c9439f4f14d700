"""A patch under review: every model's probabilities and maps, then the reader's review."""

from __future__ import annotations

from functools import partial

import numpy as np
import streamlit as st

from annotations.records import ReviewRecord
from lran_core.maps import COLOUR_MAPS
from review.items import ImageItem
from review.modelsets import ModelSet
from review.patches import PatchMaps
from review.records import patch_record
from ui import cache, widgets
from ui.views.annotate import annotate


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


def build(
    item: ImageItem,
    model_set: ModelSet,
    outputs: list[PatchMaps],
    target: int | None,
    reader: str,
    label: str,
    mask: np.ndarray,
) -> ReviewRecord:
    """The record of the reader's review of a patch."""
    return patch_record(
        item,
        reader=reader,
        model_set=model_set.name,
        label=label,
        mask=mask,
        outputs=outputs,
        target=target,
    )


def review_patch(item: ImageItem, model_set: ModelSet) -> None:
    """The patch's maps side by side, the canvas and Save."""
    outputs = cache.patch_maps(model_set, item)
    widgets.show_probabilities(outputs)
    target, alpha, cmap, shared = map_controls(model_set.class_names)
    panels = widgets.map_panels(item.rgb, outputs, target, alpha, cmap, shared)
    widgets.show_gallery([("patch", widgets.for_display(item.rgb)), *panels])
    annotate(item, model_set.class_names, partial(build, item, model_set, outputs, target))


def review_patch_preview(item: ImageItem, model_set: ModelSet) -> None:
    """The Start page's preview of a new upload: a patch's predictions and maps, or, for an
    image larger than the models' patch, the image and how it will be reviewed."""
    if max(item.width, item.height) > model_set.patch_side:
        # Mapping a region takes a pass of every model, at a resolution the reader confirms on
        # the Review page: the preview shows the image only.
        st.image(widgets.for_display(item.rgb, widgets.REGION_SIDE), caption="region")
        st.info(
            f"{item.width} x {item.height} px is larger than the models' patch: the Review page "
            "maps it as a region "
            + (
                f"at {item.mpp:g} µm/px (from its resolution tags)."
                if item.mpp
                else "once you give its µm/px."
            )
        )
        return
    outputs = cache.patch_maps(model_set, item)
    widgets.show_probabilities(outputs)
    panels = widgets.map_panels(item.rgb, outputs, None, 0.5, "jet", shared=False)
    widgets.show_gallery([("patch", widgets.for_display(item.rgb)), *panels])
