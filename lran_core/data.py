"""Reading histology images and datasets: IDC (patient folders) and class folders, splits by
patient or image, k folds, class-balanced batches, patch extraction from a labelled image.

Every reader reports an unreadable file by name (:class:`ImageReadError`, or a warning when a
dataset skips it); nothing is dropped silently.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import random
import re
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset, Sampler

from .transforms import to_input

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
MIN_SIDE = 8
MAX_PIXELS = 120_000_000
IDC_CLASS_NAMES = {"0": "IDC-negative", "1": "IDC-positive"}
# The Kaggle IDC patches: 50 px on a side at about 4 um/px (2.5x).
IDC_NATIVE = 50
IDC_MPP = 4.0
CACHE_VERSION = 1


_IDC_NAME = re.compile(r"^(?P<patient>\d+)_idx5_x(?P<x>\d+)_y(?P<y>\d+)_class(?P<label>\d+)")


@dataclass(frozen=True)
class IDCName:
    """What a Kaggle IDC patch's file name says: patient, the patch's top-left corner (x, y) in
    the patient's slide at 2.5x, and its label."""

    patient: str
    x: int
    y: int
    label: int


def parse_idc_name(name: str) -> IDCName | None:
    """Parses ``10253_idx5_x1351_y1101_class1.png`` (any folder prefix); None for other names."""
    match = _IDC_NAME.match(Path(name).name)
    if match is None:
        return None
    return IDCName(match["patient"], int(match["x"]), int(match["y"]), int(match["label"]))


class ImageReadError(ValueError):
    """A file that cannot be used as an image; the message names it and says why."""


class MultiPageWarning(UserWarning):
    """:func:`load_image` decoded only the first page (frame) of a file that holds several.

    The message names the file and says "page 1 of N is used". Callers that show images to
    people (the app) should tell them; :func:`describe_image` gives the page count up front.
    """


@dataclass(frozen=True)
class ImageInfo:
    """What a file's header says, without decoding its pixels (see :func:`describe_image`).

    ``width`` x ``height`` and ``mode`` (PIL's, e.g. ``RGB``, ``I;16``) are those of page 1,
    the page :func:`load_image` decodes; ``pages`` is how many pages (TIFF) or frames (GIF,
    APNG, MPO) the file holds; ``format`` is PIL's name of the format (``TIFF``, ``PNG``).
    """

    width: int
    height: int
    mode: str
    format: str | None
    pages: int

    @property
    def multi_page(self) -> bool:
        """Whether pages after the first are left out when the file is decoded."""
        return self.pages > 1


# Decoder failures, any of which means a corrupt file. EOFError: PIL's signal that a page
# (IFD) chain ends inside the file.
_DECODER_ERRORS = (OSError, SyntaxError, ValueError, EOFError)


@contextmanager
def _reading(label: str) -> Iterator[None]:
    """Turns what decoders raise into ImageReadError naming the file."""
    try:
        with warnings.catch_warnings():
            # Our own limit (max_pixels) is checked from the header alone.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
    except ImageReadError:
        raise
    except Image.DecompressionBombError as err:
        raise ImageReadError(f"{label}: refused as a decompression bomb ({err})") from err
    except UnidentifiedImageError as err:
        raise ImageReadError(f"{label}: not a readable image file") from err
    except FileNotFoundError as err:
        raise ImageReadError(f"{label}: no such file") from err
    except _DECODER_ERRORS as err:
        raise ImageReadError(f"{label}: corrupt or truncated image ({err})") from err


def _label(source: bytes | str | Path, name: str | None) -> str:
    return name or (str(source) if not isinstance(source, bytes) else "<bytes>")


def _pages(source: bytes | str | Path) -> int:
    """How many pages (TIFF IFDs) or frames a file holds; 1 for single-image formats.

    Walks the file in an image of its own, so the caller's image stays on page 1. A later page
    that PIL cannot parse (a truncated chain, an exotic thumbnail or label page) still counts
    and ends the walk: page 1 is usable, so such a file is not refused for it.
    """
    fp = io.BytesIO(source) if isinstance(source, bytes) else source
    with Image.open(fp) as img, warnings.catch_warnings():
        # PIL warns ("Corrupt EXIF data") about each broken header it reads on the way; the
        # page count, reported by the caller, is what matters here.
        warnings.simplefilter("ignore")
        count = 1
        try:
            while True:
                img.seek(count)  # EOFError past the last page; PIL stops at an IFD cycle
                count += 1
        except EOFError:
            return count
        except Exception:  # any other error: page count + 1 exists but does not parse
            return count + 1


def describe_image(source: bytes | str | Path, name: str | None = None) -> ImageInfo:
    """Reads a file's header: page-1 size and mode, format, and the number of pages.

    Takes a path or the file's bytes (``name`` is used in messages). Decodes no pixels, so it
    is cheap for any file; raises ImageReadError for a file that is not a readable image.
    Use it to tell a reader that only page 1 of a multi-page TIFF is shown (``pages > 1``).
    """
    label = _label(source, name)
    fp = io.BytesIO(source) if isinstance(source, bytes) else source
    with _reading(label):
        with Image.open(fp) as img:
            width, height = img.size
            mode, format_ = img.mode, img.format
        return ImageInfo(width, height, mode, format_, _pages(source))


def load_image(
    source: bytes | str | Path,
    name: str | None = None,
    max_pixels: int = MAX_PIXELS,
    min_side: int = MIN_SIDE,
) -> np.ndarray:
    """Decodes an image to RGB uint8 (H, W, 3).

    Takes a path or the file's bytes (``name`` is used in messages). RGBA and palette images are
    composited on white, grayscale is repeated, 16-bit and float images are scaled to 8 bits
    (float ones within [0, 1] as intensities of 0 to 1).
    Raises ImageReadError for a file that is not an image, is truncated, has more than
    ``max_pixels`` pixels (a decompression bomb), or is smaller than ``min_side`` on a side
    (datasets pass 1: IDC's edge patches, e.g. 50 x 6, are padded, not refused).

    A file of several pages (multi-page TIFF) or frames is decoded at page 1, with a
    :class:`MultiPageWarning` "<file>: page 1 of N is used" (see also :func:`describe_image`).
    """
    label = _label(source, name)
    fp = io.BytesIO(source) if isinstance(source, bytes) else source
    with _reading(label), Image.open(fp) as img:
        width, height = img.size
        if width * height > max_pixels:
            raise ImageReadError(
                f"{label}: {width} x {height} = {width * height:,} pixels is more than the "
                f"limit of {max_pixels:,} (decompression bomb?)"
            )
        img.load()
        if min(width, height) < min_side:
            raise ImageReadError(
                f"{label}: {width} x {height} pixels is too small (at least {min_side} on a side)"
            )
        rgb = _to_rgb8(img)
    with _reading(label):
        pages = _pages(source)
    if pages > 1:
        warnings.warn(
            f"{label}: {pages} pages; page 1 of {pages} is used", MultiPageWarning, stacklevel=2
        )
    return rgb


def _to_rgb8(img: Image.Image) -> np.ndarray:
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        a = np.asarray(img, dtype=np.float64)
        # 16-bit files usually use the full range; float/int32 ones are scaled by their maximum,
        # and float ones within [0, 1] are intensities of 0 to 1 (as image tools write them).
        top = 65535.0 if img.mode.startswith("I;16") or a.max() > 255 else 255.0
        if img.mode in ("I", "F") and a.max() > 65535:
            top = float(a.max())
        if img.mode == "F" and 0 < a.max() <= 1.0:
            top = 1.0
        gray = np.clip(a / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=-1)
    if img.mode in ("RGBA", "LA", "P", "PA") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    return np.asarray(img.convert("RGB"))


# Micrometres per ResolutionUnit (TIFF tag 296): 2 inch, 3 centimetre. 1 ("no absolute
# unit") and anything else say nothing about microns.
_MICRONS_PER_UNIT = {2: 25400.0, 3: 10000.0}
# Resolution tags this coarse or coarser (1000 dpi and below: 72, 96, 300, 600 dpi) are a screen or
# print setting that image tools write by default, not a microscope's scale; a slide image, even
# a thumbnail at 0.625x, is finer.
MAX_TAGGED_MPP = 25.4


def read_mpp(source: bytes | str | Path) -> float | None:
    """Microns per pixel from TIFF resolution tags (or PNG/JPEG dpi), None when unknown.

    Unknown: no tags, a ResolutionUnit other than inch (2) or centimetre (3), a resolution
    that is not a finite positive number (XResolution inf, 0, NaN, negative), so the result is
    never 0.0, inf or NaN, or one coarser than MAX_TAGGED_MPP (a tool's default dpi). Page 1's
    tags are used (the page :func:`load_image` decodes).
    """
    fp = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        # Only tags are read: the pixel count does not matter here (load_image checks it).
        with warnings.catch_warnings(), Image.open(fp) as img:
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            tags = getattr(img, "tag_v2", None)
            if tags is not None and 282 in tags:
                unit = tags.get(296, 2)  # TIFF's default unit is the inch
                per_unit = _MICRONS_PER_UNIT.get(unit) if isinstance(unit, int) else None
                return _mpp(per_unit, float(tags[282])) if per_unit else None
            dpi = img.info.get("dpi")
            if dpi:
                return _mpp(25400.0, float(dpi[0]))
    except (*_DECODER_ERRORS, TypeError, ZeroDivisionError, Image.DecompressionBombError):
        # TypeError: a tag of the wrong kind (e.g. a list where a number belongs).
        return None
    return None


def _mpp(microns_per_unit: float, pixels_per_unit: float) -> float | None:
    """Microns per pixel, or None unless both it and the resolution are finite and positive."""
    if not (math.isfinite(pixels_per_unit) and pixels_per_unit > 0):
        return None
    mpp = microns_per_unit / pixels_per_unit
    # A tiny positive resolution (1e-310) still overflows to inf.
    return mpp if math.isfinite(mpp) and 0 < mpp < MAX_TAGGED_MPP else None


def pad_to(rgb: np.ndarray, height: int, width: int, fill: int = 255) -> np.ndarray:
    """Pads an image (h, w, 3) at the bottom/right to at least (height, width) with ``fill``.

    IDC's edge patches (e.g. 50 x 42) are cut off by the slide border; white is the glass.
    """
    h, w = rgb.shape[:2]
    if h >= height and w >= width:
        return rgb
    out = np.full((max(h, height), max(w, width), 3), fill, dtype=rgb.dtype)
    out[:h, :w] = rgb
    return out


def square(rgb: np.ndarray) -> np.ndarray:
    """Pads a non-square image to a square (white) so resizing keeps its aspect."""
    side = max(rgb.shape[:2])
    return pad_to(rgb, side, side)


def resize_rgb(rgb: np.ndarray, size: int) -> np.ndarray:
    """Square-pads then resizes an RGB image to (size, size, 3)."""
    rgb = square(rgb)
    if rgb.shape[0] == size:
        return rgb
    interp = cv2.INTER_AREA if rgb.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(rgb, (size, size), interpolation=interp)


def preprocess(
    rgb: np.ndarray, input_size: int, mean: Sequence[float], std: Sequence[float]
) -> torch.Tensor:
    """Takes RGB uint8 (H, W, 3); gives the model's input (1, 3, S, S), S = ``input_size``:
    square-padded (white), then :func:`lran_core.transforms.to_input` as in training."""
    # A copy: the caller's array is often read-only, and torch warns on such views.
    x = torch.from_numpy(np.array(square(rgb))).permute(2, 0, 1)[None]
    return to_input(x, input_size, mean, std)


@dataclass(frozen=True)
class Sample:
    """One labelled image: its path, class index and group (patient, or the image itself)."""

    path: Path
    label: int
    group: str


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _folders(folder: Path) -> list[Path]:
    """The sub-folders of ``folder``, sorted, hidden ones (``.ipynb_checkpoints``) left out."""
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def read_idc(root: str | Path) -> tuple[list[Sample], list[str]]:
    """Reads the Kaggle IDC layout ``<patient>/<0|1>/*.png``; groups are patients. Raises
    ValueError naming a folder whose sub-folders are not the labels 0 and 1 (a class made of
    a stray folder would change the model's outputs without a word)."""
    root = Path(root)
    patients = _folders(root)
    for patient in patients:
        odd = [d.name for d in _folders(patient) if d.name not in IDC_CLASS_NAMES]
        if odd:
            raise ValueError(
                f"{patient}: IDC folders hold <patient>/0/ and <patient>/1/, not "
                f"{', '.join(odd[:5])}{' ...' if len(odd) > 5 else ''}"
            )
    labels = sorted({d.name for p in patients for d in _folders(p)})
    if not labels:
        raise ValueError(f"{root}: no <patient>/<label>/ folders found")
    index = {name: i for i, name in enumerate(labels)}
    samples = [
        Sample(img, index[label_dir.name], patient.name)
        for patient in patients
        for label_dir in _folders(patient)
        for img in _images_in(label_dir)
    ]
    return samples, [IDC_CLASS_NAMES[name] for name in labels]


# A crop's index after its source image's name: BreakHis crops SOB_B_A_14-22549AB_0 to _5,
# BACH tiles A03_0_11 of region A03_0.
_CROP_INDEX = re.compile(r"_\d+$")


def source_image(stem: str) -> str:
    """The source image a file (by its stem) was cut from: the stem without a trailing
    ``_<n>``. Crops of one image are near-duplicates, so they share a group."""
    return _CROP_INDEX.sub("", stem) or stem


def read_class_folders(root: str | Path) -> tuple[list[Sample], list[str]]:
    """Reads ``<class>/*.{png,jpg,tif}`` (as BACH and BreakHis are shipped); groups are source
    images (:func:`source_image`), so the crops of one never straddle train and validation."""
    root = Path(root)
    classes = [p.name for p in _folders(root) if _images_in(p)]
    if len(classes) < 2:
        raise ValueError(f"{root}: need at least two class folders with images, found {classes}")
    samples = [
        Sample(img, i, source_image(img.stem))
        for i, name in enumerate(classes)
        for img in _images_in(root / name)
    ]
    return samples, classes


def read_dataset(root: str | Path) -> tuple[list[Sample], list[str], str]:
    """Detects the layout; gives (samples, class names, ``"idc"`` or ``"classes"``)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such data folder")
    subdirs = _folders(root)
    if subdirs and all(not _images_in(p) and _folders(p) for p in subdirs):
        samples, classes = read_idc(root)
        return samples, classes, "idc"
    samples, classes = read_class_folders(root)
    return samples, classes, "classes"


def _grouped(samples: Sequence[Sample]) -> dict[str, list[Sample]]:
    groups: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        groups[s.group].append(s)
    return groups


def kfold_by_group(
    samples: Sequence[Sample], k: int, seed: int = 0
) -> list[tuple[list[Sample], list[Sample]]]:
    """k (train, validation) pairs; every group (patient) lands in exactly one validation fold.

    Groups are dealt round-robin after sorting by their positive fraction, so folds get similar
    class balance.
    """
    if k < 2:
        raise ValueError(f"k must be at least 2, got {k}")
    groups = _grouped(samples)
    if len(groups) < k:
        raise ValueError(f"{len(groups)} groups cannot make {k} folds")
    rng = random.Random(seed)
    names = sorted(groups)
    rng.shuffle(names)
    names.sort(key=lambda g: np.mean([s.label for s in groups[g]]))
    folds: list[list[str]] = [[] for _ in range(k)]
    for i, name in enumerate(names):
        folds[i % k].append(name)
    out = []
    for fold in folds:
        held = set(fold)
        out.append(
            (
                [s for s in samples if s.group not in held],
                [s for s in samples if s.group in held],
            )
        )
    return out


def split_by_group(
    samples: Sequence[Sample], val_fraction: float = 0.2, seed: int = 0
) -> tuple[list[Sample], list[Sample]]:
    """One (train, validation) split by group (patient or image), never by patch."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    return kfold_by_group(samples, max(2, round(1 / val_fraction)), seed)[0]


class BalancedBatchSampler(Sampler[list[int]]):
    """Batches with the same number of samples from every class (the paper's stratified sampling).

    Each class is drawn without replacement, reshuffled when used up, so every sample is seen.
    """

    def __init__(self, labels: Sequence[int], batch_size: int, num_batches: int, seed: int = 0):
        self.by_class = [[i for i, y in enumerate(labels) if y == c] for c in sorted(set(labels))]
        if len(self.by_class) < 2:
            raise ValueError("class-balanced batches need at least two classes")
        if batch_size < len(self.by_class):
            raise ValueError(f"batch_size {batch_size} < {len(self.by_class)} classes")
        self.batch_size = batch_size
        self.num_batches = num_batches
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Different, reproducible batches every epoch."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_batches

    def __iter__(self) -> Iterator[list[int]]:
        rng = random.Random(self.seed * 100003 + self.epoch)
        pools: list[list[int]] = [[] for _ in self.by_class]
        k = len(self.by_class)
        for _ in range(self.num_batches):
            batch = []
            for c, idx in enumerate(self.by_class):
                n = self.batch_size // k + (1 if c < self.batch_size % k else 0)
                for _ in range(n):
                    if not pools[c]:
                        pools[c] = rng.sample(idx, len(idx))
                    batch.append(pools[c].pop())
            rng.shuffle(batch)
            yield batch


def cache_dir() -> Path:
    """Where decoded datasets are cached: ``$LRAN_CACHE_DIR`` or ``~/.cache/lran_core``."""
    return Path(os.environ.get("LRAN_CACHE_DIR") or Path.home() / ".cache" / "lran_core")


def _cache_key(samples: Sequence[Sample], size: int, native: int | None) -> str:
    h = hashlib.sha256(f"v{CACHE_VERSION} {size} {native}".encode())
    for s in samples:
        st = s.path.stat()
        h.update(f"\n{s.path.resolve()} {st.st_size} {st.st_mtime_ns} {s.label}".encode())
    return h.hexdigest()[:24]


class PatchDataset(Dataset[tuple[torch.Tensor, int]]):
    """Images of a dataset, decoded once and held in memory as uint8 at ``size`` x ``size``.

    Each image is padded white at the bottom/right to ``native`` (IDC's edge patches, cut by the
    slide border), square-padded, then resized to ``size`` (usually the native size: the network
    input is made per batch by :func:`lran_core.transforms.to_input`). With ``cache=True`` the
    decoded array is kept in :func:`cache_dir` under a key of the files' paths, sizes and
    modification times, so a second run (or a resumed one) skips decoding.

    ``images`` is uint8 (N, 3, size, size); ``__getitem__`` gives (image, label). Unreadable files
    are skipped with a warning naming each (see ``skipped``).
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        size: int,
        native: int | None = None,
        cache: bool = False,
    ):
        self.size = size
        path = cache_dir() / f"{_cache_key(samples, size, native)}.npz" if cache else None
        if path is not None and path.is_file():
            with np.load(path) as stored:
                kept = set(stored["kept"].tolist())
                array = stored["images"]
                self.skipped: list[str] = stored["skipped"].tolist()
            self.samples = [s for i, s in enumerate(samples) if i in kept]
        else:
            array, self.samples, self.skipped = self._decode(samples, size, native)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                index = {s.path: i for i, s in enumerate(samples)}
                # Per process: two runs decoding the same data at once would write one file.
                tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
                np.savez(
                    tmp,
                    images=array,
                    kept=np.array([index[s.path] for s in self.samples], dtype=np.int64),
                    skipped=np.array(self.skipped, dtype=str),
                )
                tmp.replace(path)  # a run stopped mid-write leaves no half cache behind
        self.images = torch.from_numpy(array).permute(0, 3, 1, 2).contiguous()
        self.labels = [s.label for s in self.samples]

    @staticmethod
    def _decode(
        samples: Sequence[Sample], size: int, native: int | None
    ) -> tuple[np.ndarray, list[Sample], list[str]]:
        kept: list[Sample] = []
        skipped: list[str] = []
        images = []
        for s in samples:
            try:
                rgb = load_image(s.path, min_side=1)
            except ImageReadError as err:
                warnings.warn(f"skipped: {err}", stacklevel=3)
                skipped.append(str(err))
                continue
            if native:
                rgb = pad_to(rgb, native, native)
            images.append(resize_rgb(rgb, size))
            kept.append(s)
        array = np.stack(images) if images else np.empty((0, size, size, 3), dtype=np.uint8)
        return array, kept, skipped

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.images[i], self.labels[i]

    def class_counts(self) -> Counter[int]:
        """How many samples per class index."""
        return Counter(self.labels)


@dataclass
class ExtractedPatch:
    """A patch cut from a larger image with the label the mask gives it."""

    image: np.ndarray
    label: int
    x: int
    y: int


def extract_patches(
    image: np.ndarray,
    label_mask: np.ndarray,
    patch_size: int,
    stride: int | None = None,
    min_fraction: float = 0.5,
) -> list[ExtractedPatch]:
    """Cuts labelled patches from an image and its label mask (how the paper grew its BACH set).

    Takes ``image`` (H, W, 3) and ``label_mask`` (H, W) of class values; slides a
    ``patch_size`` window with ``stride`` (default: no overlap) and keeps a patch when one label
    covers at least ``min_fraction`` of it, labelled with that value.
    """
    if image.shape[:2] != label_mask.shape[:2]:
        raise ValueError(f"image {image.shape[:2]} and mask {label_mask.shape[:2]} differ in size")
    if patch_size < 1 or patch_size > min(image.shape[:2]):
        raise ValueError(f"patch_size {patch_size} does not fit an image of {image.shape[:2]}")
    stride = stride or patch_size
    out = []
    h, w = label_mask.shape[:2]
    for y in range(0, h - patch_size + 1, stride):
        for x in range(0, w - patch_size + 1, stride):
            window = label_mask[y : y + patch_size, x : x + patch_size]
            values, counts = np.unique(window, return_counts=True)
            top = int(np.argmax(counts))
            if counts[top] >= min_fraction * window.size:
                out.append(
                    ExtractedPatch(
                        image[y : y + patch_size, x : x + patch_size].copy(), int(values[top]), x, y
                    )
                )
    return out
