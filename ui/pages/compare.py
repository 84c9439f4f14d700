"""Compare: how the three models' maps agree with readers' regions, paired per read, with a tie
band, 95% intervals and a paired test; how models' predictions agree with readers' labels
(through the study's label mapping); and how readers agree with each other.

Every figure uses each reader's latest read of each kind. Imported references are left out
unless chosen; reads saved with "no region" have no scores and are left out of the map
comparisons (counted as undefined).
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import streamlit as st

from annotations.records import StudyRecord
from annotations.store import Store, StoreError
from lran_core.maps import normalise, overlay
from review.compare import (
    DEFAULT_TIE_BANDS,
    SCORE_LABELS,
    SCORE_NAMES,
    cohen_kappa_ci,
    compare_models,
    fleiss_kappa_ci,
    reader_dice,
)
from review.modelsets import CheckpointError, NoWeightsError, display_name
from review.studies import label_set
from ui import auth, cache, server, sidebar, widgets
from ui.views import blinding

READ_KINDS = {"unaided": "unaided (blinded)", "aided": "aided", "open": "open study"}
MAP_NAMES = {"cam": "CAM", "attention": "attention", "probability": "probability"}
GALLERY_LIMIT = 6


def filters(
    study: StudyRecord, reads: pd.DataFrame, person: auth.Person
) -> tuple[pd.DataFrame, str, str]:
    """The filter widgets; gives the reads they let through, the score and the map."""
    c1, c2, c3, c4 = st.columns(4)
    readers = sorted(r for r in reads["reader"].unique() if not r.startswith("reference:"))
    if not person.admin:
        readers = [r for r in readers if r == person.name]
    chosen_readers = c1.multiselect(
        "Readers",
        readers,
        key="c_readers",
        help="Empty: every reader" + ("" if person.admin else " (your reads)"),
    )
    kinds = [k for k in READ_KINDS if k in set(reads["read_kind"])]
    default = ["unaided"] if "unaided" in kinds else kinds[:1]
    chosen_kinds = c2.multiselect(
        "Read", kinds, default=default, key="c_kinds", format_func=READ_KINDS.__getitem__
    )
    item_kinds = c3.multiselect(
        "Images", ["patch", "region"], key="c_items", help="Empty: patches and regions"
    )
    with_references = c4.toggle("Include imported references", value=False, key="c_refs")
    keep = reads["read_kind"].isin(chosen_kinds + (["reference"] if with_references else []))
    if chosen_readers:
        keep &= reads["reader"].isin(chosen_readers) | (reads["read_kind"] == "reference")
    elif not person.admin:
        keep &= (reads["reader"] == person.name) | (reads["read_kind"] == "reference")
    if item_kinds:
        keep &= reads["kind"].isin(item_kinds)
    s1, s2 = st.columns(2)
    score = s1.selectbox(
        "Score",
        SCORE_NAMES,
        index=SCORE_NAMES.index("energy_pointing_game"),
        key="c_score",
        format_func=SCORE_LABELS.__getitem__,
    )
    map_name = s2.selectbox("Map", list(MAP_NAMES), key="c_map", format_func=MAP_NAMES.__getitem__)
    return reads[keep], score, map_name


def model_comparison(scores: pd.DataFrame, score: str, map_name: str) -> None:
    """Each model's mean with its interval, and the three paired comparisons."""
    st.subheader("Maps against the readers' regions")
    rows = scores[scores["map"] == map_name]
    if rows.empty:
        st.info(f"No read has a {MAP_NAMES[map_name]} score yet with these filters.")
        return
    result = compare_models(rows, score, map_name)
    st.table(
        pd.DataFrame(
            [
                {
                    "model": display_name(m.model),
                    "mean": m.mean,
                    "95% CI": _ci(m.ci),
                    "n": m.n,
                    "undefined": m.undefined,
                }
                for m in result.means
            ]
        ).set_index("model")
    )
    band = DEFAULT_TIE_BANDS[score]
    st.caption(
        f"Paired by read (the same region for both models); differences within ±{band:g} count "
        "as ties; 95% bootstrap intervals of the mean difference; Wilcoxon signed-rank test."
    )
    for pair in result.pairs:
        st.markdown(f"- {widgets.plain(pair.summary())}")


def _ci(ci: tuple[float, float] | None) -> str:
    return "-" if ci is None else f"{ci[0]:.3f} to {ci[1]:.3f}"


def label_agreement(predictions: pd.DataFrame, study: StudyRecord) -> None:
    """Each model's prediction against the readers' labels, through the label mapping."""
    st.subheader("Models against the readers' diagnoses")
    labels = label_set(study.label_set)
    if predictions.empty:
        st.info("No read with predictions yet.")
        return
    class_names = sorted({c for probs in predictions["probabilities"] for c in probs})
    try:
        class_names = cache.model_set(study.model_set).class_names
    except (NoWeightsError, CheckpointError):
        pass
    mapping = labels.mapping(class_names)
    st.caption(
        "Reader labels compared as: "
        + "; ".join(f"{label} → {cls}" for label, cls in mapping.items())
        + "; non-diagnostic / unsure left out."
    )
    mapped = predictions.assign(expected=predictions["label"].map(mapping)).dropna(
        subset=["expected"]
    )
    if mapped.empty:
        st.info("No diagnosis that maps to the models' classes yet.")
        return
    rows = []
    for model, group in mapped.groupby("model", sort=False):
        kappa = cohen_kappa_ci(
            pd.Series(list(group["expected"]), index=list(group["review_id"])),
            pd.Series(list(group["predicted_class"]), index=list(group["review_id"])),
        )
        rows.append(
            {
                "model": display_name(str(model)),
                "reads": len(group),
                "agreement": float((group["predicted_class"] == group["expected"]).mean()),
                "Cohen's kappa": kappa.summary(),
            }
        )
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="model_labels")


def reader_agreement(store: Store, reads: pd.DataFrame, person: auth.Person) -> None:
    """With two or more readers: kappa of labels and Dice of regions, with intervals, for each
    kind of read apart (a reader's unaided and aided reads of a case are two different reads)."""
    people = reads[reads["read_kind"] != "reference"]
    readers = sorted(people["reader"].unique())
    st.subheader("Readers against each other")
    if len(readers) < 2:
        st.info("Reader agreement needs reads of the same cases by two readers.")
        return
    names = {
        r: r if person.admin or r == person.name else f"reader {i + 1}"
        for i, r in enumerate(readers)
    }
    rows, fleiss = [], []
    for kind, of_kind in people.groupby("read_kind", sort=False):
        labels = of_kind.pivot_table(
            index="item_hash", columns="reader", values="label", aggfunc="last"
        )
        present = [r for r in readers if r in labels.columns]
        for a, b in itertools.combinations(present, 2):
            masks = {
                r: {
                    row.item_hash: store.get_mask(int(row.review_id))
                    for row in of_kind[of_kind["reader"] == r].itertuples()
                    if not row.no_region
                }
                for r in (a, b)
            }
            rows.append(
                {
                    "read": READ_KINDS[str(kind)],
                    "readers": f"{names[a]} / {names[b]}",
                    "labels": cohen_kappa_ci(labels[a].dropna(), labels[b].dropna()).summary(),
                    "regions": reader_dice(masks[a], masks[b]).summary(),
                }
            )
        if len(present) > 2:
            fleiss.append(f"{READ_KINDS[str(kind)]}: {fleiss_kappa_ci(labels[present]).summary()}")
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="reader_pairs")
    for line in fleiss:
        st.markdown(widgets.plain(line))


def gallery(store: Store, reads: pd.DataFrame, study: StudyRecord) -> None:
    """A few reads: the image, the reader's region and each model's CAM of its predicted class,
    on a scale shared by the CAMs of one class."""
    shown = reads[(reads["read_kind"] != "reference") & (reads["kind"] == "patch")]
    shown = shown.tail(GALLERY_LIMIT)
    if shown.empty:
        return
    try:
        model_set = cache.model_set(study.model_set)
    except (NoWeightsError, CheckpointError):
        return
    st.subheader("Reads and maps")
    for row in shown.to_dict("records"):
        item = cache.case_image(row["item_hash"], row["filename"])
        if item is None:
            continue
        outputs = cache.patch_maps(model_set, item)
        # Each model's CAM of its predicted class, on one scale per class: one class's evidence
        # is not on another's scale.
        cams: dict[str, np.ndarray] = {}
        for predicted in {o.predicted for o in outputs}:
            group = [o for o in outputs if o.predicted == predicted]
            stacked = normalise(np.stack([o.cams[predicted] for o in group]), shared=True)
            cams.update(zip([o.variant for o in group], stacked, strict=True))
        big = np.asarray(widgets.for_display(item.rgb))
        region = widgets.region_overlay(item.rgb, store.get_mask(int(row["review_id"])))
        kind = str(row["read_kind"])
        st.markdown(
            f"**{widgets.plain(row['filename'])}** · {widgets.plain(row['reader'])} · "
            f"{widgets.plain(row['label'])} · {READ_KINDS.get(kind, kind)}"
        )
        widgets.show_gallery(
            [
                ("patch", big),
                ("reader's region", region),
                *[
                    (
                        f"{display_name(o.variant)} CAM ({o.class_names[o.predicted]})",
                        overlay(big, cams[o.variant]),
                    )
                    for o in outputs
                ],
            ]
        )


def main() -> None:
    """The Compare page."""
    st.title("Compare")
    person, study = auth.person(), sidebar.study()
    if person is None or study is None:
        st.info("Enter your name as **Reader** in the sidebar (or sign in) to see comparisons.")
        return
    try:
        store = cache.store(cache.database_url())
        reads = store.reviews_frame(study_id=study.study_id, latest_only=True)
        scores = store.scores_frame(study_id=study.study_id, latest_only=True)
        predictions = store.predictions_frame(study_id=study.study_id, latest_only=True)
    except StoreError as err:
        st.error(f"The review database cannot be read: {widgets.plain(server.reader_message(err))}")
        return
    if reads.empty:
        st.info(f"No reads saved in {widgets.plain(study.name)} yet: save some on the Review page.")
        return
    # The study as its worklist stands: a removed case's reads stay in History, not here.
    removed = ~reads["case_id"].isin({c.case_id for c in store.cases(study.study_id)})
    if removed.any():
        n = int(removed.sum())
        verb = "are" if n != 1 else "is"
        st.caption(f"{n} read{'s' if n != 1 else ''} of removed cases {verb} left out.")
        reads = reads[~removed]
    reads = blinding.reads_shown(store, study, reads, person, "c_unread")
    if reads.empty:
        return
    chosen, score, map_name = filters(study, reads, person)
    if chosen.empty:
        st.info("No read matches these filters.")
        return
    ids = set(chosen["review_id"])
    st.caption(
        f"{len(chosen)} reads of {chosen['item_hash'].nunique()} cases by "
        f"{chosen['reader'].nunique()} reader{'s' if chosen['reader'].nunique() != 1 else ''} "
        "(latest read of each kind)."
    )
    model_comparison(scores[scores["review_id"].isin(ids)], score, map_name)
    label_agreement(predictions[predictions["review_id"].isin(ids)], study)
    reader_agreement(store, chosen, person)
    gallery(store, chosen, study)


main()
