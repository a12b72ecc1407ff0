"""Mapper: one batch of model inputs → a float32 NumPy matrix, under torch.inference_mode()."""
from __future__ import annotations

import numpy as np
import torch

from features.encoders.base import Encoder


class Mapper:
    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder

    def __call__(self, inputs) -> np.ndarray:
        with torch.inference_mode():
            out = self.encoder.forward(self.encoder.prepare(inputs))
        return out.detach().to(torch.float32).cpu().numpy()
