"""Regions: the viewer's polygons, GeoJSON, PNG and label masks to and from boolean masks."""

import io

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from annotations.geojson import geojson_to_mask, mask_to_geojson
from annotations.masks import label_mask_to_region, mask_to_png, png_to_mask, read_label_mask
from annotations.raster import trace_boundaries
from review.drawing import mask_to_polygons, polygons_to_mask


def box(shape_hw, rows, cols):
    m = np.zeros(shape_hw, dtype=bool)
    m[rows[0] : rows[1], cols[0] : cols[1]] = True
    return m


def iou(a, b):
    return np.count_nonzero(a & b) / np.count_nonzero(a | b)


# --- the viewer's polygons -------------------------------------------------------------------


def test_polygons_from_the_viewer_become_the_region_they_enclose():
    # A rectangle traced along pixel edges, and a triangle: their union, pixel centres inside.
    rect = [(10, 5), (30, 5), (30, 15), (10, 15)]
    triangle = [(40, 0), (50, 0), (40, 10)]
    mask = polygons_to_mask([rect, triangle], (60, 40))
    assert mask.shape == (40, 60)
    assert np.array_equal(mask[5:15, 10:30], np.ones((10, 20), bool))
    assert mask[1, 41] and not mask[9, 49]
    assert int(mask.sum()) == 200 + 45
    # What the store keeps (GeoJSON traced from the mask) gives back exactly the same pixels.
    assert np.array_equal(geojson_to_mask(mask_to_geojson(mask), (60, 40)), mask)
    assert np.array_equal(polygons_to_mask(mask_to_polygons(mask), (60, 40)), mask)
    assert not polygons_to_mask([], (60, 40)).any() and not polygons_to_mask(None, (6, 4)).any()


def test_a_freehand_loop_that_crosses_or_retraces_itself_is_filled_as_shown():
    # The viewer fills a shape by the non-zero rule (SVG's default); so does the saved region.
    square = [(10, 10), (40, 10), (40, 40), (10, 40)]
    assert int(polygons_to_mask([square], (50, 50)).sum()) == 900
    # Traced twice round, as a lasso often is: the even-odd rule left nothing.
    assert int(polygons_to_mask([square * 2], (50, 50)).sum()) == 900
    # A quarter turn of overshoot: even-odd cut that quarter out.
    assert int(polygons_to_mask([[*square, (10, 10), (40, 10), (40, 25)]], (50, 50)).sum()) == 900
    # A figure of eight (the loop's two lobes wind opposite ways): both lobes are inside.
    eight = [(0, 0), (20, 20), (0, 20), (20, 0)]
    assert int(polygons_to_mask([eight], (30, 30)).sum()) == 200


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("not a list", "not a list of polygons"),
        ([[(0, 0), (1, 1)]], "fewer than 3 vertices"),
        ([[(0, 0), (1, 1), (2,)]], "not an .x, y. pair"),
        ([[(0, 0), (1, float("nan")), (2, 2)]], "two finite numbers"),
        ([[(0, 0), ("1", 1), (2, 2)]], "two finite numbers"),
        ([[(0, 0)] * 60_000, [(0, 0)] * 60_000], "more than 100,000 vertices"),
    ],
)
def test_malformed_drawings_are_one_clear_error(bad, message):
    with pytest.raises(ValueError, match=message):
        polygons_to_mask(bad, (10, 10))


# --- GeoJSON ----------------------------------------------------------------------------------


def test_rectangle_round_trip_is_exact_and_qupath_shaped():
    mask = box((30, 40), (5, 25), (10, 30))
    gj = mask_to_geojson(mask)
    assert gj["type"] == "FeatureCollection" and len(gj["features"]) == 1
    feature = gj["features"][0]
    assert feature["properties"] == {
        "objectType": "annotation",
        "classification": {"name": "Region", "color": [255, 0, 0]},
    }
    # Pixel corners, four vertices (collinear ones dropped), closed.
    assert feature["geometry"] == {
        "type": "Polygon",
        "coordinates": [[[10, 5], [30, 5], [30, 25], [10, 25], [10, 5]]],
    }
    assert np.array_equal(geojson_to_mask(gj, (40, 30)), mask)


def test_blob_round_trip_with_holes():
    rng = np.random.default_rng(1)
    blobs = ndimage.gaussian_filter(rng.random((120, 160)), 6) > 0.5
    blobs[50:70, 50:70] = True
    blobs[55:60, 55:60] = False  # a hole
    gj = mask_to_geojson(blobs, {"classification": {"name": "Invasive", "color": [200, 0, 0]}})
    back = geojson_to_mask(gj, (160, 120))
    assert iou(back, blobs) > 0.98
    assert np.array_equal(back, blobs)  # edge tracing makes it exact
    assert any(len(f["geometry"]["coordinates"]) > 1 for f in gj["features"])  # holes kept
    assert all(f["properties"]["classification"]["name"] == "Invasive" for f in gj["features"])


def test_diagonal_pixels_and_random_masks_round_trip():
    rng = np.random.default_rng(2)
    for _ in range(10):
        mask = rng.random((25, 35)) < 0.5
        assert np.array_equal(geojson_to_mask(mask_to_geojson(mask), (35, 25)), mask)
    checker = (np.indices((6, 6)).sum(axis=0) % 2).astype(bool)
    gj = mask_to_geojson(checker)
    assert len(gj["features"]) == 18  # 4-connected: every pixel its own polygon
    assert np.array_equal(geojson_to_mask(gj, (6, 6)), checker)
    assert mask_to_geojson(np.zeros((4, 4), dtype=bool))["features"] == []


def test_geojson_forms_qupath_exports():
    ring = [[10, 10], [20, 10], [20, 30], [10, 30], [10, 10]]
    polygon = {"type": "Polygon", "coordinates": [ring]}
    feature = {"type": "Feature", "geometry": polygon, "properties": {"objectType": "annotation"}}
    expected = box((40, 30), (10, 30), (10, 20))
    for form in (polygon, feature, [feature], {"type": "FeatureCollection", "features": [feature]}):
        assert np.array_equal(geojson_to_mask(form, (30, 40)), expected)
    # Ring orientation does not matter, and a hole is cut out whatever its orientation.
    hole = [[12, 12], [12, 14], [14, 14], [14, 12], [12, 12]]
    multi = {"type": "MultiPolygon", "coordinates": [[ring[::-1], hole], [ring]]}
    with_hole = expected.copy()
    with_hole[12:14, 12:14] = False
    single = geojson_to_mask({"type": "Polygon", "coordinates": [ring[::-1], hole]}, (30, 40))
    assert np.array_equal(single, with_hole)
    # The union of the polygons: the second one fills the hole again.
    assert np.array_equal(geojson_to_mask(multi, (30, 40)), expected)
    # Fractional coordinates (QuPath brush strokes) use pixel centres; outside parts are clipped.
    # Hypotenuse x + y = 20.4: pixel (0, 19) has its centre at 19.5 + 0.5 = 20 (inside),
    # pixel (0, 20) at 21 (outside).
    tri = {"type": "Polygon", "coordinates": [[[-5, -5], [25.4, -5], [-5, 25.4], [-5, -5]]]}
    mask = geojson_to_mask(tri, (30, 40))
    assert mask[0, 0] and mask[0, 19] and not mask[0, 20] and mask[19, 0] and not mask[20, 0]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"type": "Point", "coordinates": [1, 2]}, "Point"),
        (
            {
                "type": "Feature",
                "geometry": {"type": "LineString", "coordinates": [[0, 0], [1, 1]]},
            },
            "LineString",
        ),
        ({"type": "Feature", "geometry": None}, "no geometry"),
        ({"type": "Polygon", "coordinates": [[[0, 0], [5, 0], [5, 5], [0, 5]]]}, "not closed"),
        ({"type": "Polygon", "coordinates": [[[0, 0], [5, 0], [0, 0]]]}, "at least 4"),
        ({"type": "Polygon", "coordinates": [[["a", 0], [5, 0], [5, 5], ["a", 0]]]}, "numbers"),
        ({"type": "FeatureCollection"}, "features"),
        ("not geojson", "expected a GeoJSON object"),
    ],
)
def test_invalid_geojson_is_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        geojson_to_mask(bad, (10, 10))


# --- PNG and label masks ----------------------------------------------------------------------


def test_png_round_trip():
    mask = box((20, 30), (3, 9), (4, 25))
    data = mask_to_png(mask)
    img = Image.open(io.BytesIO(data))
    assert img.format == "PNG" and img.mode == "L" and img.size == (30, 20)
    assert set(np.unique(np.asarray(img)).tolist()) == {0, 255}
    assert np.array_equal(png_to_mask(data), mask)
    with pytest.raises(ValueError, match="not a readable image"):
        png_to_mask(b"not a png")


def png_bytes(array, mode=None):
    buf = io.BytesIO()
    img = Image.fromarray(array) if mode is None else Image.fromarray(array).convert(mode)
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_label_masks():
    labels = np.zeros((10, 12), dtype=np.uint8)
    labels[1:3, 1:3] = 1
    labels[5, 5] = 2
    labels[8, 1:11] = 3
    read = read_label_mask(png_bytes(labels), expected_size=(12, 10))
    assert read.dtype == np.uint8 and np.array_equal(read, labels)
    region = label_mask_to_region(read)
    assert region.sum() == 4 + 1 + 10 and not region[0, 0]
    assert label_mask_to_region(read, positive_values=(2, 3)).sum() == 11
    # Grey RGB exports are accepted.
    assert np.array_equal(read_label_mask(png_bytes(labels, "RGB")), labels)


def test_label_mask_refusals_say_why():
    labels = np.zeros((10, 12), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"12 x 10 px .* image is 20 x 10 px"):
        read_label_mask(png_bytes(labels), expected_size=(20, 10))
    labels[0, 0], labels[1, 1] = 5, 7
    with pytest.raises(ValueError, match=r"values \[5, 7\]"):
        read_label_mask(png_bytes(labels))
    colour = np.zeros((4, 4, 3), dtype=np.uint8)
    colour[0, 0] = (255, 0, 0)
    with pytest.raises(ValueError, match="colour"):
        read_label_mask(png_bytes(colour))


def test_a_region_inside_a_larger_image_is_traced_at_its_place() -> None:
    rng = np.random.default_rng(3)
    small = rng.random((40, 60)) < 0.6
    large = np.zeros((300, 500), bool)
    large[100:140, 200:260] = small
    moved = [(label, ring - np.array([200, 100])) for label, ring in trace_boundaries(large)]
    expected = trace_boundaries(small)
    assert len(moved) == len(expected) > 1
    for (la, a), (lb, b) in zip(moved, expected, strict=True):
        assert la == lb and np.array_equal(a, b)
