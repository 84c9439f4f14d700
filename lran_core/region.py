"""Region-level maps: tile an image larger than the model's patch, predict, and stitch.

A pathologist looks at a region exported from a slide viewer (hundreds to thousands of pixels at
a known resolution), not at a 50-pixel patch. :func:`map_region` resamples the image to the
resolution the model was trained at, cuts overlapping tiles of the model's field of view, runs
each model over them in batches and blends the tiles' maps (a smooth window, weighted sums over
weights, so overlaps average rather than the last tile winning) into a probability map per class,
a CAM and an attention map per model, at the original image's pixel size.

Memory stays flat in the number of tiles: tiles stream through in batches and their maps are
added into accumulators at the model's native resolution; no tile's maps are kept.
:func:`check_region_memory` refuses, before allocating, a region whose maps would not fit.

The region command, with scores against a reference mask, is ``lran-review region``
(:mod:`review.region`).
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import psutil
import torch

from .maps import colourise, normalise
from .models import LRANClassifier, ModelMeta
from .predict import PRECISIONS, use_bf16
from .transforms import to_input

# An mpp outside these bounds is a unit mistake, not a microscope: 0.05 um/px is finer than any
# light microscope resolves (mm/px or cm/px typed as um/px lands below it), 100 um/px is coarser
# than any slide thumbnail worth reading (nm/px lands above it).
MIN_MPP = 0.05
MAX_MPP = 100.0
# Up-sampling an image more than this to the model's resolution invents the detail it classifies.
MAX_UPSCALE = 4.0
# Working memory of one patch in flight through a model: activations of ResNet-18 to layer3 plus
# the attention branch at 128 x 128, by peak RSS over a batch of explain() (fp32: 7.7 MB a patch
# at batch 8, 5.4 at 32, 5.1 at 64; bf16 less), rounded up.
PATCH_BYTES = 8 * 2**20
# Tiles overlap by a quarter of their side by default: on the 2-core CPU this maps a 500 x 500
# region at 4.7 um/px with the three IDC models in ~3.5 s (bf16), against ~9 s at one half, for
# a tumour AUROC on BACH A03 lower by 0.005-0.009 (bench/bench_region.py --sweep).
DEFAULT_OVERLAP = 0.25


class RegionError(ValueError):
    """A region that cannot be mapped: the message says why (mpp, size, class)."""


class RegionTooLargeError(RegionError):
    """A region whose maps would need more memory than allowed; the message gives how much."""


@dataclass
class RegionMaps:
    """One model's maps over a region of H x W pixels (the original image's size).

    ``probs`` (K, H, W) float32: blended tile probabilities of every class; ``cam`` (H, W)
    float32: blended raw CAM of ``cam_class``; ``attention`` (H, W) float32: blended attention
    display map (1 = uniform; None for the base variant); ``tiles``: how many tiles were
    predicted; ``cam_class``: the class of ``cam``; ``seconds``: wall time of this model.
    The maps are views into one float32 block of (K + 1, or K + 2 with attention, H, W).
    """

    probs: np.ndarray
    cam: np.ndarray
    attention: np.ndarray | None
    tiles: int
    cam_class: int
    seconds: float


def native_size(meta: ModelMeta) -> int:
    """Side in pixels of the model's training patches before they were resized to
    ``input_size`` (``meta.native_size``; IDC: 50), or ``input_size`` when not recorded."""
    return meta.native_size or meta.input_size


def field_of_view_um(meta: ModelMeta) -> float:
    """Microns on a side that one model patch covers: ``native_size(meta) * meta.mpp``.

    ``meta.mpp`` is the microns per pixel of the training data at its native size, before the
    patches were resized to ``input_size``. IDC: 50 px at 4.0 um/px, a 200 um field, up-sampled
    to 128 px, so the model sees 200 / 128 = 1.5625 um per input pixel.
    """
    if meta.mpp is None or not math.isfinite(meta.mpp) or meta.mpp <= 0:
        raise RegionError(
            f"model {meta.variant} has no microns per pixel in its checkpoint (mpp={meta.mpp}); "
            "its field of view is unknown, so a region cannot be tiled for it"
        )
    return native_size(meta) * meta.mpp


def check_mpp(mpp: float | None, model_mpp: float) -> float:
    """Gives ``mpp`` as a float when it is usable with a model trained at ``model_mpp`` um/px;
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


def tile_starts(length: int, tile: int, overlap: float) -> list[int]:
    """Start offsets of tiles of side ``tile`` covering ``length`` pixels (``length >= tile``),
    stride ``round(tile * (1 - overlap))``; the last tile is aligned to the end, so every pixel
    is covered and no tile runs off the image."""
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    if length < tile:
        raise ValueError(f"length {length} is shorter than a tile of {tile}")
    stride = max(1, round(tile * (1 - overlap)))
    starts = list(range(0, length - tile + 1, stride))
    if starts[-1] != length - tile:
        starts.append(length - tile)
    return starts


def tile_window(tile: int) -> np.ndarray:
    """Blending weight of a tile (tile, tile) float32: sin(pi t) in each direction at pixel
    centres t, so a tile counts least at its edges, where its context is cut off, yet never 0
    (a pixel covered by one tile keeps that tile's value)."""
    w = np.sin(np.pi * (np.arange(tile) + 0.5) / tile).astype(np.float32)
    return np.outer(w, w)


class TileBlender:
    """Accumulates tile maps into weighted sums and weights at one resolution.

    Args:
        channels: C, maps per tile.
        height, width: size of the grid the tiles lie on.
        tile: side of a tile on that grid.
    """

    def __init__(self, channels: int, height: int, width: int, tile: int) -> None:
        # np.full touches every page now, unlike the lazily mapped np.zeros: the memory is taken
        # (or refused) before minutes of tiles rather than bit by bit during them.
        self.sums = np.full((channels, height, width), 0.0, dtype=np.float32)
        self.weights = np.full((height, width), 0.0, dtype=np.float32)
        self.window = tile_window(tile)
        self.tile = tile

    def add(self, y: int, x: int, maps: np.ndarray) -> None:
        """Adds one tile's maps (C, tile, tile) whose top-left corner is at (y, x)."""
        t = self.tile
        self.sums[:, y : y + t, x : x + t] += maps * self.window
        self.weights[y : y + t, x : x + t] += self.window

    def result(self) -> np.ndarray:
        """The blended maps (C, height, width): weighted sums over weights (0 where no tile).

        Divides the sums in place (no second copy of the maps), so call it once, after the
        last :meth:`add`.
        """
        self.sums /= np.maximum(self.weights, np.finfo(np.float32).tiny)
        return self.sums


def _grid(shape: tuple[int, int], mpp: float, meta: ModelMeta) -> tuple[int, int, int]:
    """(height, width) of the image resampled to the model's native mpp, and the tile side."""
    scale = mpp / meta.mpp
    return max(1, round(shape[0] * scale)), max(1, round(shape[1] * scale)), native_size(meta)


def _corners(
    shape: tuple[int, int], mpp: float, meta: ModelMeta, overlap: float
) -> list[tuple[int, int]]:
    """Top-left corners (y, x) of the tiles on the resampled (and padded) image."""
    height, width, tile = _grid(shape, mpp, meta)
    ys = tile_starts(max(height, tile), tile, overlap)
    xs = tile_starts(max(width, tile), tile, overlap)
    return [(y, x) for y in ys for x in xs]


def estimate_region_bytes(
    models: Mapping[str, LRANClassifier],
    shape: tuple[int, int],
    mpp: float,
    batch_size: int = 32,
) -> int:
    """Bytes that :func:`map_region` needs for an image of ``shape`` = (H, W) at ``mpp``,
    beyond the image itself: every model's output maps at (H, W), the largest model's
    accumulators and resampled image at its native resolution, and one batch in flight."""
    outputs = 0
    working = 0
    for model in models.values():
        meta = model.meta
        field_of_view_um(meta)
        check_mpp(mpp, meta.mpp)
        k = len(meta.class_names)
        maps = k + 1 + (model.attention_branch is not None)
        outputs += maps * shape[0] * shape[1] * 4
        h, w, tile = _grid(shape, mpp, meta)
        h, w = max(h, tile), max(w, tile)
        # Sums and weights (float32), the resampled image (uint8), and the divisor and one map's
        # contiguous copy while resizing (float32).
        grid = (maps + 3) * h * w * 4 + h * w * 3
        working = max(working, grid + batch_size * PATCH_BYTES)
    return outputs + working


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"


def check_region_memory(
    models: Mapping[str, LRANClassifier],
    shape: tuple[int, int],
    mpp: float,
    batch_size: int = 32,
    limit_bytes: int | None = None,
) -> int:
    """Gives :func:`estimate_region_bytes`, or raises RegionTooLargeError when it exceeds
    ``limit_bytes`` (default: the memory available now), saying how much it would need."""
    needed = estimate_region_bytes(models, shape, mpp, batch_size)
    limit = psutil.virtual_memory().available if limit_bytes is None else limit_bytes
    if needed > limit:
        raise RegionTooLargeError(
            f"a {shape[1]} x {shape[0]} px region at {mpp} µm/px would need {_gib(needed)} for "
            f"the maps of {len(models)} model(s), more than the {_gib(limit)} available; "
            "crop it, or export it at a coarser resolution"
        )
    return needed


def _resample(rgb: np.ndarray, height: int, width: int, tile: int) -> np.ndarray:
    """The image at (height, width), padded white (glass, as IDC's edge patches were in training)
    at the bottom/right to at least one tile."""
    shrinking = height * width < rgb.shape[0] * rgb.shape[1]
    interp = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    out = cv2.resize(np.ascontiguousarray(rgb), (width, height), interpolation=interp)
    if height >= tile and width >= tile:
        return out
    padded = np.full((max(height, tile), max(width, tile), 3), 255, dtype=np.uint8)
    padded[:height, :width] = out
    return padded


def _map_one(
    model: LRANClassifier,
    rgb: np.ndarray,
    mpp: float,
    overlap: float,
    batch_size: int,
    cam_class: int,
    bf16: bool,
    step: Callable[[], None],
) -> RegionMaps:
    started = time.perf_counter()
    meta = model.meta
    height, width, tile = _grid(rgb.shape[:2], mpp, meta)
    image = _resample(rgb, height, width, tile)
    corners = _corners(rgb.shape[:2], mpp, meta, overlap)
    k = len(meta.class_names)
    has_attention = model.attention_branch is not None
    blender = TileBlender(k + 1 + has_attention, image.shape[0], image.shape[1], tile)
    device = next(model.parameters()).device
    size = meta.input_size
    for first in range(0, len(corners), batch_size):
        batch = corners[first : first + batch_size]
        crops = np.stack([image[y : y + tile, x : x + tile] for y, x in batch])
        x_in = to_input(torch.from_numpy(crops).permute(0, 3, 1, 2), size, meta.mean, meta.std)
        with (
            torch.inference_mode(),
            torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16),
        ):
            out = model.explain(x_in.to(device), size=(tile, tile))
        # Softmax in fp32: under bf16 autocast explain()'s probs are rounded to 3 digits.
        probs = out.logits.float().softmax(-1).cpu().numpy()
        cams = out.cam[:, cam_class].float().cpu().numpy()
        att = out.attention.float().cpu().numpy() if has_attention else None
        for i, (y, x) in enumerate(batch):
            maps = [np.broadcast_to(probs[i][:, None, None], (k, tile, tile)), cams[i][None]]
            if att is not None:
                maps.append(att[i][None])
            blender.add(y, x, np.concatenate(maps))
        step()
    # Only the resampled image's own pixels (not the white padding) map back onto the region;
    # each map is resized straight into its output array, one at a time.
    blended = blender.result()[:, :height, :width]
    full = np.empty((len(blended), *rgb.shape[:2]), dtype=np.float32)
    for src, dst in zip(blended, full):
        _resize_into(src, dst)
    return RegionMaps(
        probs=full[:k],
        cam=full[k],
        attention=full[k + 1] if has_attention else None,
        tiles=len(corners),
        cam_class=cam_class,
        seconds=time.perf_counter() - started,
    )


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


def _resize_into(src: np.ndarray, dst: np.ndarray) -> None:
    """Bilinear resize of a map (h, w) into ``dst`` (H, W) float32."""
    src = np.ascontiguousarray(src)
    if src.shape == dst.shape:
        dst[...] = src
    else:
        cv2.resize(src, (dst.shape[1], dst.shape[0]), dst=dst, interpolation=cv2.INTER_LINEAR)


def map_region(
    models: Mapping[str, LRANClassifier],
    rgb: np.ndarray,
    mpp: float | None,
    overlap: float = DEFAULT_OVERLAP,
    batch_size: int = 32,
    cam_class: int | None = None,
    progress: Callable[[float], None] | None = None,
    limit_bytes: int | None = None,
    precision: str = "auto",
) -> dict[str, RegionMaps]:
    """Maps a region with every model: tiles, predicts in batches, blends (see module doc).

    Takes models keyed by name, ``rgb`` (H, W, 3) uint8 at ``mpp`` microns per pixel,
    the tiles' ``overlap`` as a fraction of their side, ``batch_size`` tiles per forward pass,
    ``cam_class`` (default: the last class, the positive one for IDC), and ``progress``, called
    with the fraction done (0..1] after every batch (e.g. a progress bar), and ``precision``:
    ``fp32``, ``bf16`` (autocast) or ``auto`` (bf16 on CPUs with bf16 instructions, where it
    runs ~2x faster; fp32 elsewhere). Gives
    :class:`RegionMaps` per model, every map (H, W). Raises RegionError for an unusable mpp,
    overlap or class, and RegionTooLargeError, before allocating, when the maps would need more
    than ``limit_bytes`` (default: the memory available now).
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"rgb must be (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
    if not 0 <= overlap < 1:
        raise RegionError(f"overlap must be in [0, 1), got {overlap}")
    if batch_size < 1:
        raise RegionError(f"batch_size must be at least 1, got {batch_size}")
    if precision not in PRECISIONS:
        raise RegionError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if not models:
        raise RegionError("no models to map the region with")
    classes = {}
    for name, model in models.items():
        k = len(model.meta.class_names)
        classes[name] = k - 1 if cam_class is None else cam_class
        if not 0 <= classes[name] < k:
            raise RegionError(f"cam_class {cam_class} is not a class of {name} ({k} classes)")
        field_of_view_um(model.meta)
        mpp = check_mpp(mpp, model.meta.mpp)
    check_region_memory(models, rgb.shape[:2], mpp, batch_size, limit_bytes)

    total = sum(
        math.ceil(len(_corners(rgb.shape[:2], mpp, m.meta, overlap)) / batch_size)
        for m in models.values()
    )
    done = 0

    def step() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done / total)

    with _channels_last(models.values()):
        return {
            name: _map_one(
                model,
                rgb,
                mpp,
                overlap,
                batch_size,
                classes[name],
                use_bf16(next(model.parameters()).device, precision),
                step,
            )
            for name, model in models.items()
        }


def write_pngs(folder: Path, stem: str, maps: Mapping[str, RegionMaps]) -> list[str]:
    """Writes heatmap PNGs of every model's maps into ``folder`` as ``<stem>_<model>_<map>.png``;
    gives their paths. Probabilities keep their own 0..1 scale; CAM and attention are ReLU'd and
    min-max scaled per map (design.md section 2)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, m in maps.items():
        images = {f"prob{c}": colourise(np.clip(p, 0, 1)) for c, p in enumerate(m.probs)}
        images["cam"] = colourise(normalise(m.cam))
        if m.attention is not None:
            images["attention"] = colourise(normalise(m.attention))
        for kind, rgb in images.items():
            path = folder / f"{stem}_{name}_{kind}.png"
            cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            written.append(str(path))
    return written
