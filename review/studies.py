"""Reader studies: label sets, cases and their worklist, blinding and anonymised maps.

A study has a name, a label set (the pathologist's vocabulary), a blinding mode, a model set,
cases (images kept once, by content hash) and readers. In a blinded study a reader first saves
an unaided read of a case (no prediction, map or model-set name on screen); it is locked, the
maps are revealed, and an aided read may follow, linked to it.
"""

from __future__ import annotations

import hashlib
import random
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath

import pandas as pd

from annotations.records import CaseRecord, ItemRecord, StudyRecord
from annotations.store import Store
from lran_core.data import IMAGE_SUFFIXES, ImageReadError, parse_idc_name
from review.items import read_image
from review.mosaic import Placed, as_tiff, assemble, placed

DEFAULT_STUDY = "Default study"
UNSURE = "non-diagnostic / unsure"
# What a reader can see while reading, as stored with each read.
IMAGE, PREDICTIONS, MAPS, MODEL_NAMES = "image", "predictions", "maps", "model names"
# The case's file name, withheld until the unaided read: an IDC name carries the label.
FILE_NAME = "file name"
EVERYTHING = [IMAGE, FILE_NAME, PREDICTIONS, MAPS, MODEL_NAMES]
LETTERS = "ABCDEFGH"
# An operator's folder or zip adds at most this many images at once.
MAX_IMPORT = 5000


@dataclass(frozen=True)
class LabelSet:
    """A vocabulary for a reader's diagnosis. ``labels`` in display order, then ``UNSURE``;
    ``positive`` are the labels compared with a model's positive (last) class, the others with
    its negative (first) class; ``UNSURE`` is compared with nothing."""

    name: str
    labels: tuple[str, ...]
    positive: frozenset[str]

    @property
    def choices(self) -> list[str]:
        """Every label a reader may give, ``UNSURE`` last."""
        return [*self.labels, UNSURE]

    def model_class(self, label: str, class_names: Sequence[str]) -> str | None:
        """The model class a reader's label is compared with (None for UNSURE or an unknown
        label): a positive label -> the last class, another label -> the first."""
        if label not in self.labels:
            return None
        return class_names[-1] if label in self.positive else class_names[0]

    def mapping(self, class_names: Sequence[str]) -> dict[str, str]:
        """Every label's model class (the mapping shown where labels meet predictions)."""
        return {
            label: cls for label in self.labels if (cls := self.model_class(label, class_names))
        }


# The model set of the default study: the one a fresh install loads first.
DEFAULT_MODEL_SET = "idc"

LABEL_SETS: dict[str, LabelSet] = {
    "IDC": LabelSet("IDC", ("IDC-negative", "IDC-positive"), frozenset({"IDC-positive"})),
    "BACH": LabelSet(
        "BACH", ("normal", "benign", "in situ", "invasive"), frozenset({"in situ", "invasive"})
    ),
    # Lymph-node sections, as the `pcam` model set reads them.
    "PCam": LabelSet("PCam", ("no tumour", "metastasis"), frozenset({"metastasis"})),
}


def label_set(name: str) -> LabelSet:
    """A label set by name; ValueError naming the known ones otherwise."""
    if name not in LABEL_SETS:
        raise ValueError(f"unknown label set {name!r}; choose from {', '.join(LABEL_SETS)}")
    return LABEL_SETS[name]


def default_study(store: Store) -> StudyRecord:
    """The study a fresh install starts in: blinded, IDC labels, the ``idc`` model set."""
    for study in store.studies():
        if study.name == DEFAULT_STUDY:
            return study
    return store.create_study(DEFAULT_STUDY, "IDC", "blinded", DEFAULT_MODEL_SET)


def case_group(filename: str) -> str:
    """The group a case belongs to: the patient of an IDC patch (from its file name), else the
    folder the file came from, else the file's own name."""
    idc = parse_idc_name(filename)
    if idc is not None:
        return f"patient {idc.patient}"
    path = PurePosixPath(filename.replace("\\", "/"))
    return path.parent.name if path.parent.name else path.name


@dataclass(frozen=True)
class Added:
    """What adding images did: the cases added (new ones only), refusals by file name, and the
    names of images that were cases of the study already (with the case's own name where it
    differs, in an open study)."""

    added: list[CaseRecord]
    refused: list[str]
    present: list[str]

    def present_text(self, shown: int = 5, quote: Callable[[str], str] = str) -> str:
        """'; 2 already in the study (a.png, b.png as c.png)', at most ``shown`` names, each
        passed through ``quote`` (a page escapes them for markdown); '' for none."""
        if not self.present:
            return ""
        more = len(self.present) - shown
        names = ", ".join(map(quote, self.present[:shown]))
        names += f" and {more} more" if more > 0 else ""
        return f"; {len(self.present)} already in the study ({names})"


def add_images(
    store: Store,
    study: StudyRecord,
    files: Iterable[tuple[str, bytes]],
    added_by: str | None,
    patch_side: int,
    group: str | None = None,
) -> Added:
    """Adds images (name, bytes) to a study: each is decoded first (so what cannot be read is
    refused by name and nothing of it is stored), kept once by content hash, and becomes a case
    at the end of the worklist unless it is in the study already. ``patch_side``: images larger
    than the model set's patch are regions. ``group``: the case group of every image (default:
    :func:`case_group` of each name)."""
    added: list[CaseRecord] = []
    refused: list[str] = []
    present: list[str] = []
    for name, data in files:
        try:
            image = read_image(name, data)
        except ImageReadError as err:
            refused.append(str(err))
            continue
        kind = "region" if max(image.width, image.height) > patch_side else "patch"
        item = ItemRecord(image.item_hash, name, image.width, image.height, kind, image.mpp)
        case, new = store.add_case(study.study_id, item, data, group or case_group(name), added_by)
        if new:
            added.append(case)
        else:
            # In a blinded study the case's own name is withheld (an IDC name tells the label).
            kept = case.item.filename
            present.append(name if kept == name or study.blinded else f"{name} as {kept}")
    return Added(added, refused, present)


def files_in(source: Path) -> Iterable[tuple[str, bytes]]:
    """The images of a server folder (recursively) or a zip, as (relative name, bytes), in name
    order; at most MAX_IMPORT. For an operator adding a study's cases."""
    if source.is_dir():
        paths = sorted(p for p in source.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if len(paths) > MAX_IMPORT:
            raise ValueError(f"{source} holds {len(paths)} images; at most {MAX_IMPORT} at once")
        for path in paths:
            yield path.relative_to(source).as_posix(), path.read_bytes()
        return
    try:
        archive = zipfile.ZipFile(source)
    except (OSError, zipfile.BadZipFile) as err:
        raise ValueError(f"{source}: neither a folder nor a readable zip ({err})") from err
    with archive:
        names = sorted(
            n
            for n in archive.namelist()
            if PurePosixPath(n).suffix.lower() in IMAGE_SUFFIXES and not n.endswith("/")
        )
        if len(names) > MAX_IMPORT:
            raise ValueError(f"{source} holds {len(names)} images; at most {MAX_IMPORT} at once")
        for name in names:
            yield name, archive.read(name)


def patient_patches(store: Store, study: StudyRecord, group: str) -> list[Placed]:
    """The IDC patches of one case group (a patient) of a study, placed by their names, whose
    images are kept."""
    out = []
    for case in store.cases(study.study_id):
        if case.group != group:
            continue
        data = store.image_bytes(case.item.item_hash)
        found = (
            None
            if data is None
            else placed(case.item.filename, read_image(case.item.filename, data).rgb)
        )
        if found is not None:
            out.append(found)
    return out


def add_patient_mosaic(
    store: Store, study: StudyRecord, group: str, added_by: str | None, patch_side: int
) -> Added:
    """Adds the mosaic of a patient's IDC patches in the study as a region case (a TIFF at
    IDC's 4 µm/px, gaps empty). ValueError when the group has fewer than two IDC patches."""
    patches = patient_patches(store, study, group)
    if len(patches) < 2:
        raise ValueError(f"{group} has {len(patches)} IDC patch(es) here: a mosaic needs two")
    mosaic = assemble(patches)
    name = f"{group.replace(' ', '-')}-mosaic-x{mosaic.origin[0]}-y{mosaic.origin[1]}.tif"
    return add_images(store, study, [(name, as_tiff(mosaic))], added_by, patch_side, group)


# ---------------------------------------------------------------------------------------------
# The worklist

UNREAD, UNAIDED, AIDED = "unread", "unaided read saved", "aided read saved"
# A case whose others' reads the reader chose to see before reading it (end_blinding).
ENDED = "blinding ended, not yours to read"
# What a reader sees of a case's group and file name before their blinded first read.
HIDDEN_GROUP, HIDDEN_FILE = "—", "name shown after your unaided read"


@dataclass(frozen=True)
class WorkItem:
    """A case in a reader's worklist with its status for that reader (UNREAD, UNAIDED,
    AIDED, ENDED; in an open study a saved read counts as AIDED) and the ids of their latest
    reads."""

    case: CaseRecord
    status: str
    unaided_id: int | None
    aided_id: int | None
    # When the reader's blinding for the case's image ended (in this study or another).
    blinding_ended: datetime | None = None


@dataclass(frozen=True)
class Worklist:
    """A study's cases for one reader, in order, with progress."""

    study: StudyRecord
    items: list[WorkItem]

    @property
    def done(self) -> int:
        """Cases this reader has finished (blinded: an unaided read saved; open: a read)."""
        return sum(w.status in (UNAIDED, AIDED) for w in self.items)

    @property
    def to_read(self) -> int:
        """Cases this reader may read: all but those whose blinding ended before a read."""
        return sum(w.status != ENDED for w in self.items)

    def progress(self) -> str:
        """'n of N done', N leaving out the cases this reader may not read."""
        ended = len(self.items) - self.to_read
        closed = f" ({ended} closed: blinding ended)" if ended else ""
        return f"{self.done} of {self.to_read} done{closed}"

    def index_of(self, case_id: int | None) -> int:
        """The position of a case in the list (0 when it is not in it)."""
        for i, w in enumerate(self.items):
            if w.case.case_id == case_id:
                return i
        return 0

    def names(self, index: int) -> tuple[str, str]:
        """The group and file name of the case at ``index`` as its reader may see them. In a
        blinded study both are withheld until the reader's unaided read is saved: IDC file
        names (``..._class1.png``) and class folders (``benign/``) carry the label."""
        work = self.items[index]
        if self.study.blinded and work.status == UNREAD:
            return HIDDEN_GROUP, HIDDEN_FILE
        return work.case.group, work.case.item.filename

    def next_unread(self, after: int = -1) -> int | None:
        """The position of the first unread case after ``after`` (wrapping round), None when
        every case is read."""
        n = len(self.items)
        for step in range(1, n + 1):
            i = (after + step) % n
            if self.items[i].status == UNREAD:
                return i
        return None


def worklist(store: Store, study: StudyRecord, reader: str) -> Worklist:
    """The study's cases (not removed) for ``reader``, with their status."""
    reads = store.read_status(study.study_id, reader) if reader else {}
    closed = store.closed_images(reader) if reader and study.blinded else {}
    items = []
    for case in store.cases(study.study_id):
        kinds = reads.get(case.case_id, {})
        aided = kinds.get("aided") or kinds.get("open")
        unaided = kinds.get("unaided")
        ended = closed.get(case.item.item_hash)
        status = AIDED if aided else UNAIDED if unaided else ENDED if ended is not None else UNREAD
        items.append(WorkItem(case, status, unaided, aided, ended))
    return Worklist(study, items)


def visible(study: StudyRecord, kind: str, blinding_ended: bool) -> tuple[str, ...]:
    """What is on screen for a read of ``kind`` ('unaided', 'aided', 'open'), or was known: a
    reader whose blinding for the image ended (``blinding_ended``) has seen Compare or
    History, which name the models an anonymised study shows under letters."""
    if kind == "unaided":
        return (IMAGE,)
    hidden = study.anonymise and not blinding_ended
    return tuple([IMAGE, FILE_NAME, PREDICTIONS, MAPS] if hidden else EVERYTHING)


def maps_visible(study: StudyRecord, item: WorkItem) -> bool:
    """Whether a reader may see model output for a case: always in an open study; in a blinded
    one once their unaided read is saved, or once their blinding for it has ended."""
    return not study.blinded or item.unaided_id is not None or item.status == ENDED


def ended_items(store: Store, study: StudyRecord, reader: str) -> set[str]:
    """The item hashes of the study's images whose blinding ended for ``reader``, here or in
    another study (as the worklist closes them)."""
    if not study.blinded or not reader:
        return set()
    closed = store.closed_images(reader)
    return {c.item.item_hash for c in store.cases(study.study_id, removed=True)} & set(closed)


def end_blinding(store: Store, study: StudyRecord, reader: str, reads: pd.DataFrame) -> int:
    """Records that ``reader`` is being shown every row of a study's reads frame that
    :func:`not_yet_read` withholds from them; from now on those rows are shown. The cases
    among them that they have not read unaided are closed to them (ENDED): an unaided read
    made now would not be blinded. Gives how many cases were closed."""
    hidden = set(
        reads["item_hash"][not_yet_read(study, reads, reader, ended_items(store, study, reader))]
    )
    if not hidden:
        return 0
    status = store.read_status(study.study_id, reader)
    cases = [c for c in store.cases(study.study_id, removed=True) if c.item.item_hash in hidden]
    store.end_blinding(reader, [c.case_id for c in cases])
    return sum("unaided" not in status.get(c.case_id, {}) for c in cases)


def not_yet_read(
    study: StudyRecord, reads: pd.DataFrame, reader: str, ended: Iterable[str] = ()
) -> pd.Series:
    """Per row of a study's reads frame (``Store.reviews_frame``): whether it is withheld from
    ``reader`` in a blinded study (never in an open one). Another reader's read of an image
    that ``reader`` has not read unaided yet: its reads, name and the models' verdicts wait
    for the reader's own unaided read, as on the Review page. In an anonymised study, every
    read of an image ``reader`` has not read aided yet, their own too: Compare and History
    name the models, which would tell the letters of the aided read apart. Nothing is withheld
    of the images in ``ended`` (item hashes, :func:`ended_items`)."""
    if not study.blinded:
        return pd.Series(False, index=reads.index)
    own = reads["reader"] == reader
    shown = reads["item_hash"].isin(set(ended))
    if study.anonymise:
        aided = reads["item_hash"][own & (reads["read_kind"] == "aided")]
        return ~shown & ~reads["item_hash"].isin(set(aided))
    unaided = reads["item_hash"][own & (reads["read_kind"] == "unaided")]
    # The reader's own reads always show; others' only once the reader's unaided read is in.
    return ~shown & ~own & ~reads["item_hash"].isin(set(unaided))


def anonymised(
    study: StudyRecord, case_id: int, reader: str, models: Sequence[str]
) -> dict[str, str]:
    """The letters the models' maps are shown under for a case and reader (letter -> model):
    a shuffle seeded by study, case and reader, so it is the same on every rerun and is stored
    with the read; identity order when the study does not anonymise."""
    order = list(models)
    if study.anonymise:
        seed = hashlib.sha256(f"{study.study_id}:{case_id}:{reader}".encode()).digest()
        random.Random(seed).shuffle(order)
    return {LETTERS[i]: model for i, model in enumerate(order)}


__all__ = [
    "AIDED",
    "DEFAULT_MODEL_SET",
    "DEFAULT_STUDY",
    "ENDED",
    "EVERYTHING",
    "FILE_NAME",
    "IMAGE",
    "LABEL_SETS",
    "MAPS",
    "MODEL_NAMES",
    "PREDICTIONS",
    "UNAIDED",
    "UNREAD",
    "UNSURE",
    "Added",
    "LabelSet",
    "WorkItem",
    "Worklist",
    "add_images",
    "add_patient_mosaic",
    "anonymised",
    "case_group",
    "default_study",
    "end_blinding",
    "ended_items",
    "files_in",
    "label_set",
    "maps_visible",
    "not_yet_read",
    "patient_patches",
    "visible",
    "worklist",
]
