"""Images under review and the reference annotations imported for them."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from annotations.geojson import geojson_to_mask
from annotations.masks import label_mask_to_region, read_label_mask
from annotations.records import content_hash
from lran_core.data import ImageReadError, load_image, read_mpp

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
    ``rgb`` (H, W, 3) uint8; ``mpp`` the microns per pixel from its resolution tags, if any.
    """

    item_hash: str
    filename: str
    rgb: np.ndarray
    mpp: float | None

    @property
    def width(self) -> int:
        """Width in image pixels."""
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        """Height in image pixels."""
        return int(self.rgb.shape[0])


def read_image(name: str, data: bytes) -> ImageItem:
    """Decodes an uploaded file into an :class:`ImageItem`.

    Raises ImageReadError naming the file for anything that is not a usable image, including
    decoder failures nobody anticipated (uploads are untrusted).
    """
    try:
        rgb = load_image(data, name=name)
    except ImageReadError:
        raise
    except Exception as err:
        raise ImageReadError(f"{name}: could not be read ({type(err).__name__}: {err})") from err
    return ImageItem(content_hash(data), name, rgb, read_mpp(data))


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


def read_reference(name: str, data: bytes, size: tuple[int, int]) -> Reference:
    """Reads a label mask (PNG/TIFF, BACH values 0-3) or a GeoJSON file (by its suffix) as the
    reference region of an image of ``size`` (width, height).

    Raises ValueError with the reason: unreadable, another size, unknown values, not a region,
    nothing annotated inside the image.
    """
    digest = content_hash(data)
    if name.lower().endswith((".geojson", ".json")):
        try:
            geojson = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"not GeoJSON text ({err})") from None
        except RecursionError:
            raise ValueError("GeoJSON nested too deeply to be a region") from None
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
