"""Everything the app computes once and keeps: model sets per process, each patch's maps per
(model set, image), each region's maps per (model set, image, µm/px, class), the review store per
database. Keys are what the values mean; arrays and models are hashed by their identity
(content hash, set name and folder) through ``hash_funcs``, never by their bytes."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import psutil
import streamlit as st

from annotations.store import Store
from review import exports, modelsets
from review.items import ImageItem, ImageReadError, read_image
from review.modelsets import ModelSet
from review.patches import PatchMaps, explain_patch
from review.regions import RegionResult, map_model_set
from ui import widgets

# Torch threads of the app process (env LRAN_TORCH_THREADS). One patch at a time needs no more
# than one, and the app shares the CPU with its web server, other sessions and often a
# browser: on 2 busy cores, 3 models took a median 113 ms with 1 thread and 4.4 s with 2
# (intra-op threads that spin-wait collapse under contention).
TORCH_THREADS = int(os.environ.get("LRAN_TORCH_THREADS", "1"))


def _set_key(model_set: ModelSet) -> tuple[str, str]:
    return model_set.name, str(model_set.source)


def _item_key(item: ImageItem) -> str:
    return item.item_hash


HASH_FUNCS: dict[str | type[Any], Callable[[Any], Any]] = {ModelSet: _set_key, ImageItem: _item_key}


# Model sets of this process by (name, models folder): each is loaded once, in a background
# thread, so that the server can load the default set while it starts and a page can say
# "loading" instead of freezing. One loader: two sets loading at once would only share the CPU.
_SETS: dict[tuple[str, str], Future[ModelSet]] = {}
_SETS_LOCK = threading.Lock()
_LOADER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lran-models")
# Sets kept at most (the oldest loaded one is let go first): a set of three models is ~100 MB.
MAX_SETS = 4


def _load(name: str) -> ModelSet:
    loaded = modelsets.load(name)
    modelsets.warm_up(loaded, TORCH_THREADS)
    return loaded


def warm_up(name: str) -> Future[ModelSet]:
    """Starts loading the installed model set ``name`` in the background unless it is loading
    or loaded (a failed load is started again: the weights may have been fixed); gives its
    future."""
    key = (name, str(modelsets.folder()))
    with _SETS_LOCK:
        future = _SETS.get(key)
        if future is None or (future.done() and future.exception() is not None):
            future = _SETS[key] = _LOADER.submit(_load, name)
            finished = [k for k, f in _SETS.items() if f.done() and k != key]
            while len(_SETS) > MAX_SETS and finished:
                del _SETS[finished.pop(0)]
    return future


def model_set(name: str) -> ModelSet:
    """The installed model set ``name``, loaded once per process and models folder (waiting,
    with a spinner, while it loads).

    Raises NoWeightsError or CheckpointError (tried again at the next call)."""
    future = warm_up(name)
    if not future.done():
        with st.spinner("Loading models…"):
            return future.result()
    return future.result()


@st.cache_data(show_spinner="Explaining the patch…", max_entries=64, hash_funcs=HASH_FUNCS)
def patch_maps(model_set: ModelSet, item: ImageItem) -> list[PatchMaps]:
    """Every model's probabilities and maps for one patch, once per (set, image content)."""
    return explain_patch(model_set, item.rgb)


@st.cache_resource(
    show_spinner="Mapping the region with every model…", max_entries=4, hash_funcs=HASH_FUNCS
)
def region_maps(model_set: ModelSet, item: ImageItem, mpp: float, cam_class: int) -> RegionResult:
    """Every model's maps over a region, once per (set, image content, µm/px, class); kept as
    they are (not copied on every rerun: a large region's maps are hundreds of MB).

    Raises RegionError (not cached) for an unusable µm/px or a region too large for memory."""
    return map_model_set(model_set, item.rgb, mpp, cam_class)


@st.cache_resource(show_spinner=False, max_entries=4)
def store(url: str | None) -> Store:
    """The review store for ``url`` (None: the default), opened once per process.

    Raises annotations.store.StoreError (not cached, so a fixed database is retried)."""
    return Store(url)


Reads = tuple[tuple[int, int, str], ...]


@st.cache_data(show_spinner="Preparing the exports…", max_entries=64)
def export(url: str | None, kind: str, reads: Reads) -> bytes:
    """An export of saved reads (review_id, version, item_hash) as bytes: ``kind`` "csv" (the
    scores of every read), "geojson" or "png" (the first read's region), "zip" (every read's
    region). Kept per (database, kind, reads): a saved read is never changed (saving again
    makes a new read), so neither is its export.

    Built before the button is drawn rather than when it is clicked, so that a click is
    answered at once with a file that is ready, however busy the server."""
    s = store(url)
    if kind == "csv":
        return exports.scores_csv(s, [r[0] for r in reads]).encode()
    if kind == "geojson":
        return exports.geojson_text(s, reads[0][0]).encode()
    if kind == "png":
        return exports.mask_png(s, reads[0][0])
    if kind == "zip":
        return exports.regions_zip(s, reads)
    raise ValueError(f"unknown export {kind!r}")


def database_url() -> str | None:
    """The review database as configured (LRAN_REVIEW_DB), None for the store's default."""
    return os.environ.get("LRAN_REVIEW_DB") or None


class _DecodedImages:
    """Decoded case images by content hash, least recently used first, within a byte budget
    (process-wide: every session shares them). The newest image is always kept."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.entries: OrderedDict[str, ImageItem] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, item_hash: str, filename: str) -> ImageItem | None:
        with self.lock:
            if item_hash in self.entries:
                self.entries.move_to_end(item_hash)
                return self.entries[item_hash]
        data = store(database_url()).image_bytes(item_hash)
        if data is None:
            return None
        try:
            item = read_image(filename, data)
        except ImageReadError:
            return None
        with self.lock:
            self.entries[item_hash] = item
            while (
                len(self.entries) > 1
                and sum(e.rgb.nbytes for e in self.entries.values()) > self.budget
            ):
                self.entries.popitem(last=False)
        return item


@st.cache_resource(show_spinner=False)
def _decoded() -> _DecodedImages:
    # An eighth of the memory free at start, at most 1 GiB: images decode quickly again.
    return _DecodedImages(min(1 << 30, psutil.virtual_memory().available // 8))


def case_image(item_hash: str, filename: str) -> ImageItem | None:
    """A case's image decoded from the store, kept (not copied) in a byte-bounded cache shared
    by every session; None when its bytes were never kept (reviews made before studies) or
    cannot be decoded."""
    return _decoded().get(item_hash, filename)


@st.cache_data(show_spinner=False, max_entries=4096)
def thumbnail(item_hash: str, filename: str, side: int = 64) -> str | None:
    """A small JPEG of a case's image as a data URL, for the worklist; None without one."""
    item = case_image(item_hash, filename)
    if item is None:
        return None
    return widgets.data_url(item.rgb, side)
