"""The map-quality measures (lran_core.mapquality, design.md §3b) on maps whose answers are
known: the border ring, the level a map blind to position reaches, the PCam centre check on the
true class's CAM, and which layers the randomisation check re-initialises."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lran_core import build_model
from lran_core.evaluate import map_quality
from lran_core.mapquality import (
    border_bias,
    cam_grid,
    centre_ratio,
    chance_border_bias,
    patch_maps,
    randomised_copy,
)


def test_border_bias_of_a_corner_and_a_centre_peak() -> None:
    maps = np.zeros((2, 96, 96), np.float32)
    maps[0, 2, 3] = 1.0  # in the 12 px ring
    maps[1, 48, 40] = 1.0
    bias = border_bias(maps)
    assert bias["ring_area"] == pytest.approx(1 - (72 / 96) ** 2)  # 0.4375
    assert bias["peak_in_ring"] == 0.5 and bias["mass_in_ring"] == 0.5


def test_a_map_blind_to_position_peaks_in_the_ring_more_often_than_its_area() -> None:
    # Cells that are pixels: the peak is any cell alike, so the ring's share of cells.
    exact = chance_border_bias((8, 8), (8, 8))
    assert exact["peak_in_ring"] == pytest.approx(28 / 64, abs=0.03)
    # Up-sampled 8 x 8 cells to 50 px (IDC): the border's flat bands keep their cell's value,
    # inner peaks fall between pixel centres, so the ring wins more than its 42% of the area.
    idc = chance_border_bias((8, 8), (50, 50))
    assert idc["peak_in_ring"] > border_bias(np.zeros((1, 50, 50)))["ring_area"] + 0.1
    model = build_model("resnet18")
    model.meta.input_size = 128
    assert cam_grid(model) == (8, 8)


def test_the_centre_check_uses_the_cam_of_the_true_class() -> None:
    torch.manual_seed(0)
    model = build_model("resnet18").eval()
    model.meta.input_size = 96
    images = torch.randint(0, 256, (6, 3, 96, 96), dtype=torch.uint8)
    predicted = patch_maps(model, images)["pred"]
    # Label every image with the class the model does not predict for the first one: its
    # predicted-class CAM is another class's than the one the check is about.
    truth = 1 - int(predicted[0])
    labels = [truth] * len(images)
    out = map_quality(model, images, labels, centre=1 / 3, max_maps=6)
    name = model.meta.class_names[truth]
    expected = centre_ratio(patch_maps(model, images, torch.full((6,), truth))["cam"])
    assert out["per_class"][name]["cam_centre"]["ratio"] == pytest.approx(expected["ratio"])
    wrong = centre_ratio(patch_maps(model, images)["cam"])
    assert expected["ratio"] != pytest.approx(wrong["ratio"])
    chance = out["per_class"][name]["cam_border_chance"]
    assert 0 < chance["peak_in_ring"] < 1


@pytest.mark.parametrize("variant", ["resnet18", "densenet", "simplenet-lran"])
def test_the_randomisation_check_resets_the_last_stage_of_every_base(variant: str) -> None:
    torch.manual_seed(0)
    model = build_model(variant)
    rand = randomised_copy(model, seed=1)
    changed = {
        name.split(".")[1]
        for (name, a), (_, b) in zip(
            model.state_dict().items(), rand.state_dict().items(), strict=True
        )
        if name.startswith("features.") and a.is_floating_point() and not torch.equal(a, b)
    }
    last = model.features.last_stage
    # Every parameterised module from the last stage on is new; none before it.
    assert changed and min(int(i) for i in changed) == last
    assert not [i for i in changed if int(i) < last]


def test_the_randomised_copy_is_drawn_from_its_seed_alone() -> None:
    # Its weights come from the seed, not from the caller's random state, and the caller's
    # state is not touched: a GPU evaluation and a CPU one reset the same weights.
    model = build_model("resnet18-lran")
    torch.manual_seed(5)
    state = torch.get_rng_state()
    first = randomised_copy(model, seed=1).state_dict()
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(6)
    second = randomised_copy(model, seed=1).state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)
    other = randomised_copy(model, seed=2).state_dict()
    assert not all(torch.equal(first[k], other[k]) for k in first)
