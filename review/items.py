"""Images under review and the reference annotations imported for them."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass

import numpy as np
import psutil

from annotations.geojson import geojson_bounds, geojson_to_mask
from annotations.masks import label_mask_to_region, read_label_mask
from annotations.records import content_hash
from lran_core.data import (
    IDC_MPP,
    IDC_NATIVE,
    MAX_PIXELS,
    ImageReadError,
    MultiPageWarning,
    describe_image,
    load_image,
    parse_idc_name,
    read_mpp,
)

__all__ = [
    "BACH_LABELS",
    "REFERENCE_TYPES",
    "UPLOAD_TYPES",
    "ImageItem",
    "ImageReadError",
    "Reference",
    "content_hash",
    "read_image",
    "read_reference",
]

UPLOAD_TYPES = ("png", "jpg", "jpeg", "tif", "tiff")
REFERENCE_TYPES = ("png", "tif", "tiff", "geojson", "json")
# BACH label masks: 0 is unannotated; every other value is an annotated class.
BACH_LABELS = {1: "benign", 2: "in situ", 3: "invasive"}


@dataclass(frozen=True)
class ImageItem:
    """One image, identified by the sha256 of its file bytes.

    ``filename`` is what the reader uploaded it as: shown and stored, never used as a path.
    ``rgb`` (H, W, 3) uint8; ``mpp`` the microns per pixel from its resolution tags, else, for
    a patch of the Kaggle IDC set (by its file name and 50 px), that set's 4 µm/px; None if neither;
    ``pages``: how many pages the file has (a multi-page TIFF is reviewed on its first).
    """

    item_hash: str
    filename: str
    rgb: np.ndarray
    mpp: float | None
    pages: int = 1

    @property
    def width(self) -> int:
        """Width in image pixels."""
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        """Height in image pixels."""
        return int(self.rgb.shape[0])


# What reviewing one pixel can take: its RGB, the image at a model's input scale (up to 4x the
# pixels), and a few full-size float32 maps and masks while a region is scored.
BYTES_PER_PIXEL = 40


def pixel_budget(available: int | None = None) -> int:
    """The most pixels one image may have here: what a tenth of the memory available now (or
    ``available`` bytes) can review, and never more than lran_core's own limit."""
    free = psutil.virtual_memory().available if available is None else available
    return max(1, min(MAX_PIXELS, free // (10 * BYTES_PER_PIXEL)))


def read_image(name: str, data: bytes, max_pixels: int | None = None) -> ImageItem:
    """Decodes an uploaded file into an :class:`ImageItem`, refusing (from its header, before
    decoding) an image of more than ``max_pixels`` pixels (default :func:`pixel_budget`),
    with the memory it would need.

    Raises ImageReadError naming the file for anything that is not a usable image, including
    decoder failures nobody anticipated (uploads are untrusted).
    """
    budget = pixel_budget() if max_pixels is None else max_pixels
    try:
        info = describe_image(data, name=name)
    except ImageReadError:
        raise
    except Exception as err:
        raise ImageReadError(f"{name}: could not be read ({type(err).__name__}: {err})") from err
    if info.width * info.height > budget:
        need = info.width * info.height * BYTES_PER_PIXEL * 10 / 2**30
        raise ImageReadError(
            f"{name}: {info.width} x {info.height} px would need about {need:.1f} GiB to review "
            f"here, more than this server can spare (at most {budget:,} pixels now); crop it or "
            "export it at a coarser resolution"
        )
    try:
        with warnings.catch_warnings():
            # A multi-page file is reviewed on its first page; describe_image tells the caller.
            warnings.simplefilter("ignore", MultiPageWarning)
            rgb = load_image(data, name=name, max_pixels=budget)
    except ImageReadError:
        raise
    except Exception as err:
        raise ImageReadError(f"{name}: could not be read ({type(err).__name__}: {err})") from err
    mpp = read_mpp(data)
    if mpp is None and parse_idc_name(name) is not None and max(rgb.shape[:2]) <= IDC_NATIVE:
        # The Kaggle IDC patches carry no resolution tags; their names (and their 50 px) say
        # what they are.
        mpp = IDC_MPP
    return ImageItem(content_hash(data), name, rgb, mpp, info.pages)


@dataclass(frozen=True)
class Reference:
    """An existing annotation imported for an item: a BACH label mask or a QuPath GeoJSON.

    ``region`` (bool, the image's pixels) is what the maps are scored against: every annotated
    pixel (labels above 0). ``summary`` names what was annotated, e.g. 'in situ + invasive'.
    """

    filename: str
    data_hash: str
    source: str
    region: np.ndarray
    summary: str


# How far a GeoJSON reference may reach beyond the image (a share of its side) before it counts
# as drawn on another image or at another scale: a QuPath outline traced along the border may
# stray a few pixels out, a whole-slide one or one of a 10-fold larger export lies far out.
OUTSIDE_SHARE = 0.02


def _inside(bounds: tuple[float, float, float, float], size: tuple[int, int]) -> None:
    """ValueError when ``bounds`` (x0, y0, x1, y1) reach beyond an image of ``size`` (width,
    height) by more than OUTSIDE_SHARE of its side."""
    x0, y0, x1, y1 = bounds
    width, height = size
    slack_x, slack_y = max(2.0, OUTSIDE_SHARE * width), max(2.0, OUTSIDE_SHARE * height)
    if x0 < -slack_x or y0 < -slack_y or x1 > width + slack_x or y1 > height + slack_y:
        raise ValueError(
            f"the GeoJSON spans x {x0:g} to {x1:g}, y {y0:g} to {y1:g}, beyond this image's "
            f"{width} x {height} px: is it drawn on another image, the whole slide, or an "
            "export at another scale? A reference must be in this image's pixels"
        )


def read_reference(name: str, data: bytes, size: tuple[int, int]) -> Reference:
    """Reads a label mask (PNG/TIFF, BACH values 0-3) or a GeoJSON file (by its suffix) as the
    reference region of an image of ``size`` (width, height).

    Raises ValueError with the reason: unreadable, another size, unknown values, not a region,
    a GeoJSON reaching well beyond the image, nothing annotated inside the image.
    """
    digest = content_hash(data)
    if name.lower().endswith((".geojson", ".json")):
        try:
            geojson = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"not GeoJSON text ({err})") from None
        except RecursionError:
            raise ValueError("GeoJSON nested too deeply to be a region") from None
        _inside(geojson_bounds(geojson), size)
        region = geojson_to_mask(geojson, size)
        reference = Reference(name, digest, "GeoJSON", region, "annotated region")
    else:
        labels = read_label_mask(data, size, (0, *BACH_LABELS))
        present = [BACH_LABELS[v] for v in sorted(set(np.unique(labels).tolist()) - {0})]
        reference = Reference(
            name,
            digest,
            "label mask",
            label_mask_to_region(labels),
            " + ".join(present) or "nothing annotated",
        )
    if not reference.region.any():
        raise ValueError("nothing is annotated inside the image: a reference needs a region")
    return reference
