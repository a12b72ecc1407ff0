"""Mapper: one batch of model inputs → a float32 NumPy matrix, under torch.inference_mode().

In bf16 the forward pass runs under CPU autocast; the vectors handed on are float32 either way.
"""
from __future__ import annotations

import numpy as np
import torch

from features.encoders.base import Encoder
from features.precision import Precision, autocast, cosines


class Mapper:
    def __init__(self, encoder: Encoder, precision: Precision = "fp32") -> None:
        self.encoder = encoder
        self.precision: Precision = precision

    def run(self, inputs, precision: Precision) -> np.ndarray:
        with torch.inference_mode(), autocast(precision):
            out = self.encoder.forward(self.encoder.prepare(inputs))
        return out.detach().to(torch.float32).cpu().numpy()

    def __call__(self, inputs) -> np.ndarray:
        return self.run(inputs, self.precision)

    def agreement(self, inputs) -> tuple[np.ndarray, np.ndarray]:
        """This batch's vectors in the mapper's precision, and each one's cosine to its fp32 twin."""
        vectors = self(inputs)
        if self.precision == "fp32":
            return vectors, np.ones(len(vectors))
        return vectors, cosines(vectors, self.run(inputs, "fp32"))
