"""IDC patches in context: mosaics by the x/y of their file names, gaps left empty."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from annotations.store import Store
from lran_core.data import read_mpp
from review import studies
from review.mosaic import GAP_RGB, assemble, neighbourhood, placed


def patch(value: int, height: int = 50, width: int = 50) -> np.ndarray:
    return np.full((height, width, 3), value, np.uint8)


def name(x: int, y: int, patient: str = "10253") -> str:
    return f"{patient}_idx5_x{x}_y{y}_class0.png"


def test_patches_are_placed_by_their_names_and_gaps_stay_grey() -> None:
    a = placed(name(1001, 501), patch(10))
    b = placed(name(1101, 551), patch(20))
    edge = placed(name(1051, 501), patch(30, height=50, width=36))  # cut by the slide border
    assert a is not None and b is not None and edge is not None
    assert placed("p.png", patch(1)) is None
    mosaic = assemble([a, b, edge])
    assert mosaic.origin == (1001, 501) and mosaic.rgb.shape == (100, 150, 3)
    assert (mosaic.rgb[0:50, 0:50] == 10).all() and (mosaic.rgb[50:100, 100:150] == 20).all()
    assert (mosaic.rgb[0:50, 50:86] == 30).all()
    # Places with no patch (and the rest of the cut one) are the gap colour, not tissue.
    assert (mosaic.rgb[60, 10] == GAP_RGB).all() and (mosaic.rgb[10, 90] == GAP_RGB).all()
    assert mosaic.boxes == [(0, 0, 50, 50), (100, 50, 150, 100), (50, 0, 86, 50)]
    with pytest.raises(ValueError, match="2 patients"):
        assemble([a, placed(name(1, 1, "999"), patch(0))])


def test_the_neighbourhood_keeps_the_patient_and_the_radius() -> None:
    target = placed(name(500, 500), patch(1))
    near = placed(name(550, 450), patch(2))
    far = placed(name(800, 500), patch(3))
    other = placed(name(550, 500, "777"), patch(4))
    mosaic = neighbourhood(target, [near, far, other], radius=2)
    assert len(mosaic.boxes) == 2 and mosaic.boxes[0] == (0, 50, 50, 100)


def test_a_patients_mosaic_becomes_a_region_case_at_4_um_per_px(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'r.sqlite'}")
    study = studies.default_study(store)
    files = []
    for i, (x, y) in enumerate([(0, 0), (50, 0), (100, 50)]):
        buf = io.BytesIO()
        Image.fromarray(patch(40 * i)).save(buf, format="PNG")
        files.append((name(x, y), buf.getvalue()))
    studies.add_images(store, study, files, "dr-a", 50)
    result = studies.add_patient_mosaic(store, study, "patient 10253", "dr-a", 50)
    (case,) = result.added
    assert (case.group, case.item.kind) == ("patient 10253", "region")
    assert (case.item.width, case.item.height) == (150, 100)
    data = store.image_bytes(case.item.item_hash)
    assert read_mpp(data) == pytest.approx(4.0)
    with pytest.raises(ValueError, match="needs two"):
        studies.add_patient_mosaic(store, study, "patient 999", "dr-a", 50)


def test_an_image_beyond_the_pixel_budget_is_refused_by_name_from_its_header() -> None:
    from review.items import BYTES_PER_PIXEL, ImageReadError, pixel_budget, read_image

    # With 4 GiB free, a tenth of it reviews about 10.7 million pixels at 40 bytes each.
    assert pixel_budget(4 * 2**30) == 4 * 2**30 // (10 * BYTES_PER_PIXEL)
    buf = io.BytesIO()
    Image.new("RGB", (4000, 3000), (200, 50, 50)).save(buf, format="PNG")
    with pytest.raises(ImageReadError, match=r"big\.png: 4000 x 3000 px would need about 4\.5 GiB"):
        read_image("big.png", buf.getvalue(), max_pixels=10_000_000)
    assert read_image("big.png", buf.getvalue(), max_pixels=12_000_000).width == 4000


def test_a_multi_page_tiff_says_how_many_pages_it_has() -> None:
    from review.items import read_image

    buf = io.BytesIO()
    pages = [Image.new("RGB", (20, 20), (i * 60, 0, 0)) for i in range(3)]
    pages[0].save(buf, format="TIFF", save_all=True, append_images=pages[1:])
    item = read_image("stack.tif", buf.getvalue())
    assert item.pages == 3 and item.rgb[0, 0].tolist() == [0, 0, 0]
