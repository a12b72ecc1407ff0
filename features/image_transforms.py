"""Split a model's image transform into a cheap per-image uint8 part and a per-batch float part.

On a CPU whose cores the model's threads already fill, every millisecond spent decoding is taken
from the forward pass, so the per-image work is cut to what only a per-image step can do:

* open_clip, timm and torchvision end their eval transforms in `ToTensor → Normalize`
  (torchvision's weights presets do the same inside `ImageClassification`). Per image, those
  steps are a large share of the decoding time and make a decoding worker ship float32, four
  times the bytes of uint8. So the per-image part stops at a uint8 crop in Pillow's own
  [H, W, C] order, and `NormalizeBatch` converts and normalises the whole batch in one
  vectorised step, with the same float32 arithmetic (÷255, −mean, ÷std): bit for bit what the
  library's transform gives. For a CNN it leaves the batch in the channels-last order that
  [H, W, C] crops already have, so the forward pass needs no layout copy either.
* Every one of those transforms resizes the shorter side and then keeps a centre crop, so part
  of the resized image is computed only to be thrown away (over 40% of it for a 60×80 catalog
  photo resized to 256 and cropped to 224). `ResizedCenterCrop` asks Pillow to resample only
  the crop's own region (`Image.resize(box=...)`): the same filter at the same source
  coordinates. Those coordinates are computed in a different order in floating point, so a pixel
  now and then rounds to a neighbouring uint8 level: at most one level per resampling pass
  (2/255), on few pixels (the tests bound both).

A transform of any other shape is used whole, per image.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision import transforms as T
from torchvision.transforms import functional as F

TO_TENSOR = {"ToTensor", "MaybeToTensor"}  # torchvision's, and open_clip's / timm's pass-through variant


class ToHWCTensor:
    """PIL image → uint8 [H, W, C] tensor: Pillow's own pixel order, so no per-image transpose."""

    def __call__(self, im: Image.Image) -> torch.Tensor:
        a = np.array(im)
        return torch.from_numpy(a[:, :, None] if a.ndim == 2 else a)

    def __repr__(self) -> str:
        return "ToHWCTensor()"


class NormalizeBatch:
    """uint8 [B, H, W, C] → float32 [B, C, H, W], exactly as ToTensor then Normalize make each image.

    With `channels_last` the result keeps the pixel-interleaved memory order the batch already
    has (what a CNN's channels-last forward pass wants, so no copy is made for it); otherwise it
    is made contiguous in the usual [B, C, H, W] order during the float conversion.
    """

    def __init__(self, mean: Sequence[float] | torch.Tensor, std: Sequence[float] | torch.Tensor, channels_last: bool = False) -> None:
        self.mean = torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        nchw = batch.permute(0, 3, 1, 2)  # a view: channels-last strides
        return nchw.to(torch.float32, memory_format=self.memory_format).div_(255).sub_(self.mean).div_(self.std)


def _side(size: int | Sequence[int]) -> int | None:
    if isinstance(size, int):
        return size
    return size[0] if len(size) == 1 else None


class ResizedCenterCrop:
    """torchvision's Resize(shorter side) then CenterCrop on a PIL image, resampling only the crop.

    Output sizes and crop offsets follow torchvision's own rules; where the crop would need
    padding (a crop larger than the resized image) it runs the two library steps as they are.
    """

    def __init__(self, size: int, crop: tuple[int, int], interpolation: T.InterpolationMode) -> None:
        self.size = size
        self.crop = crop
        self.interpolation = interpolation
        self.resample = F.pil_modes_mapping[interpolation]

    def __call__(self, im: Image.Image) -> Image.Image:
        w, h = im.size
        short, long = (w, h) if w <= h else (h, w)
        new_long = int(self.size * long / short)
        nw, nh = (self.size, new_long) if w <= h else (new_long, self.size)
        ch, cw = self.crop
        if ch > nh or cw > nw:
            return F.center_crop(F.resize(im, [self.size], interpolation=self.interpolation), list(self.crop))
        top = int(round((nh - ch) / 2.0))
        left = int(round((nw - cw) / 2.0))
        sx, sy = w / nw, h / nh
        return im.resize((cw, ch), self.resample, box=(left * sx, top * sy, (left + cw) * sx, (top + ch) * sy))

    def __repr__(self) -> str:
        return f"ResizedCenterCrop(size={self.size}, crop={self.crop}, interpolation={self.interpolation.value})"


def _fuse_resize_crop(steps: list[Any]) -> list[Any]:
    """Replace each Resize(shorter side) directly followed by a CenterCrop with a ResizedCenterCrop."""
    out: list[Any] = []
    for step in steps:
        prev = out[-1] if out else None
        if (
            isinstance(step, T.CenterCrop)
            and type(prev) is T.Resize
            and prev.max_size is None
            and _side(prev.size) is not None
        ):
            out[-1] = ResizedCenterCrop(_side(prev.size), tuple(step.size), prev.interpolation)
        else:
            out.append(step)
    return out


def _as_steps(transform: Any) -> tuple[list[Any], T.Normalize] | None:
    """(steps up to the uint8 crop, the final Normalize) of a transform we can split, else None."""
    if isinstance(transform, T.Compose):
        steps = list(transform.transforms)
        if len(steps) < 2 or type(steps[-2]).__name__ not in TO_TENSOR or not isinstance(steps[-1], T.Normalize):
            return None
        return steps[:-2], steps[-1]
    try:  # torchvision's weights presets: resize, centre crop, to float, normalise in one module
        from torchvision.transforms._presets import ImageClassification
    except ImportError:  # pragma: no cover - a torchvision without presets
        return None
    if type(transform) is ImageClassification:
        resize = T.Resize(transform.resize_size, interpolation=transform.interpolation, antialias=transform.antialias)
        return [resize, T.CenterCrop(transform.crop_size)], T.Normalize(transform.mean, transform.std)
    return None


def split_for_batching(
    transform: Callable[[Any], torch.Tensor], channels_last: bool = False
) -> tuple[Callable[[Any], torch.Tensor], NormalizeBatch | None]:
    """(per-image transform, per-batch finisher); the finisher is None when the transform is kept whole.

    The per-image part yields uint8 [H, W, C]; the finisher turns a stack of them into the float
    [B, C, H, W] batch the model takes, in channels-last memory order if `channels_last`.
    """
    parts = _as_steps(transform)
    if parts is None:
        return transform, None
    steps, normalize = parts
    return T.Compose([*_fuse_resize_crop(steps), ToHWCTensor()]), NormalizeBatch(normalize.mean, normalize.std, channels_last)
