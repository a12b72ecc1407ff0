"""The catalog's own columns as a vector: hashed one-hot categoricals and numerics with missing flags.

Brand, gender, colour, number of photos, year: sellers fill these in, and a title rarely repeats
them all. `model` names the columns, `cat=brand,gender;num=num_images;dim=1024`: each categorical
column gets a slice of `dim` slots and its value (stripped, lower-cased; `__missing__` when empty)
sets one of them, by a stable hash of `column=value`, as the hashing title encoder does; each
numeric column gets two slots, its value (NaN → 0) and a missing flag. Hashing keeps the encoder
stateless: a product's vector depends only on its own column values and `model`, so the store
keys it like any other vector (the content hash is over those values: a changed column re-encodes
that product only) and no fitted vocabulary ever goes stale. A value no training row had lands in
a slot no training row set, which the heads treat as the unknown bucket (the MLP gives inputs
constant on its training rows a zero weight). Numerics are stored unscaled; the heads scale them.

The runner's text path carries each product's values as one JSON string (`source`), tokenised here.
"""
from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import torch

from features.encoders.base import Encoder, check_weightless
from features.settings import EncoderSpec

MODEL_PATTERN = re.compile(r"^cat=(?P<cat>[\w,]*);num=(?P<num>[\w,]*);dim=(?P<dim>\d+)$")
MISSING = "__missing__"


@dataclass(frozen=True)
class ColumnLayout:
    categorical: tuple[str, ...]
    numeric: tuple[str, ...]
    dim: int  # slots per categorical column

    @property
    def columns(self) -> tuple[str, ...]:
        return self.categorical + self.numeric

    @property
    def width(self) -> int:
        return self.dim * len(self.categorical) + 2 * len(self.numeric)

    def slots(self, column: str) -> np.ndarray:
        """The vector positions that carry one column (for heads leaving a target column out)."""
        if column in self.categorical:
            k = self.categorical.index(column)
            return np.arange(k * self.dim, (k + 1) * self.dim)
        k = self.numeric.index(column)
        start = self.dim * len(self.categorical) + 2 * k
        return np.arange(start, start + 2)

    def numeric_slots(self) -> np.ndarray:
        """Positions of the numeric values (not their flags), which the heads scale one by one."""
        start = self.dim * len(self.categorical)
        return np.arange(start, start + 2 * len(self.numeric), 2)


def parse_model(model: str) -> ColumnLayout:
    """`cat=brand,gender;num=num_images;dim=1024` → its layout; a clear ValueError otherwise."""
    m = MODEL_PATTERN.match(model)
    if not m:
        raise ValueError(f"columns model {model!r} is not 'cat=<col,...>;num=<col,...>;dim=<slots>', "
                         "e.g. 'cat=brand,gender;num=num_images;dim=1024'")
    cat = tuple(c for c in m.group("cat").split(",") if c)
    num = tuple(c for c in m.group("num").split(",") if c)
    dim = int(m.group("dim"))
    if not cat and not num:
        raise ValueError(f"columns model {model!r} names no column")
    if len(set(cat + num)) != len(cat + num):
        raise ValueError(f"columns model {model!r} names a column twice")
    if cat and dim < 2:
        raise ValueError(f"columns model {model!r}: dim must be at least 2")
    return ColumnLayout(cat, num, dim)


def _text(v) -> str:
    if v is None:
        return MISSING
    s = str(v).strip().lower()
    return s or MISSING


def _number(v) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if np.isfinite(x) else None


def sources(products: pa.Table, layout: ColumnLayout) -> list[str]:
    """Each product's column values as one canonical JSON string (a column the catalog lacks is missing)."""
    n = products.num_rows
    cols = {c: products[c].to_pylist() if c in products.column_names else [None] * n for c in layout.columns}
    out = []
    for i in range(n):
        cat = [_text(cols[c][i]) for c in layout.categorical]
        num = [_number(cols[c][i]) for c in layout.numeric]
        out.append(json.dumps([cat, num], separators=(",", ":"), ensure_ascii=False))
    return out


def content_hashes(srcs: Sequence[str]) -> list[str]:
    return [hashlib.sha256(s.encode()).hexdigest() for s in srcs]


def _slot(column: str, value: str, dim: int) -> int:
    h = hashlib.blake2b(f"{column}={value}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") % dim


def vectors(srcs: Sequence[str], layout: ColumnLayout) -> np.ndarray:
    out = np.zeros((len(srcs), layout.width), dtype=np.float32)
    base = layout.dim * len(layout.categorical)
    for i, s in enumerate(srcs):
        try:
            cat, num = json.loads(s)
        except (ValueError, TypeError):  # not one of ours (e.g. the dimension probe): all missing
            cat, num = [MISSING] * len(layout.categorical), [None] * len(layout.numeric)
        for k, (c, v) in enumerate(zip(layout.categorical, cat)):
            out[i, k * layout.dim + _slot(c, v, layout.dim)] = 1.0
        for k, v in enumerate(num):
            if v is None:
                out[i, base + 2 * k + 1] = 1.0
            else:
                out[i, base + 2 * k] = v
    return out


class ColumnsEncoder(Encoder):
    def __init__(self, encoder_id: str, model: str) -> None:
        self.layout = parse_model(model)
        super().__init__(encoder_id, self.layout.width, "columns")

    def tokenize(self, titles: Sequence[str], pad_to_max: bool = False) -> torch.Tensor:
        return torch.from_numpy(vectors(list(titles), self.layout))

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return batch


def build(spec: EncoderSpec, encoder_id: str) -> Encoder:
    check_weightless(spec, "columns", "columns", "catalog columns")
    return ColumnsEncoder(encoder_id, spec.model)
