"""CAM against pytorch-grad-cam's GradCAM on the same layer (design.md §2), and display helpers."""

import cv2
import numpy as np
import pytest
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from lran_core import build_model
from lran_core.maps import colourise, normalise, overlay


def _minmax(img: np.ndarray) -> np.ndarray:
    img = img - img.min()
    return img / (1e-7 + img.max())


def _as_gradcam_shows(cam_low: np.ndarray, size: int) -> np.ndarray:
    # pytorch-grad-cam: ReLU, min-max, resize to the input, then min-max once more
    img = _minmax(np.maximum(cam_low, 0)).astype(np.float32)
    return _minmax(cv2.resize(img, (size, size)))


@pytest.mark.parametrize("name", ["resnet18", "resnet18-ran", "resnet18-lran"])
def test_cam_matches_gradcam(name):
    torch.manual_seed(1)
    model = build_model(name, num_classes=2).eval()
    x = torch.randn(2, 3, 64, 64)
    h = w = 64 // 16
    ex_low = model.explain(x, size=(h, w))
    ex = model.explain(x)
    for target in (0, 1):
        with GradCAM(model=model, target_layers=[model.cam_layer]) as gradcam:
            ref = gradcam(input_tensor=x, targets=[ClassifierOutputTarget(target)] * 2)
        for n in range(2):
            ours = _as_gradcam_shows(ex_low.cam[n, target].numpy(), 64)
            assert np.abs(ours - ref[n]).max() < 1e-3
    # the full-size CAM is the bilinear up-sampling of the low-resolution one
    up = torch.nn.functional.interpolate(ex_low.cam, size=(64, 64), mode="bilinear")
    assert torch.allclose(ex.cam, up, atol=1e-5)


def test_cam_is_linear_readout_of_logits():
    # GAP of CAM_c plus the bias gives the logit of class c: the map explains the score
    torch.manual_seed(2)
    model = build_model("resnet18-lran", num_classes=3).eval()
    ex = model.explain(torch.randn(1, 3, 64, 64), size=(4, 4))
    assert torch.allclose(ex.cam.mean((-2, -1)) + model.fc.bias, ex.logits, atol=1e-4)


def test_normalise_per_map_and_shared():
    maps = np.stack([np.full((4, 4), 1.0), np.arange(16.0).reshape(4, 4) - 4.0])
    maps[0, 0, 0] = 3.0
    per = normalise(maps)
    assert per[0].max() == 1.0 and per[1].max() == 1.0
    assert per[1, 0, 0] == 0.0  # ReLU before min-max: negatives count as 0
    shared = normalise(maps, shared=True)
    assert shared[1].max() == 1.0
    assert shared[0, 0, 0] == pytest.approx(3.0 / 11.0)
    assert np.all(normalise(np.zeros((3, 3))) == 0)


def test_overlay_blends_with_opacity():
    rgb = np.full((10, 10, 3), 200, np.uint8)
    heat = np.zeros((5, 5))
    heat[2, 2] = 1.0
    assert np.array_equal(overlay(rgb, heat, alpha=0.0), rgb)
    full = overlay(rgb, heat, alpha=1.0, cmap="gray")
    assert full.shape == (10, 10, 3)
    assert np.array_equal(full[0, 0], [0, 0, 0])
    half = overlay(rgb, np.ones((5, 5)), alpha=0.5, cmap="gray")
    assert np.array_equal(half[3, 3], [228, 228, 228])  # (200 + 255) / 2 rounded
    assert colourise(np.array([[0.0, 1.0]]), "gray").tolist() == [[[0, 0, 0], [255, 255, 255]]]
    with pytest.raises(ValueError):
        overlay(rgb, heat, alpha=1.5)
