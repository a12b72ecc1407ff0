"""The catalog's own columns as a vector: hashed categorical values and numerics with missing flags.

Brand, gender, colour, number of photos, year: sellers fill these in, and a title rarely repeats
them all. `model` names the columns, `cat=brand,gender;num=num_images` (optionally `;slots=N`).
Each categorical value (stripped, lower-cased; `__missing__` when empty) is hashed, by a stable
hash of `column=value`, to one of `slots` (default and largest 2**24) and the vector stores that
slot number; each numeric column stores two numbers, its value (NaN → 0) and a missing flag. So a
product's vector is a handful of numbers (one per column, two per numeric), not a one-hot.

Why not the one-hot: a one-hot must fit its slots into the stored width, and at 2,048 slots a
column 87 of the 624 values Myntra's training rows hold (582 brands, genders, colours, photo counts)
shared a slot with another: brands of different prices shared one input,
and a ridge on title n-grams and the columns lost 0.008 of validation R² on log price (0.005 on
test) against an exact one-hot (measured: BENCHMARKS.md, "Catalog columns: hashed slots and collisions"). With 2**24
slots, collisions are rare (about n²/2**25 for n values: 3 among 10,000 brands). The heads expand
the slot numbers into a one-hot over the values their training rows hold (heads.features), so
their width is the number of distinct values, whatever `slots` is.

Hashing keeps the encoder stateless: a product's vector depends only on its own column values and
`model`, so the store keys it like any other vector (the content hash is over those values: a
changed column re-encodes that product only) and no fitted vocabulary ever goes stale in the
store. A value no training row had gets no input in a trained model: the unknown bucket, which the
heads treat as "none of the known values". Numerics are stored unscaled; the heads scale them.

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

MODEL_PATTERN = re.compile(r"^cat=(?P<cat>[\w,]*);num=(?P<num>[\w,]*)(?:;slots=(?P<slots>\d+))?$")
MISSING = "__missing__"
MAX_SLOTS = 1 << 24  # a slot number is stored as float32, exact up to 2**24


@dataclass(frozen=True)
class ColumnLayout:
    categorical: tuple[str, ...]
    numeric: tuple[str, ...]
    slots: int = MAX_SLOTS  # hash slots per categorical column

    @property
    def columns(self) -> tuple[str, ...]:
        return self.categorical + self.numeric

    @property
    def width(self) -> int:
        """Numbers stored per product: a slot per categorical column, value and flag per numeric one."""
        return len(self.categorical) + 2 * len(self.numeric)

    def column_codes(self, column: str) -> tuple[int, int]:
        """The [start, stop) range of one column in the expanded one-hot space (see `codes`)."""
        if column in self.categorical:
            k = self.categorical.index(column)
            return k * self.slots, (k + 1) * self.slots
        start = self.slots * len(self.categorical) + 2 * self.numeric.index(column)
        return start, start + 2

    def numeric_codes(self) -> np.ndarray:
        """Codes of the numeric values (not their flags), which the heads scale one by one."""
        start = self.slots * len(self.categorical)
        return np.arange(start, start + 2 * len(self.numeric), 2, dtype=np.int64)


def parse_model(model: str) -> ColumnLayout:
    """`cat=brand,gender;num=num_images[;slots=N]` → its layout; a clear ValueError otherwise."""
    if re.search(r";dim=\d+$", model or ""):
        raise ValueError(f"columns model {model!r}: `dim=` named the one-hot width of an earlier layout, whose "
                         "hash slots collided (brands of different prices shared an input); drop it (slots "
                         f"default to {MAX_SLOTS}) or write `slots=<N>`, and run `vitrine encode` again")
    m = MODEL_PATTERN.match(model)
    if not m:
        raise ValueError(f"columns model {model!r} is not 'cat=<col,...>;num=<col,...>[;slots=<N>]', "
                         "e.g. 'cat=brand,gender;num=num_images'")
    cat = tuple(c for c in m.group("cat").split(",") if c)
    num = tuple(c for c in m.group("num").split(",") if c)
    slots = int(m.group("slots")) if m.group("slots") else MAX_SLOTS
    if not cat and not num:
        raise ValueError(f"columns model {model!r} names no column")
    if len(set(cat + num)) != len(cat + num):
        raise ValueError(f"columns model {model!r} names a column twice")
    if cat and not 2 <= slots <= MAX_SLOTS:
        raise ValueError(f"columns model {model!r}: slots must be between 2 and {MAX_SLOTS}")
    return ColumnLayout(cat, num, slots)


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
    """The stored numbers: per categorical column its value's slot, per numeric column (value, missing flag)."""
    out = np.zeros((len(srcs), layout.width), dtype=np.float32)
    base = len(layout.categorical)
    for i, s in enumerate(srcs):
        try:
            cat, num = json.loads(s)
        except (ValueError, TypeError):  # not one of ours (e.g. the dimension probe): all missing
            cat, num = [MISSING] * len(layout.categorical), [None] * len(layout.numeric)
        for k, (c, v) in enumerate(zip(layout.categorical, cat)):
            out[i, k] = _slot(c, v, layout.slots)
        for k, v in enumerate(num):
            if v is None:
                out[i, base + 2 * k + 1] = 1.0
            else:
                out[i, base + 2 * k] = v
    return out


def codes(stored: np.ndarray, layout: ColumnLayout) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stored vectors as (row, code, value) triplets of their one-hot expansion.

    Code of categorical column k's slot s: k * slots + s; of numeric column j: slots * (number of
    categorical columns) + 2j for its value, + 1 for its missing flag. Zero numerics are left out.
    """
    n, c = stored.shape[0], len(layout.categorical)
    rows, out_codes, vals = [], [], []
    if c:
        rows.append(np.repeat(np.arange(n), c))
        out_codes.append((np.arange(c, dtype=np.int64) * layout.slots + stored[:, :c].astype(np.int64)).reshape(-1))
        vals.append(np.ones(n * c, dtype=np.float32))
    if layout.numeric:
        num = stored[:, c:].astype(np.float32)
        r, j = np.nonzero(num)
        rows.append(r)
        out_codes.append(layout.slots * c + j.astype(np.int64))
        vals.append(num[r, j])
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    return np.concatenate(rows), np.concatenate(out_codes), np.concatenate(vals)


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
