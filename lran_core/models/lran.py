"""The classifier: a base network, optionally re-weighted by a (locally gated) attention branch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attention import AttentionBranch, ResidualAttention, spatial_softmax
from .bases import BASES

ATTENTION_KINDS = ("base", "ran", "lran")
PADDING_MODES = ("zeros", "reflect", "replicate")


@dataclass
class ModelMeta:
    """What a checkpoint says about a model besides its tensors.

    ``class_folders`` are the training data's folder names of the classes, in order (PCam:
    ``0``, ``1``), so a folder of the same layout is evaluated as it is. ``mean``/``std``
    normalise RGB in [0, 1]; ``mpp`` is microns per pixel of the training data
    at its native size, ``native_size`` pixels on a side before resizing to ``input_size``
    (IDC: 50 px at 4.0 um/px, a 200 um field, shown to the network at 128 px). None when unknown;
    ``native_size`` None means the data was used at ``input_size``.
    """

    variant: str
    options: dict[str, Any]
    class_names: list[str]
    class_folders: list[str] | None = None
    input_size: int = 128
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.25, 0.25, 0.25)
    mpp: float | None = None
    native_size: int | None = None
    data: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass
class Explanation:
    """Everything a reviewer sees for a batch, from one forward pass.

    Shapes, for N images of H x W, K classes, C channels of B at h x w:
    ``logits``, ``probs`` (N, K); ``cam`` (N, K, H, W) raw class activation maps of every class;
    ``mask`` (N, C, h, w) the softmax mask M (None for the base variant); ``attention`` (N, H, W)
    display map of the attention branch, 1 meaning uniform attention (None for base);
    ``gates`` list of (N, H, W) gate maps alpha in (0, 1), coarsest first (None unless LRAN).
    """

    logits: Tensor
    probs: Tensor
    cam: Tensor
    mask: Tensor | None
    attention: Tensor | None
    gates: list[Tensor] | None


class LRANClassifier(nn.Module):
    """Base network B, attention mask M, H = B * M + B, global average pooling, linear.

    Args:
        base: ``resnet18``, ``densenet`` or ``simplenet``.
        attention: ``base`` (no attention), ``ran`` (plain skips) or ``lran`` (gated skips).
        num_classes: K.
        cut: where the base network is cut (see :mod:`lran_core.models.bases`).
        widths: attention-branch encoder widths, finest first (its depth is their number).
        decoder_levels: attention-branch decoder levels; the mask is made at stride
            ``2 ** (len(widths) - decoder_levels)`` and average-pooled to B's size.
        padding_mode: how every padded convolution (base and attention branch) fills its
            border: ``zeros`` (torchvision's and the paper's), ``reflect`` or ``replicate``.
            Zeros give the network a border to detect, and its CAMs light the patch's frame
            (model card, ablation); reflect removes that signal.
    """

    def __init__(
        self,
        base: str = "resnet18",
        attention: str = "lran",
        num_classes: int = 2,
        cut: str | None = None,
        widths: Sequence[int] = (16, 32, 64, 160, 256),
        decoder_levels: int = 2,
        padding_mode: str = "zeros",
    ) -> None:
        super().__init__()
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"unknown padding_mode {padding_mode!r}; choose from {PADDING_MODES}")
        if base not in BASES:
            raise ValueError(f"unknown base {base!r}; choose from {sorted(BASES)}")
        if attention not in ATTENTION_KINDS:
            raise ValueError(f"unknown attention {attention!r}; choose from {ATTENTION_KINDS}")
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        self.kind = attention
        self.features = BASES[base](cut) if cut else BASES[base]()
        channels = self.features.out_channels
        self.attention_branch = (
            None
            if attention == "base"
            else AttentionBranch(channels, widths, decoder_levels, gated=attention == "lran")
        )
        self.residual = ResidualAttention()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        for conv in self.modules():
            if (
                isinstance(conv, nn.Conv2d)
                and conv.padding != "valid"
                and any(int(p) > 0 for p in conv.padding)
            ):
                conv.padding_mode = padding_mode  # type: ignore[assignment]
        self.variant = base if attention == "base" else f"{base}-{attention}"
        self.meta = ModelMeta(
            variant=self.variant,
            options={
                "cut": cut,
                "widths": list(widths),
                "decoder_levels": decoder_levels,
                "padding_mode": padding_mode,
            },
            class_names=[f"class_{i}" for i in range(num_classes)],
        )

    @property
    def cam_layer(self) -> nn.Module:
        """The module whose output is the final map F (B for base, H otherwise)."""
        return self.features if self.attention_branch is None else self.residual

    def _maps(self, x: Tensor) -> tuple[Tensor, Tensor | None, Tensor | None, list[Tensor]]:
        """Takes images (N, 3, H, W); gives F, M, the fine mask logits, and the gate alphas."""
        b = self.features(x)
        if self.attention_branch is None:
            return b, None, None, []
        fine, alphas = self.attention_branch(x)
        logits = (
            fine if fine.shape[-2:] == b.shape[-2:] else F.adaptive_avg_pool2d(fine, b.shape[-2:])
        )
        m = spatial_softmax(logits)
        return self.residual(b, m), m, fine, alphas

    def dense_features(self, x: Tensor) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """The fully convolutional part, for an input of any size (sides multiples of 32).

        Takes normalised images (N, 3, H, W); gives B (N, C, H/s, W/s) at the base's stride
        s, the attention logits at B's size (None for the base variant) and the attention
        branch's finer logits (None for base). The spatial softmax and pooling, which depend
        on the window a patch covers, are left to the caller (:mod:`lran_core.region`).
        """
        b = self.features(x)
        if self.attention_branch is None:
            return b, None, None
        fine, _ = self.attention_branch(x)
        logits = (
            fine if fine.shape[-2:] == b.shape[-2:] else F.adaptive_avg_pool2d(fine, b.shape[-2:])
        )
        return b, logits, fine

    def forward(self, x: Tensor) -> Tensor:
        """Takes normalised images (N, 3, H, W); gives logits (N, K)."""
        f, _, _, _ = self._maps(x)
        return self.fc(self.pool(f).flatten(1))

    @torch.no_grad()
    def explain(self, x: Tensor, size: tuple[int, int] | None = None) -> Explanation:
        """One forward pass, no backward, giving logits and every map (see :class:`Explanation`).

        Takes normalised images (N, 3, H, W); maps are up-sampled bilinearly to ``size``
        (default: H x W).
        """
        size = size or (x.shape[-2], x.shape[-1])
        f, m, fine, alphas = self._maps(x)
        logits = self.fc(self.pool(f).flatten(1))
        # CAM_c = sum_k w[c, k] F[k]; the bias is left out as in Zhou et al.
        cam = torch.einsum("kc,nchw->nkhw", self.fc.weight, f)
        attention = gates = None
        if fine is not None:
            positions = fine.shape[-2] * fine.shape[-1]
            attention = _resize(spatial_softmax(fine).mean(1, keepdim=True) * positions, size)[:, 0]
        if self.kind == "lran":
            gates = [_resize(a, size)[:, 0] for a in alphas]
        return Explanation(
            logits=logits,
            probs=logits.softmax(-1),
            cam=_resize(cam, size),
            mask=m,
            attention=attention,
            gates=gates,
        )


def _resize(maps: Tensor, size: tuple[int, int]) -> Tensor:
    if maps.shape[-2:] == size:
        return maps
    return F.interpolate(maps, size=size, mode="bilinear", align_corners=False)
