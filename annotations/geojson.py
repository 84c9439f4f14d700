"""Regions as GeoJSON (QuPath's import and export format), in image pixel coordinates (see
:mod:`annotations.raster` for the pixel convention)."""

from __future__ import annotations

from typing import Any

import numpy as np

from annotations.raster import as_mask, fill_rings, shoelace_area, trace_boundaries

DEFAULT_CLASSIFICATION = {"name": "Region", "color": [255, 0, 0]}


def mask_to_geojson(mask: np.ndarray, properties: dict[str, Any] | None = None) -> dict[str, Any]:
    """Describe a region as a GeoJSON FeatureCollection that QuPath imports as annotations.

    Takes a bool (H, W) mask and optional feature properties. Gives one Polygon feature per
    4-connected component, exterior ring first then its holes, vertices at pixel corners in image
    pixel coordinates (so `geojson_to_mask` gives back exactly `mask`). Each feature's properties
    are {"objectType": "annotation", "classification": {"name": "Region", "color": [255, 0, 0]}}
    updated with `properties` (so a given "classification" replaces the default one). Given
    `properties` are also the collection's own "properties" (a foreign member, which QuPath
    ignores), so that an empty region, with no feature, still says whose and of what image.
    """
    arr = as_mask(mask)
    props = {"objectType": "annotation", "classification": dict(DEFAULT_CLASSIFICATION)}
    props.update(properties or {})
    exteriors: dict[int, list[Any]] = {}
    holes: dict[int, list[Any]] = {}
    for label, ring in trace_boundaries(arr):
        target = exteriors if shoelace_area(ring) > 0 else holes
        target.setdefault(label, []).append(ring.tolist())
    features = []
    for label in sorted(exteriors):
        coords = exteriors[label] + holes.get(label, [])
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": coords},
                "properties": dict(props),
            }
        )
    collection: dict[str, Any] = {"type": "FeatureCollection", "features": features}
    if properties:
        collection["properties"] = dict(properties)
    return collection


def _ring(value: Any, where: str) -> np.ndarray:
    try:
        ring = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: positions must be lists of numbers") from None
    if ring.ndim != 2 or ring.shape[1] < 2:
        raise ValueError(f"{where}: a ring must be a list of [x, y] positions")
    ring = ring[:, :2]
    if not np.all(np.isfinite(ring)):
        raise ValueError(f"{where}: coordinates must be finite numbers")
    if len(ring) < 4:
        raise ValueError(f"{where}: a closed ring needs at least 4 positions, got {len(ring)}")
    if not np.array_equal(ring[0], ring[-1]):
        raise ValueError(f"{where}: ring is not closed (first and last positions differ)")
    return ring


def _polygons(obj: Any, where: str) -> list[list[np.ndarray]]:
    """Collect polygons (each a list of rings, exterior first) from any accepted GeoJSON form."""
    if isinstance(obj, list):
        return [p for i, f in enumerate(obj) for p in _polygons(f, f"{where}[{i}]")]
    if not isinstance(obj, dict):
        # ValueError, not TypeError: callers treat every malformed upload the same way.
        raise ValueError(f"{where}: expected a GeoJSON object, got {type(obj).__name__}")
    kind = obj.get("type")
    if kind == "FeatureCollection":
        features = obj.get("features")
        if not isinstance(features, list):
            raise ValueError(f"{where}: a FeatureCollection needs a 'features' list")
        return _polygons(features, f"{where}.features")
    if kind == "Feature":
        if obj.get("geometry") is None:
            raise ValueError(f"{where}: feature has no geometry")
        return _polygons(obj["geometry"], f"{where}.geometry")
    if kind in ("Polygon", "MultiPolygon"):
        coords = obj.get("coordinates")
        if not isinstance(coords, list):
            raise ValueError(f"{where}: {kind} needs a 'coordinates' list")
        polys = [coords] if kind == "Polygon" else coords
        out = []
        for i, poly in enumerate(polys):
            if not isinstance(poly, list) or not poly:
                raise ValueError(f"{where}: polygon {i} must be a non-empty list of rings")
            out.append([_ring(r, f"{where} polygon {i} ring {j}") for j, r in enumerate(poly)])
        return out
    raise ValueError(
        f"{where}: GeoJSON type {kind!r} does not describe a region; expected FeatureCollection, "
        "Feature, Polygon or MultiPolygon"
    )


def geojson_bounds(geojson: dict[str, Any] | list[Any]) -> tuple[float, float, float, float]:
    """The (x0, y0, x1, y1) that the GeoJSON region's vertices span (in its own coordinates);
    ValueError as :func:`geojson_to_mask` for what is not a region, and for one that holds no
    polygon (an empty FeatureCollection: it has no extent)."""
    rings = [ring[:, :2] for rings in _polygons(geojson, "geojson") for ring in rings]
    if not rings:
        raise ValueError("the GeoJSON holds no region (no Polygon or MultiPolygon feature)")
    points = np.concatenate(rings)
    x0, y0 = points.min(axis=0)
    x1, y1 = points.max(axis=0)
    return float(x0), float(y0), float(x1), float(y1)


def geojson_to_mask(geojson: dict[str, Any] | list[Any], image_size: tuple[int, int]) -> np.ndarray:
    """Rasterise a GeoJSON region (e.g. a QuPath export) onto an image.

    Takes a FeatureCollection, a Feature, a list of Features, a Polygon or a MultiPolygon, in image
    pixel coordinates, and the image size (width, height). Gives a bool (H, W) mask: the union of
    all polygons, holes cut out (even-odd rule, so ring orientation does not matter), parts outside
    the image clipped. Raises ValueError naming the offending part for other geometry types
    (points, lines), missing geometry or malformed rings.
    """
    w, h = (int(v) for v in image_size)
    if w <= 0 or h <= 0:
        raise ValueError(f"image size must be positive, got {image_size}")
    mask = np.zeros((h, w), dtype=bool)
    for rings in _polygons(geojson, "geojson"):
        mask |= fill_rings(rings, (h, w), even_odd=True)
    return mask
