"""Compare RAN vs LRAN over the saved reviews: galleries, agreement charts, labels, readers.

Every figure uses each reader's latest version of each review. Maps can only be shown for
patches uploaded in this session (the store keeps regions and scores, not images). A reference
annotation stored with a region (reader 'reference:<file>') takes part in the region Dice
between readers, but not in the label kappas: its label names what was annotated, not a
diagnosis in the models' classes.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import plotly.express as px
import streamlit as st

from annotations.records import REFERENCE_PREFIX, UNSURE
from annotations.store import Store, StoreError
from lran_core.maps import normalise, overlay
from review.compare import SCORE_NAMES, cohen_kappa, fleiss_kappa, region_dice
from review.items import ImageItem
from review.modelsets import CheckpointError, NoWeightsError, display_name
from review.regions import RegionError
from ui import cache, sidebar, state, widgets

GALLERY_LIMIT = 12


def kappa_text(value: float) -> str:
    """Kappa for display; NaN (one label used throughout) is undefined, not a number."""
    return "undefined" if math.isnan(value) else f"{value:.3f}"


def attention_models(models: list[str]) -> tuple[str | None, str | None]:
    """The RAN and LRAN variants among stored model names (None where absent)."""
    ran = next((m for m in models if m.endswith("-ran")), None)
    lran = next((m for m in models if m.endswith("-lran")), None)
    return ran, lran


def gallery(store: Store, reviews: pd.DataFrame, ran: str, lran: str) -> None:
    """Patch, reader's region and both attention maps, for reviews of patches in this session."""
    st.subheader("Attention side by side")
    case = state.items()
    shown = reviews[reviews["item_hash"].isin(case)].tail(GALLERY_LIMIT)
    if shown.empty:
        st.info(
            "Upload the reviewed patches on the Start page to see their maps here "
            "(the database stores regions and scores, not images)."
        )
        return
    for row in shown.itertuples():
        item = case[row.item_hash]
        pair = attention_pair(row.model_set, item, row.kind, row.mpp, ran, lran)
        if pair is None:
            continue
        # One scale for both attention maps: the comparison is the point of this page.
        both = normalise(np.stack(pair), shared=True)
        big = np.asarray(widgets.for_display(item.rgb))
        region = widgets.region_overlay(item.rgb, store.get_mask(row.review_id))
        st.markdown(
            f"**{widgets.plain(item.filename)}** · reader {widgets.plain(row.reader)} "
            f"· label {widgets.plain(row.label)}"
        )
        widgets.show_gallery(
            [
                (row.kind, big),
                ("reader's region", region),
                (f"{display_name(ran)} attention", overlay(big, both[0])),
                (f"{display_name(lran)} attention", overlay(big, both[1])),
            ]
        )


def attention_pair(
    set_name: str, item: ImageItem, kind: str, mpp: float | None, ran: str, lran: str
) -> tuple[np.ndarray, np.ndarray] | None:
    """The RAN and LRAN attention maps of an item as it was reviewed: the whole image as one
    patch, or a region's stitched maps at its stored mpp (None when a model or the set is
    missing, or the region cannot be mapped)."""
    try:
        model_set = cache.model_set(set_name)
    except (NoWeightsError, CheckpointError):
        return None
    if kind == "region":
        try:
            result = cache.region_maps(
                model_set, item, float(mpp or 0), len(model_set.class_names) - 1
            )
        except RegionError:
            return None
        attention = {name: m.attention for name, m in result.maps.items()}
    else:
        attention = {o.variant: o.attention for o in cache.patch_maps(model_set, item)}
    if attention.get(ran) is None or attention.get(lran) is None:
        return None
    return attention[ran], attention[lran]


def agreement_charts(scores: pd.DataFrame, ran: str | None, lran: str | None) -> None:
    """Agreement per model per patch, and how often LRAN beats RAN."""
    st.subheader("Agreement with the readers' regions")
    c1, c2 = st.columns(2)
    score = c1.selectbox(
        "Score", SCORE_NAMES, index=SCORE_NAMES.index("energy_pointing_game"), key="score"
    )
    names = sorted(scores["map"].unique())
    # Every model has a CAM, so it is the one map all three can be compared on.
    map_name = c2.selectbox(
        "Map", names, index=names.index("cam") if "cam" in names else 0, key="map"
    )
    chosen = scores[scores["map"] == map_name].copy()
    chosen[score] = chosen[score].astype(float)
    chosen["patch"] = chosen["filename"] + " · " + chosen["reader"]
    fig = px.bar(
        chosen.assign(model=chosen["model"].map(display_name)),
        x="patch",
        y=score,
        color="model",
        barmode="group",
        title=f"{score} of the {map_name} map, per patch and reader",
    )
    st.plotly_chart(fig, key="per_patch")
    if not (ran and lran):
        return
    paired = chosen.pivot_table(index="review_id", columns="model", values=score)
    if ran not in paired or lran not in paired:
        st.caption(f"No review has a {map_name} map from both {ran} and {lran}.")
        return
    paired = paired[[ran, lran]].dropna()
    outcome = np.select(
        [paired[lran] > paired[ran], paired[lran] < paired[ran]],
        ["LRAN better", "RAN better"],
        "tie",
    )
    counts = (
        pd.Series(outcome)
        .value_counts()
        .reindex(["LRAN better", "tie", "RAN better"], fill_value=0)
    )
    wins = int(counts["LRAN better"])
    st.metric(
        f"LRAN beats RAN ({score}, {map_name})",
        f"{wins} of {len(paired)}",
        help="Reviews where R-LRAN's map agrees better with the reader's region than R-RAN's.",
    )
    st.plotly_chart(
        px.bar(
            x=counts.index,
            y=counts.values,
            labels={"x": "", "y": "reviews"},
            title="LRAN vs RAN, per review",
        ),
        key="wins",
    )


def label_agreement(predictions: pd.DataFrame) -> None:
    """Each model's prediction against the reader's label: accuracy and Cohen's kappa."""
    st.subheader("Models vs readers' labels")
    sure = predictions[predictions["label"] != UNSURE]
    if sure.empty:
        st.info(f"No labels other than '{UNSURE}' yet.")
        return
    rows = []
    for model, group in sure.groupby("model", sort=False):
        rows.append(
            {
                "model": display_name(model),
                "reviews": len(group),
                "accuracy": float((group["predicted_class"] == group["label"]).mean()),
                "Cohen's kappa": kappa_text(
                    cohen_kappa(list(group["label"]), list(group["predicted_class"]))
                ),
            }
        )
    table = pd.DataFrame(rows)
    st.dataframe(table, hide_index=True, key="model_labels")
    st.plotly_chart(
        px.bar(
            table,
            x="model",
            y="accuracy",
            range_y=[0, 1],
            title=f"Accuracy against readers' labels ('{UNSURE}' left out)",
        ),
        key="accuracy",
    )


def reader_agreement(store: Store, reviews: pd.DataFrame) -> None:
    """With two or more readers: Dice of their regions per shared patch, kappa of labels."""
    readers = sorted(reviews["reader"].unique())
    if len(readers) < 2:
        return
    st.subheader("Agreement between readers")
    by_item = reviews.groupby("item_hash")
    dice_rows = []
    for item_hash, group in by_item:
        if group["reader"].nunique() < 2:
            continue
        masks = {r.reader: store.get_mask(r.review_id) for r in group.itertuples()}
        for a, b in itertools.combinations(sorted(masks), 2):
            dice_rows.append(
                {
                    "patch": group["filename"].iloc[0],
                    "item": item_hash[:12],
                    "readers": f"{a} / {b}",
                    "Dice": region_dice(masks[a], masks[b]),
                }
            )
    if not dice_rows:
        st.info("No patch has been reviewed by two readers yet.")
        return
    dice = pd.DataFrame(dice_rows)
    st.plotly_chart(
        px.strip(
            dice,
            x="readers",
            y="Dice",
            hover_data=["patch"],
            range_y=[0, 1],
            title="Dice of two readers' regions, per shared patch",
        ),
        key="reader_dice",
    )
    labellers = [r for r in readers if not r.startswith(REFERENCE_PREFIX)]
    if len(labellers) < 2:
        return
    labels = reviews.pivot_table(
        index="item_hash", columns="reader", values="label", aggfunc="first"
    )[labellers]
    pairs = []
    for a, b in itertools.combinations(labellers, 2):
        both = labels[[a, b]].dropna()
        if len(both):
            pairs.append(
                {
                    "readers": f"{a} / {b}",
                    "shared patches": len(both),
                    "Cohen's kappa": kappa_text(cohen_kappa(list(both[a]), list(both[b]))),
                }
            )
    st.dataframe(pd.DataFrame(pairs), hide_index=True, key="reader_kappa")
    complete = labels.dropna()
    if len(labellers) > 2 and len(complete):
        st.metric(
            f"Fleiss' kappa ({len(labellers)} readers, {len(complete)} patches seen by all)",
            kappa_text(fleiss_kappa(complete.values.tolist())),
        )


def main() -> None:
    """The Compare page."""
    st.title("Compare RAN vs LRAN")
    try:
        store = cache.store(cache.database_url())
        reviews = store.reviews_frame(latest_only=True)
        scores = store.scores_frame(latest_only=True)
        predictions = store.predictions_frame(latest_only=True)
    except StoreError as err:
        st.error(f"The review database cannot be read: {err}")
        return
    if reviews.empty:
        st.info("No saved reviews yet: save some on the Review page.")
        return
    sets = sorted(reviews["model_set"].unique())
    current = sidebar.model_set()
    chosen = st.selectbox(
        "Reviews made with model set",
        sets,
        index=sets.index(current) if current in sets else 0,
        key="compare_set",
    )
    reviews = reviews[reviews["model_set"] == chosen]
    scores = scores[scores["model_set"] == chosen]
    predictions = predictions[predictions["model_set"] == chosen]
    st.caption(
        f"{len(reviews)} reviews of {reviews['item_hash'].nunique()} patches by "
        f"{reviews['reader'].nunique()} readers (latest version of each)."
    )
    ran, lran = attention_models(sorted(scores["model"].unique()))
    if ran and lran and sidebar.model_set() == chosen:
        gallery(store, reviews, ran, lran)
    if not scores.empty:
        agreement_charts(scores, ran, lran)
    label_agreement(predictions)
    reader_agreement(store, reviews)


main()
