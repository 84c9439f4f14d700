"""Networks: shapes of all nine variants, the mask, residual attention, gates, parameters."""

import pytest
import torch

from lran_core import build_model, list_models
from lran_core.models.attention import spatial_softmax

PAPER_LRAN_PARAMS = 5_777_444


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def test_registry_has_the_papers_nine():
    assert sorted(list_models()) == sorted(
        f"{b}{s}" for b in ("resnet18", "densenet", "simplenet") for s in ("", "-ran", "-lran")
    )


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("size", [64, 96])
def test_explain_shapes(name, size):
    model = build_model(name, num_classes=3).eval()
    ex = model.explain(torch.randn(2, 3, size, size))
    assert ex.logits.shape == (2, 3)
    assert torch.allclose(ex.probs.sum(-1), torch.ones(2), atol=1e-5)
    assert ex.cam.shape == (2, 3, size, size)
    if name.endswith(("-ran", "-lran")):
        c = model.features.out_channels
        assert ex.mask.shape[:2] == (2, c)
        assert ex.attention.shape == (2, size, size)
    else:
        assert ex.mask is None and ex.attention is None
    if name.endswith("-lran"):
        assert len(ex.gates) == 2
        assert all(g.shape == (2, size, size) for g in ex.gates)
    else:
        assert ex.gates is None


def test_mask_channels_sum_to_one_and_residual_is_exact():
    model = build_model("resnet18-lran", num_classes=2).eval()
    seen = {}
    model.residual.register_forward_hook(
        lambda mod, inp, out: seen.update(b=inp[0], m=inp[1], h=out)
    )
    x = torch.randn(2, 3, 128, 128)
    ex = model.explain(x)
    sums = ex.mask.flatten(2).sum(-1)
    assert torch.allclose(sums, torch.ones_like(sums), atol=1e-5)
    assert torch.equal(seen["m"], ex.mask)
    assert torch.allclose(seen["h"], seen["b"] * seen["m"] + seen["b"])
    # and the classifier really reads H, not B
    assert not torch.allclose(seen["h"], seen["b"])


def test_spatial_softmax_is_per_channel():
    a = torch.randn(1, 4, 3, 5)
    m = spatial_softmax(a)
    assert torch.allclose(m[0, 2], torch.softmax(a[0, 2].flatten(), 0).view(3, 5))


def test_gates_lie_in_open_unit_interval():
    model = build_model("resnet18-lran", num_classes=2).eval()
    ex = model.explain(torch.randn(2, 3, 64, 64) * 3)
    for g in ex.gates:
        assert g.min() > 0 and g.max() < 1


def test_lran_parameter_count_near_paper():
    model = build_model("resnet18-lran", num_classes=4)
    n = sum(p.numel() for p in model.parameters())
    assert abs(n - PAPER_LRAN_PARAMS) / PAPER_LRAN_PARAMS < 0.05, n


def test_options_cut_and_widths_change_the_network():
    deep = build_model(
        "resnet18-ran", num_classes=2, cut="layer4", widths=(8, 16, 32, 64, 128, 256)
    )
    assert deep.features.out_channels == 512
    ex = deep.eval().explain(torch.randn(1, 3, 128, 128))
    assert ex.mask.shape == (1, 512, 4, 4)
    with pytest.raises(ValueError, match="cut"):
        build_model("resnet18", cut="layer9")
    with pytest.raises(ValueError, match="unknown model"):
        build_model("vgg16-lran")
