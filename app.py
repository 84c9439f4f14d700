"""LRAN Review: a workbench in which pathologists review what a breast-histology classifier sees.

Run with ``streamlit run app.py``. This script is the entry point: it holds the Start page
(who is reviewing, which model set, the upload) and the navigation to the other pages. The
reader and model set live in the sidebar so that every page shows, and keeps, them.
"""

from __future__ import annotations

import streamlit as st

import lran_core
from ui import engine, layout, session, widgets


def model_set_status() -> list[lran_core.LRANClassifier] | None:
    """Loads the chosen model set and describes it; None (with the reason shown) otherwise."""
    name = layout.model_set()
    if not name:
        st.error(
            "No trained weights are installed, so there are no predictions or maps yet. "
            f"Install a model set under `{engine.models_dir()}` (train one with "
            "`python -m lran_core.train`) or point `LRAN_MODELS_DIR` at a folder of model sets. "
            "You can still upload images."
        )
        return None
    try:
        models = engine.load_models(name, engine.models_dir())
    except lran_core.NoWeightsError as err:
        st.error(str(err))
        return None
    except lran_core.CheckpointError as err:
        st.error(f"The model set {name!r} cannot be loaded: {widgets.plain(str(err))}")
        return None
    first = next(iter(models.values())).meta
    st.caption(
        f"Model set **{name}**: {', '.join(models)} · classes {', '.join(first.class_names)} · "
        f"input {first.input_size} px"
        + (f" at {first.mpp:g} µm/px" if first.mpp else "")
        + (f" · trained on {first.data}" if first.data else "")
    )
    return list(models.values())


def start_page() -> None:
    """What the tool is, and the upload that builds the case list."""
    st.title("LRAN Review")
    st.markdown(
        "A workbench for reviewing what a breast-histology classifier looks at. For each patch "
        "you see three models' predictions (a ResNet-18 base, R-RAN with residual attention, "
        "R-LRAN with locally gated attention) and their maps: class activation maps, attention "
        "and gates. You outline the regions of diagnostic relevance and give your own "
        "diagnosis; every map is then scored against your region. **Research use only: not for "
        "diagnosis.**"
    )
    if not layout.reader():
        st.info("Enter your name as **Reader** in the sidebar; it is stored with every review.")
    models = model_set_status()

    uploads = st.file_uploader(
        "Patches or regions to review (PNG, JPEG or TIFF; several at once)",
        type=session.UPLOAD_TYPES,
        accept_multiple_files=True,
        key="uploads",
    )
    added, refused = session.add_uploads(uploads or [])
    for message in refused:
        st.error(f"Not added: {widgets.plain(message)}")
    if added:
        st.success(f"Added {len(added)} patch{'es' if len(added) > 1 else ''} to the case list.")

    case = session.items()
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
    if models is None:
        return
    # The first of the new uploads is previewed, and the Review page starts there.
    item = added[0] if added else list(case.values())[session.current_index()]
    st.subheader(f"Preview: {widgets.plain(item.filename)}")
    if engine.looks_like_region(layout.model_set(), engine.models_dir(), item.width, item.height):
        # Mapping a region takes a tile-by-tile pass of every model, at a resolution the reader
        # confirms on the Review page: the preview shows the image only.
        st.image(widgets.for_display(item.rgb, widgets.REGION_SIDE), caption="region")
        st.info(
            f"{item.width} x {item.height} px is larger than the models' patch: the Review page "
            "maps it as a region, tile by tile, "
            + (f"at {item.mpp:g} µm/px (from its resolution tags)." if item.mpp else
               "once you give its microns per pixel.")
        )
    else:
        outputs = engine.explain(
            layout.model_set(), engine.models_dir(), item.item_hash, item.rgb
        )
        widgets.show_probabilities(outputs)
        panels = widgets.map_panels(item.rgb, outputs, None, 0.5, "jet", shared=False)
        widgets.show_gallery([("patch", widgets.for_display(item.rgb)), *panels])
    if added:
        session.set_index(list(case).index(item.item_hash))
    st.page_link("pages/1_Review.py", label="Review these patches",
                 icon=":material/arrow_forward:")


layout.page_setup("Start")
start_page()
