"""Colour from the photo: a histogram of the product's pixels in HSV, no weights, a few dozen numbers.

ImageNet features pooled over the whole photo are trained to ignore colour (it rarely decides an
ImageNet class), so base_colour is read off the title or not at all. This family counts colours
instead. The product region is the pixels that are not near-white background (the studio shots
of fashion catalogs); if fewer than 5% of pixels are left, all of them count. HSV is Pillow's own
conversion: hue is what a shopper calls the colour, and it is only meaningful for saturated
pixels, so those fall into hue × saturation × value bins while low-saturation pixels (black, grey,
white, beige) fall into value-only bins. The histogram is normalised to sum 1; the last three
numbers are the region's share of the photo and its mean saturation and value.

`model` is `hsv:<hue bins>x<saturation bins>x<value bins>+<grey bins>`, e.g. `hsv:12x3x3+4`.
Computed in the reader's workers (preprocess), so `forward` hands the rows on.
"""
from __future__ import annotations

import re
from functools import partial

import numpy as np
import torch
from PIL import Image

from features.encoders.base import Encoder, check_weightless
from features.settings import EncoderSpec

MODEL_PATTERN = re.compile(r"^hsv:(\d+)x(\d+)x(\d+)\+(\d+)$")
SIDE = 64  # pixels of the longer side the histogram is taken on: colour needs no detail
BACKGROUND = (0.06, 0.94)  # saturation below and value above: near-white background
GREY = 0.2  # saturation under which hue is noise


def parse_model(model: str) -> tuple[int, int, int, int]:
    m = MODEL_PATTERN.match(model)
    if not m:
        raise ValueError(f"colour model {model!r} is not 'hsv:<h>x<s>x<v>+<grey>', e.g. 'hsv:12x3x3+4'")
    bins = tuple(int(g) for g in m.groups())
    if min(bins) < 1:
        raise ValueError(f"colour model {model!r}: every bin count must be at least 1")
    return bins  # type: ignore[return-value]


def histogram(img: Image.Image, bins: tuple[int, int, int, int]) -> np.ndarray:
    """The colour vector of one photo (see the module docstring)."""
    hb, sb, vb, gb = bins
    img = img.convert("RGB")
    img.thumbnail((SIDE, SIDE), Image.Resampling.NEAREST)  # no blended edge pixels: colours stay as shot
    hsv = np.asarray(img.convert("HSV"), dtype=np.float32).reshape(-1, 3) / 255.0
    h, s, v = hsv[:, 0], hsv[:, 1], hsv[:, 2]
    region = ~((s < BACKGROUND[0]) & (v > BACKGROUND[1]))
    share = float(region.mean()) if len(region) else 0.0
    if region.sum() < 0.05 * len(region):
        region = np.ones_like(region)
    h, s, v = h[region], s[region], v[region]
    colourful = s >= GREY
    hi = np.minimum((h[colourful] * hb).astype(int), hb - 1)
    si = np.minimum(((s[colourful] - GREY) / (1 - GREY) * sb).astype(int), sb - 1)
    vi = np.minimum((v[colourful] * vb).astype(int), vb - 1)
    chroma = np.bincount((hi * sb + si) * vb + vi, minlength=hb * sb * vb)
    grey = np.bincount(np.minimum((v[~colourful] * gb).astype(int), gb - 1), minlength=gb)
    counts = np.concatenate([chroma, grey]).astype(np.float32)
    counts /= max(counts.sum(), 1.0)
    extra = np.array([share, s.mean() if len(s) else 0.0, v.mean() if len(v) else 0.0], dtype=np.float32)
    return np.concatenate([counts, extra])


def colour_tensor(img: Image.Image, bins: tuple[int, int, int, int]) -> torch.Tensor:
    return torch.from_numpy(histogram(img, bins))


class ColourEncoder(Encoder):
    def __init__(self, encoder_id: str, model: str) -> None:
        self.bins = parse_model(model)
        hb, sb, vb, gb = self.bins
        super().__init__(encoder_id, hb * sb * vb + gb + 3, "image")

    @property
    def preprocess(self):
        return partial(colour_tensor, bins=self.bins)  # picklable, for the reader's worker processes

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return batch.float()


def build(spec: EncoderSpec, encoder_id: str) -> Encoder:
    check_weightless(spec, "colour", "image", "photos")
    return ColourEncoder(encoder_id, spec.model)
