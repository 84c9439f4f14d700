"""The attention branch of (L)RAN: an encoder-decoder over the image giving a spatial softmax mask.

Paper: Subramanyam et al., "Local Residual Attention Network for Classification of Breast Cancer
Histopathology Images"; design notes in ``shared/docs/design.md`` section 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def spatial_softmax(logits: Tensor) -> Tensor:
    """Softmax over the spatial positions of each channel (paper eq. 2).

    Takes logits (N, C, h, w); gives M (N, C, h, w) with every channel summing to 1.
    """
    return logits.flatten(2).softmax(-1).view_as(logits)


class ConvBNReLU(nn.Sequential):
    """3x3 convolution, batch norm, ReLU; keeps the spatial size."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class AttentionGate(nn.Module):
    """Local attention gate on a skip connection (Oktay et al. 2018, as in LRAN).

    alpha = sigmoid(psi(ReLU(W_x x + W_g up(g)))), x_hat = alpha * x.

    Args:
        skip_channels: channels C_x of the skip feature x.
        gate_channels: channels of the coarser decoder feature g.
        inter_channels: C_int; defaults to ``skip_channels // 2``.
    """

    def __init__(self, skip_channels: int, gate_channels: int, inter_channels: int | None = None):
        super().__init__()
        inter = inter_channels or max(1, skip_channels // 2)
        self.w_x = nn.Conv2d(skip_channels, inter, 1, bias=False)
        self.w_g = nn.Conv2d(gate_channels, inter, 1, bias=True)
        self.psi = nn.Conv2d(inter, 1, 1, bias=True)

    def forward(self, x: Tensor, g: Tensor) -> tuple[Tensor, Tensor]:
        """Takes x (N, C_x, H, W), g (N, C_g, H', W'); gives x_hat like x, alpha (N, 1, H, W)."""
        g_up = F.interpolate(g, size=x.shape[-2:], mode="bilinear", align_corners=False)
        alpha = torch.sigmoid(self.psi(F.relu(self.w_x(x) + self.w_g(g_up))))
        return alpha * x, alpha


class AttentionBranch(nn.Module):
    """Encoder-decoder over the image that gives mask logits a(x) with ``out_channels`` channels.

    Encoder: ``len(widths)`` levels, each a 3x3 conv block then 2x max-pooling; a bottleneck block
    at the coarsest scale. Decoder: each level up-samples bilinearly to the next skip's size, joins
    the skip (concatenation) and convolves. ``decoder_levels`` sets how many skips are used, so the
    decoder ends at stride ``2 ** (len(widths) - decoder_levels)``. With ``gated=True`` every skip
    passes through an :class:`AttentionGate` first (LRAN); otherwise the skip is plain (RAN).

    Args:
        out_channels: C, the channels of the base feature map B.
        widths: encoder widths, one per level, finest first.
        decoder_levels: how many decoder levels (skips, from the coarsest up).
        gated: local attention gates on the skips.
    """

    def __init__(
        self,
        out_channels: int,
        widths: Sequence[int] = (16, 32, 64, 160, 256),
        decoder_levels: int = 2,
        gated: bool = False,
    ) -> None:
        super().__init__()
        if not 1 <= decoder_levels <= len(widths):
            raise ValueError(f"decoder_levels must be in 1..{len(widths)}, got {decoder_levels}")
        self.encoder = nn.ModuleList()
        in_ch = 3
        for w in widths:
            self.encoder.append(ConvBNReLU(in_ch, w))
            in_ch = w
        self.bottleneck = ConvBNReLU(in_ch, widths[-1])
        self.gates = nn.ModuleList() if gated else None
        self.decoder = nn.ModuleList()
        g_ch = widths[-1]
        for skip_ch in reversed(widths[len(widths) - decoder_levels :]):
            if self.gates is not None:
                self.gates.append(AttentionGate(skip_ch, g_ch))
            self.decoder.append(ConvBNReLU(g_ch + skip_ch, skip_ch))
            g_ch = skip_ch
        self.to_logits = nn.Conv2d(g_ch, out_channels, 1)
        self.decoder_levels = decoder_levels

    @property
    def output_stride(self) -> int:
        """Stride of the mask logits relative to the input."""
        return 2 ** (len(self.encoder) - self.decoder_levels)

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Takes images (N, 3, H, W); gives logits (N, C, H/s, W/s), gate alphas coarsest first."""
        skips = []
        for block in self.encoder:
            x = block(x)
            skips.append(x)
            x = F.max_pool2d(x, 2, ceil_mode=True)
        g = self.bottleneck(x)
        alphas: list[Tensor] = []
        for i, conv in enumerate(self.decoder):
            skip = skips[-1 - i]
            if self.gates is not None:
                skip, alpha = self.gates[i](skip, g)
                alphas.append(alpha)
            g_up = F.interpolate(g, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            g = conv(torch.cat([g_up, skip], dim=1))
        return self.to_logits(g), alphas


class ResidualAttention(nn.Module):
    """H = B * M + B (paper eq. 1). A module of its own so hooks (Grad-CAM) see H as an output."""

    def forward(self, features: Tensor, mask: Tensor) -> Tensor:
        """Takes B and M, both (N, C, h, w); gives H (N, C, h, w)."""
        return features * mask + features
