"""Start: what the tool is, the model set in use, and the upload that builds the case list."""

from __future__ import annotations

import streamlit as st

from review import modelsets
from review.items import UPLOAD_TYPES
from review.modelsets import CheckpointError, ModelSet, NoWeightsError
from ui import cache, sidebar, state, widgets
from ui.views.patch import review_patch_preview


def model_set_status() -> ModelSet | None:
    """Loads the chosen model set and describes it; None (with the reason shown) otherwise."""
    name = sidebar.model_set()
    if not name:
        st.error(
            "No trained weights are installed, so there are no predictions or maps yet. "
            f"Install a model set under `{modelsets.folder()}` (train one with `lran-train`) or "
            "point `LRAN_MODELS_DIR` at a folder of model sets. You can still upload images."
        )
        return None
    try:
        model_set = cache.model_set(name)
    except NoWeightsError as err:
        st.error(widgets.plain(str(err)))
        return None
    except CheckpointError as err:
        st.error(f"The model set {name!r} cannot be loaded: {widgets.plain(str(err))}")
        return None
    meta = model_set.meta
    st.caption(
        f"Model set **{widgets.plain(name)}**: "
        f"{', '.join(map(model_set.title, model_set.models))} · "
        f"classes {', '.join(meta.class_names)} · input {meta.input_size} px"
        + (f" at {meta.mpp:g} µm/px" if meta.mpp else "")
        + (f" · trained on {widgets.plain(meta.data)}" if meta.data else "")
    )
    return model_set


def main() -> None:
    """The Start page."""
    st.title("LRAN Review")
    st.markdown(
        "A workbench for reviewing what a breast-histology classifier looks at. For each patch "
        "you see three models' predictions (a ResNet-18 base, R-RAN with residual attention, "
        "R-LRAN with locally gated attention) and their maps: class activation maps, attention "
        "and gates. You outline the regions of diagnostic relevance and give your own "
        "diagnosis; every map is then scored against your region. **Research use only: not for "
        "diagnosis.**"
    )
    if not sidebar.reader():
        st.info("Enter your name as **Reader** in the sidebar; it is stored with every review.")
    model_set = model_set_status()
    uploads = st.file_uploader(
        "Patches or regions to review (PNG, JPEG or TIFF; several at once)",
        type=list(UPLOAD_TYPES),
        accept_multiple_files=True,
        key="uploads",
    )
    added, refused = state.add_uploads(uploads or [])
    for message in refused:
        st.error(f"Not added: {widgets.plain(message)}")
    if added:
        st.success(f"Added {len(added)} image{'s' if len(added) > 1 else ''} to the case list.")
    case = state.items()
    if not case:
        return
    st.subheader(f"Case list ({len(case)})")
    st.dataframe(
        [
            {"file": it.filename, "size": f"{it.width} x {it.height}", "sha256": it.item_hash[:16]}
            for it in case.values()
        ],
        hide_index=True,
    )
    if model_set is None:
        return
    # The first of the new uploads is previewed, and the Review page starts there.
    item = added[0] if added else list(case.values())[state.current_index()]
    st.subheader(f"Preview: {widgets.plain(item.filename)}")
    review_patch_preview(item, model_set)
    if added:
        state.set_index(list(case).index(item.item_hash))
    st.page_link("ui/pages/review.py", label="Review these images", icon=":material/arrow_forward:")


main()
