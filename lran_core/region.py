"""Region-level maps without tiles: every patch-sized window of a region, in a few passes.

A pathologist looks at a region exported from a slide viewer (hundreds to thousands of pixels at
a known resolution), not at a 50-pixel patch. :func:`map_region` resamples the image to the
scale of the model's input, mirrors half a field of tissue around it (so its border has
context, never a constant fill), and runs the fully convolutional part of each model over it in
large blocks. What a patch classifier does per patch (the spatial softmax of the attention mask,
global average pooling, the linear layer) is then done for every window of one field of view
centred on every cell of the feature grid, with box sums, exactly as the model would on that
window. So the probability map is the model's prediction for the patch around each point, at the
feature stride (IDC: 25 µm), and the CAM and attention maps are one continuous map with no tile
grid:

- probability of class c at a cell: softmax(fc(mean over the window of H)) with
  H = B * M + B and M the window's spatial softmax of the attention logits (paper eq. 1, 2);
- CAM: w_c . H at each cell, with M normalised over the window centred there (Zhou et al.);
- attention: exp(a) over its mean in the window around each point, averaged over channels
  (1 = uniform attention, as :meth:`LRANClassifier.explain` shows it for a patch).

Blocks overlap by a margin and their features are blended with linear ramps that sum to one, so
the maps are continuous across block borders as well; most regions fit in one block.
:func:`check_region_memory` refuses, before allocating, a region whose maps would not fit.

The region command, with scores against a reference mask, is ``lran-review region``
(:mod:`review.region`).
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import psutil
import torch
import torch.nn.functional as F
from torch import Tensor

from .maps import colourise, normalise
from .models import LRANClassifier, ModelMeta
from .predict import PRECISIONS, autocast, use_bf16
from .transforms import normalise as normalise_input

# An mpp outside these bounds is a unit mistake, not a microscope: 0.05 µm/px is finer than any
# light microscope resolves (mm/px or cm/px typed as µm/px lands below it), 100 µm/px is coarser
# than any slide thumbnail worth reading (nm/px lands above it).
MIN_MPP = 0.05
MAX_MPP = 100.0
# Up-sampling an image more than this to the model's resolution invents the detail it classifies.
MAX_UPSCALE = 4.0
# Working memory of the forward pass per input pixel: ResNet-18 to layer3 plus the attention
# branch, by peak RSS of explain() (fp32: 7.7 MB a 128 x 128 patch at batch 8; bf16 less),
# rounded up.
ACTIVATION_BYTES_PER_PIXEL = 512
# Side of a block in input pixels, and the context on each side that is computed but blended
# away (one IDC field): a 1024 px block with its margins holds ~0.8 GB of activations in fp32,
# half in bf16, and a 500 x 500 px BACH region at 4.67 µm/px (1568 px at the IDC models' input
# scale) takes 2 x 2 blocks.
BLOCK = 1024
MARGIN = 128
# Maps are kept at most this many pixels on a side (they are as smooth as the feature grid: a
# 6000 px region at 0.47 µm/px is 113 cells of the IDC models), so a large region's maps take
# megabytes, not gigabytes; scores resize them to the image's pixels one map at a time.
MAP_SIDE = 1024
# The attention branch pools five times: inputs are padded to a multiple of this.
INPUT_MULTIPLE = 32
# Channels of the feature grids processed at a time once the blocks are done (the window sums
# are per channel): 32 of the 256 channels of ResNet-18's layer3.
CHANNEL_CHUNK = 32


class RegionError(ValueError):
    """A region that cannot be mapped: the message says why (mpp, size, class)."""


class RegionTooLargeError(RegionError):
    """A region whose maps would need more memory than allowed; the message gives how much."""


@dataclass
class RegionMaps:
    """One model's maps over a region of ``image_shape`` = (H, W) pixels, kept at (h, w): the
    image's size, or smaller for a large image (see ``map_side`` of :func:`map_region`; the
    maps are as smooth as the model's feature grid, so nothing is lost, and a consumer resizes
    them to the image where it needs its pixels).

    ``probs`` (K, h, w) float32: the probability of every class for the field-of-view window
    centred at each point; ``cam`` (h, w) float32: raw CAM of ``cam_class``; ``attention``
    (h, w) float32: attention display map (1 = uniform; None for the base variant);
    ``windows``: how many windows were classified; ``blocks``: forward passes;
    ``window_overlap``: how much neighbouring windows overlap (1 - stride / field);
    ``seconds``: wall time of this model.
    """

    probs: np.ndarray
    cam: np.ndarray
    attention: np.ndarray | None
    windows: int
    blocks: int
    window_overlap: float
    cam_class: int
    seconds: float
    image_shape: tuple[int, int]


def native_size(meta: ModelMeta) -> int:
    """Side in pixels of the model's training patches before they were resized to
    ``input_size`` (``meta.native_size``; IDC: 50), or ``input_size`` when not recorded."""
    return meta.native_size or meta.input_size


def field_of_view_um(meta: ModelMeta) -> float:
    """Microns on a side that one model patch covers: ``native_size(meta) * meta.mpp``.

    ``meta.mpp`` is the microns per pixel of the training data at its native size, before the
    patches were resized to ``input_size``. IDC: 50 px at 4.0 µm/px, a 200 µm field, up-sampled
    to 128 px, so the model sees 200 / 128 = 1.5625 µm per input pixel.
    """
    if meta.mpp is None or not math.isfinite(meta.mpp) or meta.mpp <= 0:
        raise RegionError(
            f"model {meta.variant} has no microns per pixel in its checkpoint (mpp={meta.mpp}); "
            "its field of view is unknown, so a region cannot be mapped with it"
        )
    return native_size(meta) * meta.mpp


def check_mpp(mpp: float | None, model_mpp: float) -> float:
    """Gives ``mpp`` as a float when it is usable with a model trained at ``model_mpp`` µm/px;
    raises RegionError saying why not (missing, not a number, out of range, too coarse)."""
    if mpp is None:
        raise RegionError(
            "microns per pixel of the image are unknown: give them (e.g. 0.47 for a 20x scan) "
            "or use a TIFF with resolution tags"
        )
    mpp = float(mpp)
    if not math.isfinite(mpp) or mpp <= 0:
        raise RegionError(f"microns per pixel must be a positive number, got {mpp}")
    if not MIN_MPP <= mpp <= MAX_MPP:
        raise RegionError(
            f"{mpp} µm/px is outside [{MIN_MPP}, {MAX_MPP}]: a unit mistake? (20x scans are "
            "about 0.5 µm/px, 40x about 0.25)"
        )
    if mpp / model_mpp > MAX_UPSCALE:
        raise RegionError(
            f"the image at {mpp} µm/px is too coarse for a model trained at {model_mpp} µm/px: "
            f"it would need a {mpp / model_mpp:.1f}-fold up-sampling (at most {MAX_UPSCALE:g})"
        )
    return mpp


@dataclass(frozen=True)
class _Geometry:
    """Where a region lies on one model's input grid.

    ``scale``: input pixels per image pixel; ``size``: the image at that scale (h, w); ``stride``:
    input pixels per feature cell; ``k``: cells per field of view (even); ``cells``: cells
    covering the image (h, w); ``padded``: the input after mirrored context (h, w), multiples
    of INPUT_MULTIPLE, with ``k // 2`` cells of context on the top and left.
    """

    scale: float
    size: tuple[int, int]
    stride: int
    k: int
    cells: tuple[int, int]
    padded: tuple[int, int]

    @property
    def pad(self) -> int:
        """Cells of mirrored context before the image on each axis."""
        return self.k // 2


def unmappable(model: LRANClassifier) -> str | None:
    """Why :func:`map_region` cannot map regions with ``model`` (its input is not an even
    number of its feature cells, so windows cannot be centred on cell corners), or None."""
    size, stride = model.meta.input_size, model.features.stride
    if size % stride or (size // stride) % 2:
        return (
            f"model {model.meta.variant}: an input of {size} px is not an even number of its "
            f"{stride} px feature cells, so its windows cannot be centred on cell corners"
        )
    return None


def _geometry(model: LRANClassifier, shape: tuple[int, int], mpp: float) -> _Geometry:
    meta = model.meta
    stride = model.features.stride
    if (why := unmappable(model)) is not None:
        raise RegionError(why)
    k = meta.input_size // stride
    scale = mpp * meta.input_size / field_of_view_um(meta)
    size = (max(1, round(shape[0] * scale)), max(1, round(shape[1] * scale)))
    cells = (math.ceil(size[0] / stride), math.ceil(size[1] / stride))
    padded = tuple(math.ceil((c + k) * stride / INPUT_MULTIPLE) * INPUT_MULTIPLE for c in cells)
    return _Geometry(scale, size, stride, k, cells, (padded[0], padded[1]))


def estimate_region_bytes(
    models: Mapping[str, LRANClassifier],
    shape: tuple[int, int],
    mpp: float,
    block: int = BLOCK,
    map_side: int | None = MAP_SIDE,
) -> int:
    """Bytes that :func:`map_region` needs for an image of ``shape`` = (H, W) at ``mpp``,
    beyond the image itself: every model's output maps (at :func:`map_shape`), and the largest
    model's working set: the image at its input scale, one block's activations, the feature
    grids, and one map's resizing."""
    outputs = 0
    working = 0
    for model in models.values():
        meta = model.meta
        field_of_view_um(meta)
        check_mpp(mpp, float(meta.mpp or 0))
        geo = _geometry(model, shape, mpp)
        maps = len(meta.class_names) + 1 + (model.attention_branch is not None)
        kept = map_shape(shape, map_side)
        outputs += maps * kept[0] * kept[1] * 4
        side = min(block + 2 * MARGIN, max(geo.padded))
        channels = model.features.out_channels
        cells = geo.padded[0] * geo.padded[1] // geo.stride**2
        # B and the attention logits at the cells, the finer logits at 4x the cells, each in
        # float32, with the sums and a product as large as one of them.
        grids = channels * cells * 4 * (2 + 4 + 3)
        image = geo.padded[0] * geo.padded[1] * 3 * 5  # uint8, then one float32 block at a time
        resize = 4 * (kept[0] + geo.stride) * (kept[1] + geo.stride)
        working = max(working, side * side * ACTIVATION_BYTES_PER_PIXEL + grids + image + resize)
    return outputs + working


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"


def check_region_memory(
    models: Mapping[str, LRANClassifier],
    shape: tuple[int, int],
    mpp: float,
    limit_bytes: int | None = None,
    block: int = BLOCK,
    map_side: int | None = MAP_SIDE,
) -> int:
    """Gives :func:`estimate_region_bytes`, or raises RegionTooLargeError when it exceeds
    ``limit_bytes`` (default: the memory available now), saying how much it would need."""
    needed = estimate_region_bytes(models, shape, mpp, block, map_side)
    limit = psutil.virtual_memory().available if limit_bytes is None else limit_bytes
    if needed > limit:
        raise RegionTooLargeError(
            f"a {shape[1]} x {shape[0]} px region at {mpp} µm/px would need {_gib(needed)} for "
            f"the maps of {len(models)} model(s), more than the {_gib(limit)} available; "
            "crop it, or export it at a coarser resolution"
        )
    return needed


def _input_image(rgb: np.ndarray, geo: _Geometry) -> np.ndarray:
    """The image at the model's input scale with mirrored context: ``geo.pad`` cells on the top
    and left, the rest of ``geo.padded`` on the bottom and right (uint8, (h, w, 3))."""
    h, w = geo.size
    shrinking = h * w < rgb.shape[0] * rgb.shape[1]
    image = cv2.resize(
        np.ascontiguousarray(rgb),
        (w, h),
        interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR,
    )
    before = geo.pad * geo.stride
    after = (geo.padded[0] - h - before, geo.padded[1] - w - before)
    # Symmetric: the edge pixel is repeated once, then the tissue mirrored; works for any size.
    return np.pad(image, ((before, after[0]), (before, after[1]), (0, 0)), mode="symmetric")


def _ramp(length: int, start: bool, end: bool, margin: int) -> np.ndarray:
    """Blending weight along one axis of a block of ``length`` cells: rising over ``margin``
    cells from an edge that has a neighbour (``start``/``end``), 1 elsewhere; never 0."""
    weight = np.ones(length, dtype=np.float32)
    position = np.arange(length, dtype=np.float32) + 0.5
    if start:
        weight = np.minimum(weight, position / margin)
    if end:
        weight = np.minimum(weight, (length - position) / margin)
    return weight


def _blocks(total: int, block: int, margin: int) -> list[tuple[int, int]]:
    """(start, stop) of blocks with their margins along one axis of ``total`` pixels: as few
    blocks as fit about ``block`` pixels each, of equal length (multiples of INPUT_MULTIPLE)."""
    n = max(1, round(total / block))
    if n == 1:
        return [(0, total)]
    length = math.ceil(total / n / INPUT_MULTIPLE) * INPUT_MULTIPLE
    starts = range(0, total, length)
    return [(max(0, s - margin), min(total, s + length + margin)) for s in starts]


@torch.no_grad()
def _features(
    model: LRANClassifier,
    image: np.ndarray,
    geo: _Geometry,
    block: int,
    bf16: bool,
    step: Callable[[], None],
) -> tuple[Tensor, Tensor | None, Tensor | None, int]:
    """B and the attention logits at the cells of the whole padded input, the finer logits at
    theirs, blended over blocks; and the number of blocks."""
    meta = model.meta
    device = next(model.parameters()).device
    s = geo.stride
    cells = (geo.padded[0] // s, geo.padded[1] // s)
    rows, cols = _blocks(geo.padded[0], block, MARGIN), _blocks(geo.padded[1], block, MARGIN)
    sums: dict[str, Tensor] = {}
    weights: dict[str, Tensor] = {}
    for y0, y1 in rows:
        for x0, x1 in cols:
            crop = torch.from_numpy(np.ascontiguousarray(image[y0:y1, x0:x1])).permute(2, 0, 1)
            x = normalise_input(crop[None].float() / 255.0, meta.mean, meta.std)
            with autocast(device, "bf16" if bf16 else "fp32"):
                parts = model.dense_features(
                    x.to(device).contiguous(memory_format=torch.channels_last)
                )
            for name, grid in zip(("b", "logits", "fine"), parts, strict=True):
                if grid is None:
                    continue
                grid = grid[0].float().cpu()
                per_px = (y1 - y0) // grid.shape[-2]
                full = (geo.padded[0] // per_px, geo.padded[1] // per_px)
                m = MARGIN // per_px
                wy = _ramp(grid.shape[-2], y0 > 0, y1 < geo.padded[0], m)
                wx = _ramp(grid.shape[-1], x0 > 0, x1 < geo.padded[1], m)
                weight = torch.from_numpy(np.outer(wy, wx))
                if name not in sums:
                    sums[name] = torch.zeros(grid.shape[0], *full)
                    weights[name] = torch.zeros(full)
                gy, gx = y0 // per_px, x0 // per_px
                window = (slice(gy, gy + grid.shape[-2]), slice(gx, gx + grid.shape[-1]))
                sums[name][(slice(None), *window)].addcmul_(grid, weight)
                weights[name][window] += weight
            del parts, x, crop
            release_free_memory()
            step()
    # In place: a second copy of the grids would be the largest allocation after the blocks.
    for name, total in sums.items():
        total /= weights.pop(name)
    assert sums["b"].shape[-2:] == cells
    return sums["b"], sums.get("logits"), sums.get("fine"), len(rows) * len(cols)


def _box_sum(x: Tensor, k: int) -> Tensor:
    """Sums of (C, h, w) over every k x k window (stride 1, no padding): (C, h-k+1, w-k+1)."""
    return F.avg_pool2d(x[None], k, stride=1)[0] * (k * k)


def _corners_to_cells(x: Tensor) -> Tensor:
    """(C, h+1, w+1) values at cell corners to (C, h, w) at cell centres (2 x 2 means)."""
    return F.avg_pool2d(x[None], 2, stride=1)[0]


def window_maps(
    b: Tensor, logits: Tensor | None, weight: Tensor, bias: Tensor, k: int, cells: tuple[int, int]
) -> tuple[Tensor, Tensor]:
    """What the classifier does for every window of k x k cells, from the feature grids.

    Takes B (C, hp, wp) and the attention logits (C, hp, wp) (None for the base variant) of an
    input padded by k/2 cells on the top and left, the linear layer's ``weight`` (K, C) and
    ``bias`` (K,), and ``cells`` = (h, w), the cells of the image itself. Gives the logits of the
    window centred on every cell corner of the image, (K, h + 1, w + 1), float64: the linear
    layer on the mean over the window of H = B * M + B, M the window's spatial softmax (paper
    eq. 1, 2); and H (C, h, w) float32 at the image's cells, with M normalised over the window
    centred on each cell (its four corners' windows averaged).
    """
    h, w = cells
    p = k // 2
    if logits is None:
        pooled = _box_sum(b.double(), k)[:, : h + 1, : w + 1] / (k * k)
        h_cells = b[:, p : p + h, p : p + w].float()
    else:
        # exp(a - max): the same ratios, without overflow; float64 keeps far windows from 0.
        e = torch.exp((logits - logits.amax(dim=(1, 2), keepdim=True)).double())
        z = _box_sum(e, k)[:, : h + 1, : w + 1]
        be = _box_sum(b.double() * e, k)[:, : h + 1, : w + 1]
        pooled = (_box_sum(b.double(), k)[:, : h + 1, : w + 1] + be / z) / (k * k)
        e_cells = e[:, p : p + h, p : p + w]
        h_cells = (b[:, p : p + h, p : p + w] * (1 + e_cells / _corners_to_cells(z))).float()
    corner_logits = torch.einsum("kc,chw->khw", weight.double(), pooled)
    return corner_logits + bias.double().view(-1, 1, 1), h_cells


def _to_image(
    grid: np.ndarray,
    geo: _Geometry,
    per_px: int,
    offset: int,
    image: tuple[int, int],
    out: np.ndarray,
) -> None:
    """Resizes a map on a grid of ``per_px``-pixel cells (the image's cells start ``offset``
    cells in) to the image of ``image`` = (H, W) pixels drawn at ``out``'s size (the image's, or
    smaller), into ``out`` float32; bilinear, with each cell's value at its centre."""
    n = (math.ceil(geo.size[0] / per_px), math.ceil(geo.size[1] / per_px))
    cropped = np.ascontiguousarray(grid[offset : offset + n[0], offset : offset + n[1]])
    shrink = (out.shape[0] / image[0], out.shape[1] / image[1])
    height = max(out.shape[0], round(n[0] * per_px / geo.scale * shrink[0]))
    width = max(out.shape[1], round(n[1] * per_px / geo.scale * shrink[1]))
    resized = cv2.resize(cropped, (width, height), interpolation=cv2.INTER_LINEAR)
    out[...] = resized[: out.shape[0], : out.shape[1]]


def map_shape(shape: tuple[int, int], map_side: int | None) -> tuple[int, int]:
    """The size maps of an image of ``shape`` = (H, W) are kept at: the image's own, or scaled
    so that its longer side is ``map_side`` (never larger than the image)."""
    if map_side is None or max(shape) <= map_side:
        return shape
    f = map_side / max(shape)
    return max(1, round(shape[0] * f)), max(1, round(shape[1] * f))


def _map_one(
    model: LRANClassifier,
    rgb: np.ndarray,
    mpp: float,
    cam_class: int,
    block: int,
    bf16: bool,
    step: Callable[[], None],
    map_side: int | None,
) -> RegionMaps:
    started = time.perf_counter()
    geo = _geometry(model, rgb.shape[:2], mpp)
    fine_stride = geo.stride
    if model.attention_branch is not None:
        fine_stride = model.attention_branch.output_stride
        if fine_stride > geo.stride or geo.stride % fine_stride:
            raise RegionError(
                f"model {model.meta.variant}: its attention cells ({fine_stride} px) do not "
                f"divide its feature cells ({geo.stride} px)"
            )
    image = _input_image(rgb, geo)
    b, logits, fine, blocks = _features(model, image, geo, block, bf16, step)
    del image
    k, p = geo.k, geo.pad
    h, w = geo.cells
    weight = model.fc.weight.detach().float()
    bias = model.fc.bias.detach().float()
    windows = (h + 1) * (w + 1)
    # Every step after the blocks is per channel until a sum over channels, so it runs over
    # CHANNEL_CHUNK channels at a time: the float64 box sums of all 256 channels of a large
    # region would take more memory than the feature grids themselves.
    corner_logits = torch.zeros((len(bias), h + 1, w + 1), dtype=torch.float64)
    cam_t = torch.zeros((h, w), dtype=torch.float32)
    no_bias = torch.zeros_like(bias)
    for c in range(0, b.shape[0], CHANNEL_CHUNK):
        chunk = slice(c, c + CHANNEL_CHUNK)
        part, h_cells = window_maps(
            b[chunk],
            None if logits is None else logits[chunk],
            weight[:, chunk],
            no_bias,
            k,
            (h, w),
        )
        corner_logits += part
        cam_t += torch.einsum("c,chw->hw", weight[cam_class, chunk], h_cells)
        del part, h_cells
    del b, logits
    corner_logits += bias.double().view(-1, 1, 1)
    probs = _corners_to_cells(corner_logits.softmax(0)).float().numpy()
    cam = cam_t.numpy()
    attention = None
    if fine is not None:
        # The attention logits' cells are ``ratio`` times finer than the base's (2 for the
        # default cuts, 1 for layer2): its window and its first cell scale with them.
        ratio = geo.stride // fine_stride
        attention = _attention(fine, ratio * k // 2).numpy()
        del fine
    k_classes = len(model.meta.class_names)
    shape = (int(rgb.shape[0]), int(rgb.shape[1]))
    full = np.empty(
        (k_classes + 1 + (attention is not None), *map_shape(shape, map_side)), dtype=np.float32
    )
    for c in range(k_classes):
        _to_image(probs[c], geo, geo.stride, 0, shape, full[c])
    _to_image(cam, geo, geo.stride, 0, shape, full[k_classes])
    if attention is not None:
        _to_image(attention, geo, fine_stride, ratio * p, shape, full[k_classes + 1])
    return RegionMaps(
        probs=full[:k_classes],
        cam=full[k_classes],
        attention=full[k_classes + 1] if attention is not None else None,
        windows=windows,
        blocks=blocks,
        window_overlap=1 - 1 / k,
        cam_class=cam_class,
        seconds=time.perf_counter() - started,
        image_shape=shape,
    )


def _attention(fine: Tensor, k: int) -> Tensor:
    """The attention display map from the finer logits (C, h, w): exp(a) of every channel
    relative to its mean over the field-of-view window around each point (2k + 1 fine cells,
    k the half field of view in fine cells), averaged over the channels; CHANNEL_CHUNK
    channels at a time."""
    total = torch.zeros(fine.shape[-2:], dtype=torch.float32)
    tiny = torch.finfo(torch.float32).tiny
    for c in range(0, fine.shape[0], CHANNEL_CHUNK):
        part = fine[c : c + CHANNEL_CHUNK]
        ef = torch.exp(part - part.amax(dim=(1, 2), keepdim=True))
        # Rows, then columns: the window's valid part is a rectangle, so the two means without
        # the padding are its mean, at 2 (2k + 1) reads a point instead of (2k + 1)^2 (4x faster
        # for IDC's k = 8; this was a third of a region's time).
        side = 2 * k + 1
        mean = F.avg_pool2d(ef[None], (1, side), 1, (0, k), count_include_pad=False)
        mean = F.avg_pool2d(mean, (side, 1), 1, (k, 0), count_include_pad=False)[0]
        total += ef.div_(mean.clamp_min_(tiny)).sum(0)
        del ef, mean
    return total / fine.shape[0]


def _find_malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim`` where the process has it (Linux with glibc), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


_MALLOC_TRIM = _find_malloc_trim()


def release_free_memory() -> None:
    """Hands the heap memory freed so far back to the operating system (glibc's
    ``malloc_trim``; nothing elsewhere).

    glibc keeps freed blocks of up to 32 MB in the process's heaps for reuse, and a block's
    activations are such blocks: without this the RSS after a large region stays hundreds of
    MB above what is still in use, which the next large allocations (mmap'ed: the image, a
    full-size map) cannot reuse. Takes milliseconds."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def _is_channels_last(model: torch.nn.Module) -> bool:
    weights = [p for p in model.parameters() if p.ndim == 4]
    return all(p.is_contiguous(memory_format=torch.channels_last) for p in weights)


# The app shares its cached models between sessions (threads). Region runs take this lock so
# one run cannot restore the layout under another; a patch explain() meanwhile reads the same
# values in either layout.
_LAYOUT_LOCK = threading.Lock()


@contextlib.contextmanager
def _channels_last(models: Iterable[LRANClassifier]) -> Iterator[None]:
    """Convolution weights in channels-last layout for the run (oneDNN's fast path on CPU;
    same values), then back, so the caller's models are left as they were."""
    with _LAYOUT_LOCK:
        restore = [m for m in models if not _is_channels_last(m)]
        for m in restore:
            m.to(memory_format=torch.channels_last)
        try:
            yield
        finally:
            for m in restore:
                m.to(memory_format=torch.contiguous_format)


def map_region(
    models: Mapping[str, LRANClassifier],
    rgb: np.ndarray,
    mpp: float | None,
    cam_class: int | None = None,
    progress: Callable[[float], None] | None = None,
    limit_bytes: int | None = None,
    precision: str = "auto",
    block: int = BLOCK,
    map_side: int | None = MAP_SIDE,
) -> dict[str, RegionMaps]:
    """Maps a region with every model (see the module doc).

    Takes models keyed by name, ``rgb`` (H, W, 3) uint8 at ``mpp`` microns per pixel,
    ``cam_class`` (default: the last class, the positive one for IDC), ``progress``, called with
    the fraction done (0..1] after every block, ``precision``: ``fp32``, ``bf16`` (autocast) or
    ``auto`` (bf16 on CPUs with bf16 instructions, where it runs ~2x faster; fp32 elsewhere),
    ``block``, the side of a forward pass in input pixels (a multiple of 32), and
    ``map_side``, the longer side the maps are kept at (None: the image's own size). Gives
    :class:`RegionMaps` per model. Raises RegionError for an unusable mpp,
    class or precision, and RegionTooLargeError, before allocating, when the maps would need
    more than ``limit_bytes`` (default: the memory available now).
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"rgb must be (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
    if precision not in PRECISIONS:
        raise RegionError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if block < INPUT_MULTIPLE or block % INPUT_MULTIPLE:
        raise RegionError(f"block must be a positive multiple of {INPUT_MULTIPLE}, got {block}")
    if not models:
        raise RegionError("no models to map the region with")
    classes = {}
    checked = 0.0
    for name, model in models.items():
        k = len(model.meta.class_names)
        classes[name] = k - 1 if cam_class is None else cam_class
        if not 0 <= classes[name] < k:
            raise RegionError(f"cam_class {cam_class} is not a class of {name} ({k} classes)")
        field_of_view_um(model.meta)
        checked = check_mpp(mpp, float(model.meta.mpp or 0))
    check_region_memory(models, rgb.shape[:2], checked, limit_bytes, block, map_side)

    def count(model: LRANClassifier) -> int:
        geo = _geometry(model, rgb.shape[:2], checked)
        return len(_blocks(geo.padded[0], block, MARGIN)) * len(
            _blocks(geo.padded[1], block, MARGIN)
        )

    total = sum(count(m) for m in models.values())
    done = 0

    def step() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done / total)

    out = {}
    with _channels_last(models.values()):
        for name, model in models.items():
            out[name] = _map_one(
                model, rgb, checked, classes[name], block, _bf16(model, precision), step, map_side
            )
            # The model's feature grids and working set are freed: give them back.
            release_free_memory()
    return out


def _bf16(model: LRANClassifier, precision: str) -> bool:
    return use_bf16(next(model.parameters()).device, precision)


def write_pngs(folder: Path, stem: str, maps: Mapping[str, RegionMaps]) -> list[str]:
    """Writes heatmap PNGs of every model's maps into ``folder`` as ``<stem>_<model>_<map>.png``;
    gives their paths. Probabilities keep their own 0..1 scale; CAM and attention are ReLU'd and
    min-max scaled per map (design.md section 2). Raises OSError when a file cannot be
    written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, m in maps.items():
        images = {f"prob{c}": colourise(np.clip(p, 0, 1)) for c, p in enumerate(m.probs)}
        images["cam"] = colourise(normalise(m.cam))
        if m.attention is not None:
            images["attention"] = colourise(normalise(m.attention))
        for kind, rgb in images.items():
            path = folder / f"{stem}_{name}_{kind}.png"
            if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
                raise OSError(f"{path}: could not be written")
            written.append(str(path))
    return written
