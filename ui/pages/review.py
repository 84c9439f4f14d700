"""Review: one image at a time, as a patch or as a region, then the reader's region and label.

An image no larger than the models' patch is classified whole, as one patch. A larger one (a
region exported from a slide viewer) is by default reviewed as a region at the µm/px the reader
gives (prefilled from TIFF tags). A reference annotation can be imported for a region; its
scores are stored as a review of their own, by the reader 'reference:<file name>'.
"""

from __future__ import annotations

import streamlit as st

from review.items import ImageItem
from review.modelsets import CheckpointError, NoWeightsError
from ui import cache, sidebar, state, widgets
from ui.views.patch import review_patch
from ui.views.region import region_choice, review_region


def navigation(index: int, total: int, item: ImageItem) -> None:
    """Previous / next buttons and where the reader is in the case list."""
    left, middle, right = st.columns([1, 6, 1], vertical_alignment="center")
    left.button(
        "Previous",
        on_click=state.set_index,
        args=(index - 1,),
        disabled=index == 0,
        key="prev",
        icon=":material/arrow_back:",
    )
    middle.markdown(
        f"**Image {index + 1} of {total}**: {widgets.plain(item.filename)} "
        f"({item.width} x {item.height} px)"
    )
    right.button(
        "Next",
        on_click=state.set_index,
        args=(index + 1,),
        disabled=index >= total - 1,
        key="next",
        icon=":material/arrow_forward:",
    )


def main() -> None:
    """The Review page: the case list's current image, routed to the patch or region view."""
    st.title("Review")
    case = state.items()
    if not case:
        st.info("No images yet: upload them on the Start page.")
        return
    name = sidebar.model_set()
    if not name:
        st.error("No trained weights are installed, so there is nothing to review yet.")
        return
    try:
        model_set = cache.model_set(name)
    except (NoWeightsError, CheckpointError) as err:
        st.error(widgets.plain(str(err)))
        return
    index = state.current_index()
    item = list(case.values())[index]
    navigation(index, len(case), item)
    as_region, mpp = region_choice(item, model_set)
    if as_region:
        review_region(item, model_set, mpp)
    else:
        review_patch(item, model_set)


main()
