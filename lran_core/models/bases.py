"""Base networks cut to a feature extractor: image (N, 3, H, W) -> B(x) (N, C, h, w).

No weights are downloaded: every base starts from random initialisation (``weights=None``).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn
from torchvision.models import densenet121, resnet18


class Trunk(nn.Sequential):
    """A feature extractor with known output channels and stride; its layers from index
    ``last_stage`` on are its last stage (what the randomisation check re-initialises)."""

    def __init__(
        self, layers: list[nn.Module], out_channels: int, stride: int, last_stage: int
    ) -> None:
        super().__init__(*layers)
        self.out_channels = out_channels
        self.stride = stride
        self.last_stage = last_stage


_RESNET_CUTS = {"layer2": (128, 8), "layer3": (256, 16), "layer4": (512, 32)}


def resnet18_trunk(cut: str = "layer3") -> Trunk:
    """torchvision's ResNet-18 up to and including ``cut``: ``layer2``, ``layer3`` or ``layer4``."""
    if cut not in _RESNET_CUTS:
        raise ValueError(f"resnet18 cut must be one of {sorted(_RESNET_CUTS)}, got {cut!r}")
    net = resnet18(weights=None)
    layers: list[nn.Module] = [net.conv1, net.bn1, net.relu, net.maxpool]
    for name in ("layer1", "layer2", "layer3", "layer4"):
        layers.append(getattr(net, name))
        if name == cut:
            break
    channels, stride = _RESNET_CUTS[cut]
    return Trunk(layers, channels, stride, last_stage=len(layers) - 1)


_DENSENET_CUTS = {"denseblock2": (512, 8), "denseblock3": (1024, 16), "denseblock4": (1024, 32)}


def densenet_trunk(cut: str = "denseblock3") -> Trunk:
    """torchvision's DenseNet-121 features up to ``cut``, closed by batch norm and ReLU.

    The closing norm + ReLU mirrors DenseNet's own ``norm5`` so that B is non-negative like
    ResNet's output.
    """
    if cut not in _DENSENET_CUTS:
        raise ValueError(f"densenet cut must be one of {sorted(_DENSENET_CUTS)}, got {cut!r}")
    features = densenet121(weights=None).features
    layers: list[nn.Module] = []
    for name, module in features.named_children():
        if name == "norm5":
            break
        layers.append(module)
        if name == cut:
            break
    channels, stride = _DENSENET_CUTS[cut]
    last_stage = len(layers) - 1  # the cut's dense block, with the closing norm and ReLU
    layers += [nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]
    return Trunk(layers, channels, stride, last_stage)


def simplenet_trunk(cut: str = "stage4", width: int = 1) -> Trunk:
    """A SimpleNet-style plain 3x3 network (Hasanpour et al. 2016), ours: four stages.

    Stages of (conv-BN-ReLU)* with max-pooling between them. The first convolution has stride 2
    so the full-resolution stage costs about what ResNet's stem does. ``cut`` picks the last
    stage (``stage3`` gives stride 8, ``stage4`` stride 16); ``width`` multiplies every width.
    """
    plan = {
        "stage1": [64, 128, 128],
        "stage2": [128, 128, 128],
        "stage3": [256, 256, 256],
        "stage4": [256, 512, 256],
    }
    if cut not in plan:
        raise ValueError(f"simplenet cut must be one of {sorted(plan)}, got {cut!r}")
    layers: list[nn.Module] = []
    in_ch, stride, last_stage = 3, 2, 0
    for name, widths in plan.items():
        if name != "stage1":
            layers.append(nn.MaxPool2d(2, ceil_mode=True))
            stride *= 2
        last_stage = len(layers)
        for w in widths:
            w *= width
            first = not layers
            layers += [
                nn.Conv2d(in_ch, w, 3, stride=2 if first else 1, padding=1, bias=False),
                nn.BatchNorm2d(w),
                nn.ReLU(inplace=True),
            ]
            in_ch = w
        if name == cut:
            break
    return Trunk(layers, in_ch, stride, last_stage)


BASES: dict[str, Callable[..., Trunk]] = {
    "resnet18": resnet18_trunk,
    "densenet": densenet_trunk,
    "simplenet": simplenet_trunk,
}
