"""Cached calls into `lran_core` and `annotations`: models once per process, each patch
explained once, each region mapped once per resolution, the review store opened once per
database.

Cache keys carry the models folder and the database URL, so a process that serves several
configurations (tests, or an operator who changes LRAN_MODELS_DIR) never mixes them up.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import streamlit as st
import torch

import lran_core
from annotations.scores import agreement
from annotations.store import Store
from lran_core.data import preprocess
from lran_core.maps import resize_map
from lran_core.region import RegionMaps, map_region, native_size

KIND_TITLES = {"base": "base", "ran": "R-RAN", "lran": "R-LRAN"}
# Maps are kept at most this many pixels on a side: a 5000 x 5000 upload would otherwise cost
# about 100 MB per map (and there are a dozen per patch). They are up-sampled to the image's
# pixels for scoring; the models' own maps are far coarser than this anyway.
MAP_SIDE = 512
# Torch threads of the app process (env LRAN_TORCH_THREADS). One patch at a time needs no more
# than one, and the app shares the CPU with its web server, other sessions and often a
# browser: on 2 busy cores, 3 models took a median 113 ms with 1 thread and 4.4 s with 2
# (intra-op threads that spin-wait collapse under contention).
TORCH_THREADS = int(os.environ.get("LRAN_TORCH_THREADS", "1"))
# Region maps are kept at the image's full pixel size (scores are computed there), so a
# 5000 x 5000 region holds over 1 GB of maps for three models: the cache is bounded by bytes,
# not entries. The newest entry is always kept, whatever its size.
REGION_CACHE_BYTES = 1 << 30
# Tiles overlap by half their side: every pixel away from the border is seen by four tiles,
# whose blend hides tile seams (lran_core.region's default, named here so reviews record it).
REGION_OVERLAP = 0.5


@dataclass(frozen=True)
class ModelOutput:
    """One model's view of one patch.

    Maps cover the patch exactly, at its own pixel size or, for a patch larger than
    ``MAP_SIDE``, scaled down to fit in it (aspect kept). ``cams`` (K, h, w) holds the raw CAM
    of every class, so that changing the target class needs no new forward pass; ``gates``
    are the LRAN gate maps, coarsest first.
    """

    variant: str
    kind: str
    class_names: list[str]
    probs: np.ndarray
    cams: np.ndarray
    attention: np.ndarray | None = None
    gates: list[np.ndarray] = field(default_factory=list)

    @property
    def title(self) -> str:
        """Short display name, e.g. 'R-LRAN'."""
        return KIND_TITLES.get(self.kind, self.variant)

    @property
    def predicted(self) -> int:
        """Index of the most probable class."""
        return int(np.argmax(self.probs))

    def maps(self, target: int | None = None) -> dict[str, np.ndarray]:
        """Maps by stored name: 'cam' of ``target`` (default: the predicted class), then
        'attention' (RAN, LRAN) and 'gate1', 'gate2', ... (LRAN)."""
        out = {"cam": self.cams[self.predicted if target is None else target]}
        if self.attention is not None:
            out["attention"] = self.attention
        for i, gate in enumerate(self.gates, start=1):
            out[f"gate{i}"] = gate
        return out


def models_dir() -> str:
    """The folder model sets are read from, as a cache key."""
    return str(lran_core.models_dir().resolve())


def model_sets() -> list[str]:
    """Installed model sets (empty until trained weights are installed)."""
    return lran_core.list_model_sets()


@st.cache_resource(show_spinner="Loading models…", max_entries=4)
def load_models(set_name: str, folder: str) -> dict[str, lran_core.LRANClassifier]:
    """The set's models, loaded once per process. ``folder`` only keys the cache.

    Raises lran_core.NoWeightsError (not cached) when the set is not installed.
    """
    del folder
    torch.set_num_threads(TORCH_THREADS)
    models = lran_core.load_model_set(set_name, device="cpu")
    # A model's first forward pass is several times slower than the next (kernel selection);
    # pay it here, while the reader is still on the Start page, not after their first upload.
    for model in models.values():
        size = model.meta.input_size
        model.explain(torch.zeros(1, 3, size, size))
    return models


@st.cache_data(show_spinner="Explaining the patch…", max_entries=64)
def explain(set_name: str, folder: str, item_hash: str, _rgb: np.ndarray) -> list[ModelOutput]:
    """Every model's probabilities and maps for one patch, computed once per content hash.

    ``_rgb`` is left out of the cache key (the hash identifies it; hashing megapixels on every
    rerun would cost more than the lookup saves).
    """
    del item_hash
    height, width = _rgb.shape[:2]
    # preprocess pads the patch to a square at the bottom and right before resizing it, so
    # maps are made for the padded square and cropped back to the patch.
    scale = min(1.0, MAP_SIDE / max(height, width))
    side = round(max(height, width) * scale)
    rows, cols = max(1, round(height * scale)), max(1, round(width * scale))

    def crop(maps: torch.Tensor) -> np.ndarray:
        return maps[0, ..., :rows, :cols].numpy().copy()

    outputs = []
    for model in load_models(set_name, folder).values():
        meta = model.meta
        e = model.explain(preprocess(_rgb, meta.input_size, meta.mean, meta.std), size=(side, side))
        outputs.append(
            ModelOutput(
                variant=model.variant,
                kind=model.kind,
                class_names=list(meta.class_names),
                probs=e.probs[0].numpy().astype(np.float64),
                cams=crop(e.cam),
                attention=None if e.attention is None else crop(e.attention),
                gates=[crop(g) for g in e.gates or []],
            )
        )
    return outputs


def score_maps(
    outputs: list[ModelOutput], region: np.ndarray, target: int | None
) -> list[dict[str, object]]:
    """Agreement of every map of every model with the region (bool, image pixels).

    Each map is first resized to the region's (the image's) pixels. ``target`` is the CAM's
    class index, or None for each model's own prediction.
    """
    rows: list[dict[str, object]] = []
    for out in outputs:
        for name, heat in out.maps(target).items():
            heat = resize_map(heat, region.shape)
            rows.append({"model": out.variant, "map": name, **agreement(heat, region)})
    return rows


def database_url() -> str | None:
    """The review database as configured (LRAN_REVIEW_DB), None for the store's default."""
    return os.environ.get("LRAN_REVIEW_DB") or None


@st.cache_resource(show_spinner=False, max_entries=4)
def open_store(url: str | None) -> Store:
    """The review store for ``url``, opened once per process.

    Raises annotations.store.StoreError (not cached, so a fixed database is retried).
    """
    return Store(url)


def looks_like_region(set_name: str, folder: str, width: int, height: int) -> bool:
    """Whether an image is larger than the patches the set's models were trained on (at their
    native size, e.g. 50 px for IDC): such an upload is by default reviewed as a region."""
    side = max(native_size(m.meta) for m in load_models(set_name, folder).values())
    return max(width, height) > side


class _RegionCache:
    """Region maps by (model set, folder, item hash, mpp, class), least recently used first.

    Streamlit's own caches cannot be used here: they record every element drawn while the
    cached function runs, in order to replay it, and the progress bar map_region feeds is drawn
    from inside it (a replay onto a bar of an earlier run fails). They would also copy the maps
    (hundreds of MB for a large region) on every rerun.
    """

    def __init__(self, limit_bytes: int) -> None:
        self.limit = limit_bytes
        self.entries: OrderedDict[tuple, dict[str, RegionMaps]] = OrderedDict()
        self.lock = threading.Lock()

    @staticmethod
    def size(maps: dict[str, RegionMaps]) -> int:
        return sum(
            m.probs.nbytes + m.cam.nbytes + (0 if m.attention is None else m.attention.nbytes)
            for m in maps.values()
        )

    def get(self, key: tuple) -> dict[str, RegionMaps] | None:
        with self.lock:
            if key in self.entries:
                self.entries.move_to_end(key)
            return self.entries.get(key)

    def put(self, key: tuple, maps: dict[str, RegionMaps]) -> None:
        with self.lock:
            self.entries[key] = maps
            self.entries.move_to_end(key)
            while len(self.entries) > 1 and sum(map(self.size, self.entries.values())) > self.limit:
                self.entries.popitem(last=False)


@st.cache_resource(show_spinner=False)
def _region_cache() -> _RegionCache:
    """The process-wide region cache (one per server, shared by every session)."""
    return _RegionCache(REGION_CACHE_BYTES)


def region_maps(
    set_name: str,
    folder: str,
    item_hash: str,
    mpp: float | None,
    cam_class: int,
    rgb: np.ndarray,
    progress: Callable[[float], None] | None = None,
) -> dict[str, RegionMaps]:
    """Every model's stitched maps of a region (lran_core.region.map_region), computed once per
    (model set, item, mpp, class); ``progress`` is fed the fraction done while computing.

    Raises lran_core.region.RegionError (RegionTooLargeError included), not cached, for an
    unusable mpp or a region whose maps would not fit in memory.
    """
    key = (set_name, folder, item_hash, mpp, cam_class)
    cache = _region_cache()
    maps = cache.get(key)
    if maps is None:
        models = load_models(set_name, folder)
        maps = map_region(models, rgb, mpp, overlap=REGION_OVERLAP, cam_class=cam_class,
                          progress=progress)
        cache.put(key, maps)
    return maps


def region_layers(maps: dict[str, RegionMaps]) -> dict[str, dict[str, np.ndarray]]:
    """The maps shown and scored per model, by stored map name: 'probability' (of the CAM's
    class), 'cam', and 'attention' (RAN, LRAN), each (H, W) over the region."""
    layers = {}
    for name, m in maps.items():
        layers[name] = {"probability": m.probs[m.cam_class], "cam": m.cam}
        if m.attention is not None:
            layers[name]["attention"] = m.attention
    return layers


def score_region(maps: dict[str, RegionMaps], region: np.ndarray) -> list[dict[str, object]]:
    """Agreement of every map of every model with a region (bool, the image's pixels), on the
    whole region at full resolution, in the rows ReviewRecord.scores takes."""
    return [
        {"model": model, "map": name, **agreement(heat, region)}
        for model, named in region_layers(maps).items()
        for name, heat in named.items()
    ]


@st.cache_data(show_spinner="Scoring the maps against the reference…", max_entries=16)
def reference_scores(
    key: tuple, _maps: dict[str, RegionMaps], _region: np.ndarray
) -> list[dict[str, object]]:
    """score_region against an imported reference, once per ``key`` (the region cache key and
    the reference file's hash): a megapixel region takes seconds to score, too slow for every
    rerun. The arrays are left out of the cache key, which identifies them."""
    del key
    return score_region(_maps, _region)


def region_predictions(
    maps: dict[str, RegionMaps], class_names: list[str]
) -> dict[str, dict[str, float]]:
    """Each model's region-level prediction: every class's probability averaged over the
    region's pixels (so each tile counts by the area it covers)."""
    return {
        model: {c: float(p.mean()) for c, p in zip(class_names, m.probs, strict=True)}
        for model, m in maps.items()
    }
