"""What one save stores, as typed records, and the checks a record passes before any database
work. Every problem is a ValueError naming the field, so callers have one error to show."""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from annotations.schema import (
    FILENAME_LENGTH,
    ITEM_KINDS,
    LABEL_LENGTH,
    NAME_LENGTH,
    NOTE_LENGTH,
    READ_KINDS,
)
from annotations.scores import SCORE_NAMES, Agreement

UNSURE = "unsure"  # the reader label for "cannot decide", beside the class names
# Reader names of imported reference annotations start with this; people's names never do.
REFERENCE_PREFIX = "reference:"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class ScoreRecord:
    """Agreement of one map of one model with a review's region, as stored.

    ``model`` is a variant name (``resnet18-lran``), ``map`` a map name (``cam``,
    ``attention``, ``gate1``, ``probability``), ``cam_class`` the class a CAM or probability map
    was made for (None for attention and gates), ``tolerance_px`` / ``tolerance_um`` the
    pointing game's tolerance in image pixels and micrometres (None when the scale is unknown).
    """

    model: str
    map: str
    cam_class: str | None
    pointing_game: bool | None
    energy_pointing_game: float | None
    iou_50: float | None
    iou_mean: float | None
    dice_50: float | None
    dice_mean: float | None
    auroc: float | None
    tolerance_px: float | None = None
    tolerance_um: float | None = None

    @classmethod
    def of(
        cls,
        model: str,
        map_name: str,
        cam_class: str | None,
        scores: Agreement,
        tolerance_um: float | None = None,
    ) -> ScoreRecord:
        """The record of :func:`annotations.scores.agreement`'s result for one map."""
        return cls(
            model=model,
            map=map_name,
            cam_class=cam_class,
            pointing_game=scores.pointing_game,
            energy_pointing_game=scores.energy_pointing_game,
            iou_50=scores.iou_50,
            iou_mean=scores.iou_mean,
            dice_50=scores.dice_50,
            dice_mean=scores.dice_mean,
            auroc=scores.auroc,
            tolerance_px=scores.tolerance_px,
            tolerance_um=tolerance_um,
        )

    def values(self) -> dict[str, bool | float | None]:
        """The scores by name (SCORE_NAMES order)."""
        return {name: getattr(self, name) for name in SCORE_NAMES}


@dataclass
class ReviewRecord:
    """Everything one save stores.

    ``mask``: bool (height, width) region of the image; ``geojson``: the same region as GeoJSON
    (:func:`annotations.geojson.mask_to_geojson`); ``predictions``: model -> class name ->
    probability; ``scores``: one :class:`ScoreRecord` per (model, map). ``mpp``: the microns per
    pixel the maps were made at; ``overlap``: a region's tile overlap (None for a patch);
    ``is_reference``: an imported reference annotation (reader ``reference:<file>``), imported
    by ``imported_by``.

    In a reader study: ``study_id``, ``case_id``; ``read_kind`` (unaided: a blinded first read,
    locked once saved; aided: after the maps were revealed, linked to its unaided read by
    ``parent_id``; open: an unblinded study's read; reference); ``blinded`` and ``visible``
    (what was on screen); ``confidence`` 1-5; ``no_region`` (the reader said there is none:
    the mask is empty and every score None); ``anonymised`` (letter -> model the maps were
    shown as); ``best_map``; ``label_set``. ``created_at`` is set only when restoring a study.
    """

    item_hash: str
    filename: str
    width: int
    height: int
    kind: str
    reader: str
    model_set: str
    label: str
    mask: np.ndarray
    geojson: dict[str, Any]
    predictions: dict[str, dict[str, float]] = field(default_factory=dict)
    scores: list[ScoreRecord] = field(default_factory=list)
    mpp: float | None = None
    overlap: float | None = None
    note: str | None = None
    is_reference: bool = False
    imported_by: str | None = None
    study_id: int | None = None
    case_id: int | None = None
    read_kind: str = "open"
    blinded: bool = False
    visible: list[str] = field(default_factory=list)
    confidence: int | None = None
    no_region: bool = False
    parent_id: int | None = None
    anonymised: dict[str, str] | None = None
    best_map: str | None = None
    label_set: str | None = None
    created_at: datetime | None = None


@dataclass(frozen=True)
class StudyRecord:
    """A reader study as stored (see annotations.schema.Study)."""

    study_id: int
    name: str
    label_set: str
    blinding: str
    anonymise: bool
    model_set: str
    created_at: datetime
    created_by: str | None

    @property
    def blinded(self) -> bool:
        """Whether model output stays hidden until a reader's unaided read is saved."""
        return self.blinding == "blinded"


@dataclass(frozen=True)
class ItemRecord:
    """An image as stored: content hash, the name it was added as, size, kind, µm/px."""

    item_hash: str
    filename: str
    width: int
    height: int
    kind: str
    mpp: float | None = None


@dataclass(frozen=True)
class CaseRecord:
    """A case of a study: its item, worklist position, group (patient, folder or file name)
    and whether it was removed; when and by whom it was added and removed (UTC; None where
    not known or not removed)."""

    case_id: int
    study_id: int
    item: ItemRecord
    position: int
    group: str
    removed: bool
    added_at: datetime | None = None
    added_by: str | None = None
    removed_at: datetime | None = None
    removed_by: str | None = None


@dataclass(frozen=True)
class ReaderRecord:
    """An account: name, argon2 password hash (None: signs in through a trusted proxy only),
    role ('reader' or 'admin') and whether it is disabled."""

    name: str
    password_hash: str | None
    role: str
    disabled: bool


@dataclass(frozen=True)
class SavedReview:
    """Where a save landed: the review's id and its version for (item, reader)."""

    review_id: int
    version: int


def content_hash(data: bytes) -> str:
    """The item key of an image: the lower-case hex sha256 of its file bytes."""
    return hashlib.sha256(data).hexdigest()


def finite_or_none(value: Any, what: str) -> float | None:
    """``value`` as a float, None for None or NaN (undefined); ValueError for anything else."""
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number or None, got {value!r}") from None
    # NaN means "undefined" for a score; SQL has NULL for that.
    if math.isnan(number):
        return None
    if math.isinf(number):
        raise ValueError(f"{what} must be finite, got {value!r}")
    return number


def check_text(value: Any, name: str, limit: int, required: bool = True) -> None:
    if value is None and not required:
        return
    if not isinstance(value, str) or (required and not value.strip()):
        raise ValueError(f"{name} must be a non-empty string")
    if len(value) > limit:
        raise ValueError(f"{name} is {len(value):,} characters long; at most {limit:,} are kept")


def check_item(item: ItemRecord) -> None:
    """ValueError for an image a database would refuse or store wrongly: the hash, the file
    name, the kind, the size, the µm/px."""
    if not isinstance(item.item_hash, str) or not _SHA256.match(item.item_hash):
        raise ValueError("item_hash must be the lower-case hex sha256 of the image bytes")
    check_text(item.filename, "filename", FILENAME_LENGTH)
    if item.kind not in ITEM_KINDS:
        raise ValueError(f"kind must be one of {ITEM_KINDS}, got {item.kind!r}")
    if not (isinstance(item.width, int | np.integer) and isinstance(item.height, int | np.integer)):
        raise ValueError("width and height must be integers")
    if item.width <= 0 or item.height <= 0:
        raise ValueError(f"width and height must be positive, got {item.width} x {item.height}")
    mpp = item.mpp
    if mpp is not None and not (isinstance(mpp, int | float) and math.isfinite(mpp) and mpp > 0):
        raise ValueError(f"mpp must be a positive finite number or None, got {mpp!r}")


def validate(rec: ReviewRecord) -> np.ndarray:
    """Checks a record before any database work; gives the mask as bool (height, width).

    Raises ValueError for anything a database would refuse or store wrongly: the hash, empty or
    over-long names (the same limits on every backend), the kind, the size, the mask, the
    GeoJSON, probabilities that are not finite, scores with repeated or unnamed maps, a
    reference flag that disagrees with the reader name.
    """
    check_item(ItemRecord(rec.item_hash, rec.filename, rec.width, rec.height, rec.kind, rec.mpp))
    check_text(rec.reader, "reader", NAME_LENGTH)
    check_text(rec.label, "label", LABEL_LENGTH)
    if not isinstance(rec.model_set, str) or len(rec.model_set) > NAME_LENGTH:
        raise ValueError(f"model_set must be a string of at most {NAME_LENGTH} characters")
    check_text(rec.note, "note", NOTE_LENGTH, required=False)
    check_text(rec.imported_by, "imported_by", NAME_LENGTH, required=False)
    if rec.is_reference != rec.reader.startswith(REFERENCE_PREFIX):
        raise ValueError(
            f"reader names starting with {REFERENCE_PREFIX!r} are kept for imported references"
            if not rec.is_reference
            else f"a reference's reader name must start with {REFERENCE_PREFIX!r}"
        )
    overlap = rec.overlap
    if overlap is not None and not (isinstance(overlap, int | float) and 0 <= overlap < 1):
        raise ValueError(f"overlap must be a number in [0, 1) or None, got {overlap!r}")
    if rec.read_kind not in READ_KINDS:
        raise ValueError(f"read_kind must be one of {READ_KINDS}, got {rec.read_kind!r}")
    if rec.is_reference != (rec.read_kind == "reference"):
        raise ValueError("an imported reference is stored as read_kind 'reference', and only it")
    if rec.read_kind == "unaided" and (not rec.blinded or set(rec.visible) - {"image"}):
        raise ValueError("an unaided read is blinded: only the image may have been visible")
    if rec.read_kind == "aided" and rec.parent_id is None:
        raise ValueError("an aided read follows the reader's unaided read (parent_id)")
    if rec.confidence is not None and (
        not isinstance(rec.confidence, int | np.integer) or not 1 <= rec.confidence <= 5
    ):
        raise ValueError(f"confidence must be 1 to 5 or None, got {rec.confidence!r}")
    check_text(rec.best_map, "best_map", LABEL_LENGTH, required=False)
    check_text(rec.label_set, "label_set", LABEL_LENGTH, required=False)
    mask = np.asarray(rec.mask)
    if mask.shape != (rec.height, rec.width):
        raise ValueError(
            f"mask shape {mask.shape} does not match the item (height, width) = "
            f"({rec.height}, {rec.width})"
        )
    if mask.dtype != bool and not np.isin(mask, (0, 1)).all():
        raise ValueError("mask must be boolean (or 0/1)")
    if rec.no_region and mask.any():
        raise ValueError("a read saved with no region has an empty mask")
    if rec.no_region and any(v is not None for sc in rec.scores for v in sc.values().values()):
        raise ValueError("a read with no region has no scores (None, not 0)")
    if not isinstance(rec.geojson, dict) or "type" not in rec.geojson:
        raise ValueError("geojson must be a GeoJSON object (a dict with a 'type')")
    for model, probs in rec.predictions.items():
        if not isinstance(model, str) or not model or len(model) > NAME_LENGTH:
            raise ValueError("prediction model names must be non-empty strings")
        if not isinstance(probs, dict) or not probs:
            raise ValueError(f"predictions[{model!r}] must map class names to probabilities")
        for cls, p in probs.items():
            if finite_or_none(p, f"predictions[{model!r}][{cls!r}]") is None:
                raise ValueError(f"predictions[{model!r}][{cls!r}] must be a finite number")
    seen: set[tuple[str, str]] = set()
    for i, score in enumerate(rec.scores):
        if not isinstance(score, ScoreRecord):
            raise ValueError(f"scores[{i}] must be a ScoreRecord, got {type(score).__name__}")
        if not score.model or not score.map:
            raise ValueError(f"scores[{i}] needs a model and a map name")
        if (score.model, score.map) in seen:
            raise ValueError(f"scores[{i}] repeats model {score.model!r} map {score.map!r}")
        seen.add((score.model, score.map))
        for name, value in score.values().items():
            if name != "pointing_game":
                finite_or_none(value, f"scores[{i}].{name}")
    return mask.astype(bool)
