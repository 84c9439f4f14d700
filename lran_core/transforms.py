"""Batch transforms shared by training, evaluation, explanation and region maps.

Images are kept at their native size (IDC: 50 px) as uint8 and turned into the network's input
here, in one way for every caller: :func:`to_input` resizes to the model's input size and
normalises. :func:`augment` is the training-time augmentation, applied before :func:`to_input`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

# Ruifrok & Johnston's H&E-DAB stain vectors (as scikit-image's ``hed_from_rgb``): optical
# density = stains @ RGB_FROM_HED, rows haematoxylin, eosin, DAB.
RGB_FROM_HED = torch.tensor(
    [[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]], dtype=torch.float32
)
RGB_FROM_HED = RGB_FROM_HED / RGB_FROM_HED.norm(dim=1, keepdim=True)
HED_FROM_RGB = torch.linalg.inv(RGB_FROM_HED)


def resize(batch: Tensor, size: int) -> Tensor:
    """Bilinear resize of float images (N, C, h, w) to (N, C, size, size).

    Half-pixel centres (as OpenCV's INTER_LINEAR); anti-aliased when shrinking so a large
    image is averaged, not sampled.
    """
    if batch.shape[-2:] == (size, size):
        return batch
    shrinking = batch.shape[-1] > size or batch.shape[-2] > size
    return F.interpolate(
        batch, size=(size, size), mode="bilinear", align_corners=False, antialias=shrinking
    )


def normalise(batch: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """Takes float images (N, 3, H, W) in [0, 1]; gives them normalised by ``mean``/``std``."""
    m = torch.tensor(mean, dtype=batch.dtype, device=batch.device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=batch.dtype, device=batch.device).view(1, 3, 1, 1)
    return (batch - m) / s


def to_input(
    images: Tensor, input_size: int, mean: Sequence[float], std: Sequence[float]
) -> Tensor:
    """The network's input from images at any square size.

    Takes uint8 (N, 3, h, h) or float in [0, 1]; gives float32 (N, 3, S, S), S = ``input_size``,
    resized bilinearly and normalised.
    """
    x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    return normalise(resize(x, input_size), mean, std)


def translate(batch: Tensor, shift: float, generator: torch.Generator | None = None) -> Tensor:
    """Random translation of every image by up to ``shift`` of its side, with reflected context.

    Takes float images (N, C, H, W); gives the same shape. The image is reflect-padded, so what
    enters at one border is the tissue mirrored there, never a constant fill the network could
    learn to find.
    """
    n, _, h, w = batch.shape
    pad = round(shift * min(h, w))
    if pad < 1:
        return batch
    padded = F.pad(batch, (pad, pad, pad, pad), mode="reflect")
    offsets = torch.randint(0, 2 * pad + 1, (n, 2), generator=generator)
    return torch.stack(
        [
            padded[i, :, int(dy) : int(dy) + h, int(dx) : int(dx) + w]
            for i, (dy, dx) in enumerate(offsets.tolist())
        ]
    )


def hed_jitter(batch: Tensor, sigma: float, generator: torch.Generator | None = None) -> Tensor:
    """Stain augmentation in haematoxylin-eosin-DAB space (Tellez et al. 2018).

    Takes float RGB (N, 3, H, W) in [0, 1]; each image's stain concentrations are scaled by
    1 + U(-sigma, sigma) and shifted by U(-sigma, sigma) (in optical-density units) per stain.
    Gives the same shape, in [0, 1].
    """
    n = batch.shape[0]
    alpha = 1 + (torch.rand(n, 3, generator=generator) * 2 - 1) * sigma
    beta = (torch.rand(n, 3, generator=generator) * 2 - 1) * sigma
    od = -torch.log(batch.clamp_min(1 / 255)).permute(0, 2, 3, 1)  # (N, H, W, 3)
    stains = od @ HED_FROM_RGB.to(batch.device)
    stains = stains * alpha.to(batch.device).view(n, 1, 1, 3) + beta.to(batch.device).view(
        n, 1, 1, 3
    )
    rgb = torch.exp(-(stains.clamp_min(0) @ RGB_FROM_HED.to(batch.device)))
    return rgb.permute(0, 3, 1, 2).clamp(0, 1)


def colour_jitter(
    batch: Tensor, strength: float, generator: torch.Generator | None = None
) -> Tensor:
    """Brightness, contrast and saturation scaled by 1 + U(-strength/2, strength/2) per image,
    and a small per-channel shift; float (N, 3, H, W) in [0, 1] in and out."""
    n = batch.shape[0]

    def rand(*shape: int) -> Tensor:
        return torch.rand(*shape, generator=generator).to(batch.device)

    brightness = 1 + (rand(n, 1, 1, 1) - 0.5) * strength
    contrast = 1 + (rand(n, 1, 1, 1) - 0.5) * strength
    saturation = 1 + (rand(n, 1, 1, 1) - 0.5) * strength
    shift = (rand(n, 3, 1, 1) - 0.5) * strength / 5
    batch = batch * brightness
    mean = batch.mean(dim=(1, 2, 3), keepdim=True)
    batch = (batch - mean) * contrast + mean
    gray = batch.mean(dim=1, keepdim=True)
    return ((batch - gray) * saturation + gray + shift).clamp(0, 1)


def flip_rotate(batch: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """A random flip and 90-degree rotation per square image (histology has no orientation)."""
    n = batch.shape[0]
    flip = torch.rand(n, generator=generator) < 0.5
    turns = torch.randint(0, 4, (n,), generator=generator)
    out = [
        torch.rot90(img.flip(-1) if f else img, int(t), dims=(-2, -1))
        for img, f, t in zip(batch, flip.tolist(), turns.tolist())
    ]
    return torch.stack(out)


def augment(
    batch: Tensor,
    generator: torch.Generator | None = None,
    *,
    shift: float = 0.0,
    hed: float = 0.0,
    colour: float = 0.3,
) -> Tensor:
    """Training augmentation of float images (N, 3, H, W) in [0, 1], square; gives the same.

    In order: translation by up to ``shift`` of the side with reflected context (0: none), a
    flip and 90-degree rotation, HED stain jitter of strength ``hed`` (0: none), and colour
    jitter of strength ``colour``.
    """
    batch = translate(batch, shift, generator)
    batch = flip_rotate(batch, generator)
    if hed > 0:
        batch = hed_jitter(batch, hed, generator)
    return colour_jitter(batch, colour, generator)
