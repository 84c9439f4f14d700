"""Region masks as PNG, and class-index label masks (BACH: 0 unannotated, 1 benign, 2 in situ,
3 invasive)."""

from __future__ import annotations

import io
from collections.abc import Iterable

import numpy as np
from PIL import Image, UnidentifiedImageError

from annotations.raster import as_mask


def _open_image(data: bytes) -> Image.Image:
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ValueError(f"not a readable image: {exc}") from None
    return img


def mask_to_png(mask: np.ndarray) -> bytes:
    """Encode a bool (H, W) mask as an 8-bit greyscale PNG, 255 inside and 0 outside."""
    arr = as_mask(mask)
    buf = io.BytesIO()
    Image.fromarray(arr.astype(np.uint8) * 255).save(buf, format="PNG")
    return buf.getvalue()


def png_to_mask(data: bytes) -> np.ndarray:
    """Decode a mask image (PNG bytes, any mode) into a bool (H, W) mask: grey level > 127."""
    img = _open_image(data)
    if img.mode == "1":
        return np.asarray(img, dtype=bool).copy()
    return np.asarray(img.convert("L")) > 127


def label_mask_to_region(
    label_mask: np.ndarray, positive_values: Iterable[int] = (1, 2, 3)
) -> np.ndarray:
    """Gives the bool (H, W) region where a label mask (H, W) holds one of `positive_values`
    (default: every annotated BACH class, i.e. benign, in situ and invasive)."""
    arr = np.asarray(label_mask)
    if arr.ndim != 2:
        raise ValueError(f"label mask must be 2-D (H, W), got shape {arr.shape}")
    return np.isin(arr, list(positive_values))


def read_label_mask(
    data: bytes,
    expected_size: tuple[int, int] | None = None,
    allowed_values: Iterable[int] = (0, 1, 2, 3),
) -> np.ndarray:
    """Read a class-index mask image (BACH convention: 0 unannotated, 1 benign, 2 in situ,
    3 invasive).

    Takes the image bytes (PNG/TIFF; greyscale, palette indices, or RGB with equal channels), the
    size (width, height) it must have, if known, and the values it may contain. Gives a uint8
    (H, W) array. Raises ValueError saying what is wrong: unreadable, colour, wrong size (both
    sizes given) or unknown values (which ones).
    """
    img = _open_image(data)
    if img.mode in ("RGB", "RGBA"):
        rgb = np.asarray(img.convert("RGB"))
        grey = np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])
        if not grey:
            raise ValueError("label mask is a colour image; expected one channel of class indices")
        arr = rgb[..., 0]
    elif img.mode in ("1", "L", "P", "I", "I;16", "I;16B", "I;16L"):
        # Palette images hold class indices; their colours are only for display.
        arr = np.asarray(img)
    else:
        raise ValueError(f"label mask has image mode {img.mode!r}; expected a single channel")
    if expected_size is not None and tuple(img.size) != tuple(expected_size):
        raise ValueError(
            f"label mask is {img.size[0]} x {img.size[1]} px (width x height) but the image is "
            f"{expected_size[0]} x {expected_size[1]} px"
        )
    allowed = sorted(int(v) for v in allowed_values)
    present = np.unique(arr.astype(np.int64))
    unknown = sorted(set(present.tolist()) - set(allowed))
    if unknown:
        raise ValueError(f"label mask has values {unknown} outside the allowed {allowed}")
    return arr.astype(np.uint8)
