"""Split a model's image transform into a per-image uint8 part and a per-batch float part.

open_clip, timm and torchvision all end their eval transforms in `ToTensor → Normalize`. Done
per image in a decoding worker, those two steps are half or more of the worker's time (measured
on 60×80 catalog photos: 0.8 of 1.7 ms per image for tf_efficientnet_lite0, 1.4 of 2.1 ms for
CLIP) and they make the worker ship float32 tensors, four times the bytes of uint8 ones. On a
CPU where the model's threads already fill every core, every millisecond a decoder spends is
taken from the forward pass. So the worker stops at a uint8 [C, H, W] crop, and the main
process converts and normalises the whole batch in one vectorised step: the same arithmetic
(÷255, −mean, ÷std in float32), so the result is bit-for-bit what the full transform gives.
A transform of any other shape is used whole, per image.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torchvision import transforms as T

TO_TENSOR = {"ToTensor", "MaybeToTensor"}  # torchvision's, and open_clip's / timm's pass-through variant


class NormalizeBatch:
    """uint8 [B, C, H, W] → float32, exactly as ToTensor then Normalize make each image."""

    def __init__(self, mean: Sequence[float] | torch.Tensor, std: Sequence[float] | torch.Tensor) -> None:
        self.mean = torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1)

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        return batch.to(torch.float32).div_(255).sub_(self.mean).div_(self.std)


def split_for_batching(transform: Callable[[Any], torch.Tensor]) -> tuple[Callable[[Any], torch.Tensor], NormalizeBatch | None]:
    """(per-image transform, per-batch finisher); the finisher is None when the transform is kept whole."""
    steps = getattr(transform, "transforms", None)
    if not isinstance(transform, T.Compose) or not steps or len(steps) < 2:
        return transform, None
    to_tensor, normalize = steps[-2], steps[-1]
    if type(to_tensor).__name__ not in TO_TENSOR or not isinstance(normalize, T.Normalize):
        return transform, None
    return T.Compose([*steps[:-2], T.PILToTensor()]), NormalizeBatch(normalize.mean, normalize.std)
