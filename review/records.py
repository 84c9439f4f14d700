"""The records a save stores: a reader's review of a patch or a region, and an imported
reference annotation's scores. Built here, once, for the app and the command line alike."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from annotations.geojson import mask_to_geojson
from annotations.records import REFERENCE_PREFIX, ReviewRecord, ScoreRecord
from lran_core.data import parse_idc_name
from review.items import ImageItem, Reference
from review.patches import PatchMaps, patch_predictions
from review.regions import RegionResult
from review.scoring import DEFAULT_TOLERANCE_UM, score_maps
from review.studies import EVERYTHING

# The colour of readers' regions in the app, carried in exported GeoJSON so that QuPath shows
# them alike; references are white, as outlined in the app.
READER_RGB = (0, 229, 255)
REFERENCE_RGB = (255, 255, 255)


@dataclass(frozen=True)
class Read:
    """How a read was made, stored with it: its study and case; ``kind`` ('unaided': blinded,
    only the image visible; 'aided': after the reveal, ``parent_id`` its unaided read; 'open':
    an unblinded study); ``visible`` (what was on screen); the reader's ``confidence`` (1-5)
    and ``note``; ``no_region`` (the reader said there is none); ``anonymised`` (letter ->
    model the maps were shown under); ``best_map`` (the map the reader rated as matching their
    region best); ``label_set``."""

    study_id: int | None = None
    case_id: int | None = None
    kind: str = "open"
    blinded: bool = False
    visible: tuple[str, ...] = ()
    confidence: int | None = None
    note: str | None = None
    no_region: bool = False
    parent_id: int | None = None
    anonymised: dict[str, str] | None = field(default=None)
    best_map: str | None = None
    label_set: str | None = None

    def fields(self) -> dict[str, Any]:
        """The ReviewRecord fields this read sets."""
        return {
            "study_id": self.study_id,
            "case_id": self.case_id,
            "read_kind": self.kind,
            "blinded": self.blinded,
            "visible": list(self.visible),
            "confidence": self.confidence,
            "note": self.note,
            "no_region": self.no_region,
            "parent_id": self.parent_id,
            "anonymised": self.anonymised,
            "best_map": self.best_map,
            "label_set": self.label_set,
        }


def region_geojson(
    mask: np.ndarray,
    item: ImageItem,
    mpp: float | None,
    name: str,
    colour: tuple[int, int, int],
    **properties: Any,
) -> dict[str, Any]:
    """A region as GeoJSON whose properties let a slide viewer place it: the image's name and
    size, its µm/px and, for an IDC patch, the patch's offset in the patient's slide (from its
    file name), plus ``properties``. Coordinates are the image's pixels."""
    props: dict[str, Any] = {
        "classification": {"name": name, "color": list(colour)},
        "image": item.filename,
        "image_size": [item.width, item.height],
        "mpp": mpp,
        **properties,
    }
    idc = parse_idc_name(item.filename)
    if idc is not None:
        props["slide_offset"] = [idc.x, idc.y]
        props["patient"] = idc.patient
    return mask_to_geojson(mask, props)


def patch_record(
    item: ImageItem,
    *,
    reader: str,
    model_set: str,
    label: str,
    mask: np.ndarray,
    outputs: list[PatchMaps],
    target: int | None,
    read: Read = Read(),
    tolerance_um: float = DEFAULT_TOLERANCE_UM,
) -> ReviewRecord:
    """A reader's review of a patch: the models' probabilities, and every map (CAM of
    ``target``, or of each model's predicted class, attention, gates) scored against ``mask``
    (every score None when the mask is empty)."""
    maps = {out.variant: out.maps(target) for out in outputs}
    return _read_record(
        item,
        "patch",
        reader,
        model_set,
        label,
        mask,
        patch_predictions(outputs),
        score_maps(maps, mask, item.mpp, tolerance_um),
        item.mpp,
        None,
        read,
    )


def region_record(
    item: ImageItem,
    *,
    reader: str,
    model_set: str,
    label: str,
    mask: np.ndarray,
    result: RegionResult,
    read: Read = Read(),
    tolerance_um: float = DEFAULT_TOLERANCE_UM,
) -> ReviewRecord:
    """A reader's review of a region: each model's area-weighted mean probabilities, and its
    probability, CAM and attention maps scored on the whole region (on a grid of at most
    review.scoring.SCORE_SIDE px a side)."""
    return _read_record(
        item,
        "region",
        reader,
        model_set,
        label,
        mask,
        region_predictions(result),
        score_maps(result.layers(), mask, result.mpp, tolerance_um),
        result.mpp,
        result.overlap,
        read,
    )


def _read_record(
    item: ImageItem,
    kind: str,
    reader: str,
    model_set: str,
    label: str,
    mask: np.ndarray,
    predictions: dict[str, dict[str, float]],
    scores: list[ScoreRecord],
    mpp: float | None,
    overlap: float | None,
    read: Read,
) -> ReviewRecord:
    return ReviewRecord(
        item_hash=item.item_hash,
        filename=item.filename,
        width=item.width,
        height=item.height,
        kind=kind,
        reader=reader,
        model_set=model_set,
        label=label,
        mask=mask,
        geojson=region_geojson(mask, item, mpp, "Region", READER_RGB, reader=reader, label=label),
        predictions=predictions,
        scores=scores,
        mpp=mpp,
        overlap=overlap,
        **read.fields(),
    )


def region_predictions(result: RegionResult) -> dict[str, dict[str, float]]:
    """Each model's class probabilities averaged over the region's area (what a review stores
    as its predictions for a region)."""
    return {
        model: {c: float(p.mean()) for c, p in zip(result.class_names, m.probs, strict=True)}
        for model, m in result.maps.items()
    }


def reference_record(
    item: ImageItem,
    reference: Reference,
    *,
    importer: str,
    model_set: str,
    result: RegionResult,
    study_id: int | None = None,
    case_id: int | None = None,
    tolerance_um: float = DEFAULT_TOLERANCE_UM,
) -> ReviewRecord:
    """An imported reference's region and every model's maps scored against it, stored as a
    review of its own by the reader ``reference:<file name>``, with no predictions (the
    reference gave no diagnosis in the models' classes)."""
    reader = f"{REFERENCE_PREFIX}{reference.filename}"[:200]
    return ReviewRecord(
        item_hash=item.item_hash,
        filename=item.filename,
        width=item.width,
        height=item.height,
        kind="region",
        reader=reader,
        model_set=model_set,
        label=reference.summary[:100],
        mask=reference.region,
        geojson=region_geojson(
            reference.region, item, result.mpp, "Reference", REFERENCE_RGB, reader=reader
        ),
        scores=score_maps(result.layers(), reference.region, result.mpp, tolerance_um),
        mpp=result.mpp,
        overlap=result.overlap,
        note=f"{reference.source} {reference.filename} (sha256 {reference.data_hash[:16]}); "
        "region = labels above 0",
        is_reference=True,
        read_kind="reference",
        imported_by=importer,
        study_id=study_id,
        case_id=case_id,
        visible=list(EVERYTHING),
    )
