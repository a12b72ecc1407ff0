"""Encoding precision: bf16 where the CPU computes it natively, and never vectors fp32 would not give.

CPUs with AVX-512 BF16 or AMX run a CNN's convolutions and a transformer's matmuls in bfloat16
much faster than in float32. bf16 vectors are not bit-identical to fp32 ones, so they may share
an encoder id (and be mixed in one store, one head) only if they are close enough: every run in
bf16 encodes its first batch both ways and compares them: the mean cosine of its vectors to their
fp32 twins (drift of the whole space) and the lowest (one photo gone astray). Below either bound,
`auto` falls back to fp32 for that run and says so; an explicit `bf16` stops with a message. So a
change of precision never puts incomparable vectors under one id, and the id need not carry it.

`auto` takes bf16 for image encoders only. A title transformer on short, dynamically padded
batches ran slower under autocast on this machine's CPU (MiniLM at batch 32: bf16 0.83x the
fp32 rate end to end, 0.66x bare; BENCHMARKS.md, Encoding: MiniLM only), where a CNN ran 1.3x faster.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Literal

import numpy as np
import torch

from warehouse.errors import VitrineError

Precision = Literal["fp32", "bf16"]


class PrecisionMismatch(VitrineError):
    """bf16 vectors of an encoder differ from its fp32 ones beyond the configured tolerance."""


def native_bf16() -> bool:
    """Whether this CPU has bf16 arithmetic in hardware (AVX-512 BF16 or AMX tiles)."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


def resolve(setting: str, input_kind: str = "image") -> Precision:
    """The precision a run uses: `auto` is bf16 for an image encoder where the CPU has native bf16,
    else fp32 (titles: see the module's docstring)."""
    if setting == "auto":
        return "bf16" if input_kind == "image" and native_bf16() else "fp32"
    if setting not in ("fp32", "bf16"):
        raise ValueError(f"unknown precision {setting!r}: use fp32, bf16 or auto")
    return setting  # type: ignore[return-value]


@contextlib.contextmanager
def autocast(precision: Precision) -> Iterator[None]:
    """torch's CPU autocast to bfloat16 for bf16; nothing for fp32."""
    if precision == "bf16":
        with torch.autocast("cpu", dtype=torch.bfloat16):
            yield
    else:
        yield


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two [n, d] matrices (1.0 for two zero rows)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    both_zero = (na == 0) & (nb == 0)
    cos = np.einsum("ij,ij->i", a, b) / np.maximum(na * nb, np.finfo(np.float64).tiny)
    cos[both_zero] = 1.0
    return cos
