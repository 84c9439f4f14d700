"""Regions: canvas drawings, GeoJSON, PNG and label masks to and from boolean masks.

The canvas objects below are written as fabric.js 6 (streamlit-drawable-canvas 0.13) exports them:
each tool's object options (origin, stroke) and fabric's placement rule, where (left, top) is the
origin point of the object's box and the box includes the stroke width.
"""

import io
import itertools

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from annotations.canvas import canvas_to_mask
from annotations.geojson import geojson_to_mask, mask_to_geojson
from annotations.masks import label_mask_to_region, mask_to_png, png_to_mask, read_label_mask


def box(shape_hw, rows, cols):
    m = np.zeros(shape_hw, dtype=bool)
    m[rows[0] : rows[1], cols[0] : cols[1]] = True
    return m


def iou(a, b):
    return np.count_nonzero(a & b) / np.count_nonzero(a | b)


# --- canvas -----------------------------------------------------------------------------------


def rect_tool(left, top, width, height, stroke=2, **extra):
    # The rect tool: originX/Y left/top, strokeUniform, stroke centred on the outline.
    return {
        "type": "Rect",
        "left": left,
        "top": top,
        "width": width,
        "height": height,
        "originX": "left",
        "originY": "top",
        "strokeWidth": stroke,
        "strokeUniform": True,
        "scaleX": 1,
        "scaleY": 1,
        "angle": 0,
        "flipX": False,
        "flipY": False,
        "skewX": 0,
        "skewY": 0,
        **extra,
    }


def freedraw_path(points, stroke=5):
    # PencilBrush output: M, then Q segments through the points' midpoints, then L to the end;
    # left/top are the path's bounding box corner minus half the stroke.
    pts = np.asarray(points, dtype=float)
    cmds = [["M", *pts[0]]]
    for a, b in itertools.pairwise(pts):
        cmds.append(["Q", *a, *((a + b) / 2)])
    cmds.append(["L", *pts[-1]])
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    return {
        "type": "Path",
        "path": cmds,
        "left": lo[0] - stroke / 2,
        "top": lo[1] - stroke / 2,
        "width": hi[0] - lo[0],
        "height": hi[1] - lo[1],
        "strokeWidth": stroke,
        "originX": "left",
        "originY": "top",
        "scaleX": 1,
        "scaleY": 1,
        "angle": 0,
        "fill": None,
    }


def test_empty_drawing_is_all_false():
    mask = canvas_to_mask({"objects": []}, (40, 30), (20, 15))
    assert mask.shape == (30, 40) and not mask.any()
    assert not canvas_to_mask({}, (40, 30), (40, 30)).any()


def test_rect_scaled_to_image():
    # Outline centre: x from 10 + 2/2 = 11 to 41, y from 21 to 61 (canvas px).
    # Image is twice the canvas: x 22..82, y 42..122 -> columns 22..81, rows 42..121.
    drawing = {"objects": [rect_tool(10, 20, 30, 40)]}
    mask = canvas_to_mask(drawing, (200, 160), (100, 80))
    assert np.array_equal(mask, box((160, 200), (42, 122), (22, 82)))


def test_rect_scaled_by_the_edit_tool_and_non_uniform_canvas_scale():
    # scaleX 2 with strokeUniform: box width 20 * 2 + 2 = 42 -> outline x from 11 to 51;
    # y from 11 to 21. Canvas 100 x 50 onto image 100 x 100: y doubles -> rows 22..41.
    drawing = {"objects": [rect_tool(10, 10, 20, 10, scaleX=2)]}
    mask = canvas_to_mask(drawing, (100, 100), (100, 50))
    assert np.array_equal(mask, box((100, 100), (22, 42), (11, 51)))


def test_freehand_stroke_fills_the_enclosed_region():
    # A loop around the rectangle x 10..50, y 10..40, back to its start.
    # The brush's smoothing rounds the corners off (the curve runs through the midpoints), so
    # the region lies inside the rectangle and covers all of it but the corners.
    rect = box((48, 64), (10, 40), (10, 50))
    loop = [(10, 10), (30, 10), (50, 10), (50, 25), (50, 40), (30, 40), (10, 40), (10, 25)]
    mask = canvas_to_mask({"objects": [freedraw_path([*loop, (10, 10)])]}, (64, 48), (64, 48))
    assert not (mask & ~rect).any() and iou(mask, rect) > 0.95
    assert np.array_equal(mask[:, 20:40], rect[:, 20:40])
    # An open U (no way back to the start) is closed by the straight segment end -> start.
    u_shape = [(10, 10), (10, 40), (50, 40), (50, 10)]
    mask = canvas_to_mask({"objects": [freedraw_path(u_shape)]}, (64, 48), (64, 48))
    assert not (mask & ~rect).any() and iou(mask, rect) > 0.9
    assert mask[10:12, 10:50].all()  # the closing edge along y = 10 is straight


def test_freehand_curve_is_followed():
    # A circle of radius 20 around (32, 32) drawn with 64 freehand points: the quadratic
    # segments run through the midpoints, so the area stays close to pi * 20^2 = 1257 px.
    theta = np.linspace(0, 2 * np.pi, 65)
    pts = np.stack([32 + 20 * np.cos(theta), 32 + 20 * np.sin(theta)], axis=1)
    mask = canvas_to_mask({"objects": [freedraw_path(pts)]}, (64, 64), (64, 64))
    yy, xx = np.mgrid[:64, :64]
    disc = (xx + 0.5 - 32) ** 2 + (yy + 0.5 - 32) ** 2 < 20**2
    assert iou(mask, disc) > 0.97


def test_polygon_tool():
    # The polygon tool adds a Polygon with points in canvas coordinates and default origin
    # left/top: left/top = the points' bounding box corner minus half the stroke (3 px).
    drawing = {
        "objects": [
            {
                "type": "Polygon",
                "points": [{"x": 10, "y": 10}, {"x": 50, "y": 10}, {"x": 10, "y": 50}],
                "left": 8.5,
                "top": 8.5,
                "width": 40,
                "height": 40,
                "strokeWidth": 3,
                "scaleX": 1,
                "scaleY": 1,
                "angle": 0,
            }
        ]
    }
    # Image twice the canvas: the triangle (20, 20), (100, 20), (20, 100), area 80 * 80 / 2.
    mask = canvas_to_mask(drawing, (128, 128), (64, 64))
    assert abs(mask.sum() - 3200) <= 80  # the diagonal edge splits about 80 pixels
    assert mask[20, 20] and mask[20, 98] and mask[98, 20] and mask[50, 50]
    assert not mask[19, 50] and not mask[70, 70] and not mask[50, 19]


def test_polygon_path_closed_with_z_and_rotated_circle():
    # A path with "z" (e.g. from a saved drawing), origin centre: left/top is the box centre.
    square = {
        "type": "Path",
        "path": [["M", 5, 5], ["L", 15, 5], ["L", 15, 15], ["L", 5, 15], ["z"]],
        "left": 10,
        "top": 10,
        "width": 10,
        "height": 10,
        "strokeWidth": 4,
        "originX": "center",
        "originY": "center",
    }
    # The circle tool: originX left, originY centre, angle towards the drag direction. With
    # radius 6, stroke 2 and angle 90 the centre is (left, top) + rotate((6 + 1, 0), 90 deg)
    # = (40, 20 + 7) = (40, 27).
    circle = {
        "type": "Circle",
        "left": 40,
        "top": 20,
        "radius": 6,
        "width": 12,
        "height": 12,
        "strokeWidth": 2,
        "originX": "left",
        "originY": "center",
        "angle": 90,
        "scaleX": 1,
        "scaleY": 1,
    }
    mask = canvas_to_mask({"objects": [square, circle]}, (60, 40), (60, 40))
    yy, xx = np.mgrid[:40, :60]
    disc = (xx + 0.5 - 40) ** 2 + (yy + 0.5 - 27) ** 2 < 36
    expected = box((40, 60), (5, 15), (5, 15)) | disc
    assert iou(mask, expected) > 0.95
    assert np.array_equal(mask[:, :25], expected[:, :25])  # the square is exact


def test_lines_and_text_add_nothing_and_unknown_objects_are_refused():
    line = {"type": "Line", "x1": 0, "y1": 0, "x2": 10, "y2": 10, "left": 0, "top": 0}
    text = {"type": "IText", "text": "tumour", "left": 5, "top": 5, "width": 40, "height": 20}
    assert not canvas_to_mask({"objects": [line, text]}, (20, 20), (20, 20)).any()
    with pytest.raises(ValueError, match="Image"):
        canvas_to_mask({"objects": [{"type": "Image", "left": 0}]}, (20, 20), (20, 20))
    with pytest.raises(ValueError, match="skew"):
        canvas_to_mask({"objects": [rect_tool(1, 1, 5, 5, skewX=10)]}, (20, 20), (20, 20))


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
