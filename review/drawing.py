"""The reader's drawing (polygons from the viewer, in image pixels) as a region mask, and a
stored region back as polygons to show."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from annotations.geojson import mask_to_geojson
from annotations.raster import fill_rings

MAX_VERTICES = 100_000


def polygons_to_mask(polygons: Any, image_size: tuple[int, int]) -> np.ndarray:
    """Takes polygons (each a list of (x, y) vertices in image pixels, closed implicitly) and
    the image's (width, height); gives the bool (H, W) region they enclose: their union, each
    filled by the non-zero winding rule as the viewer shows it, by the pixel-centre rule of
    annotations.raster (a polygon traced along pixel edges gives back exactly its pixels).
    The polygons come from the browser and may be anything: every way they can be malformed
    is one ValueError saying what is wrong."""
    if polygons is None:
        return np.zeros((image_size[1], image_size[0]), dtype=bool)
    if not isinstance(polygons, list | tuple):
        raise ValueError(f"the drawing is not a list of polygons (got {type(polygons).__name__})")
    rings: list[np.ndarray] = []
    total = 0
    for i, polygon in enumerate(polygons):
        if not isinstance(polygon, list | tuple) or len(polygon) < 3:
            raise ValueError(f"shape {i + 1} of the drawing has fewer than 3 vertices")
        ring = []
        for vertex in polygon:
            if not isinstance(vertex, list | tuple) or len(vertex) != 2:
                raise ValueError(f"shape {i + 1} has a vertex that is not an (x, y) pair")
            x, y = vertex
            if not all(isinstance(v, int | float) and math.isfinite(v) for v in (x, y)):
                raise ValueError(f"shape {i + 1} has a vertex that is not two finite numbers")
            ring.append([float(x), float(y)])
        total += len(ring)
        if total > MAX_VERTICES:
            raise ValueError(f"the drawing has more than {MAX_VERTICES:,} vertices")
        rings.append(np.asarray(ring))
    width, height = (int(v) for v in image_size)
    mask = np.zeros((height, width), dtype=bool)
    for shape in rings:
        # Non-zero winding, as the viewer fills the shape (SVG's default): a freehand loop that
        # crosses or retraces itself is filled, not cut into holes as by the even-odd rule.
        mask |= fill_rings([shape], (height, width), even_odd=False)
    return mask


def mask_to_polygons(mask: np.ndarray) -> list[list[tuple[float, float]]]:
    """A region's outlines (exteriors and holes) as polygons in image pixels, for showing it."""
    out: list[list[tuple[float, float]]] = []
    for feature in mask_to_geojson(mask)["features"]:
        for ring in feature["geometry"]["coordinates"]:
            out.append([(float(x), float(y)) for x, y in ring[:-1]])
    return out


def box_polygon(box: Sequence[float]) -> list[tuple[float, float]]:
    """An axis-aligned box (x0, y0, x1, y1) as a polygon."""
    x0, y0, x1, y1 = box
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
