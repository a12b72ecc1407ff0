"""Lexical title vectors: hashed word or character n-grams (scikit-learn's HashingVectorizer).

Sentence encoders blur the exact words sellers type for colour, gender, brand or season ("Navy
Blue", "Unisex", "Fall"), and those words decide several targets; a head that also sees them
gets both. Hashing, unlike a fitted TF-IDF vocabulary, is stateless: a title's vector depends
only on the title and on `model`, so incremental encoding and the encoder_id contract hold
exactly as for a neural model, and no refit ever invalidates stored vectors.

`model` is `<analyzer>:<min>-<max>:<dim>[;max_ngrams=<K>]`, e.g. `char_wb:2-4:1048576;max_ngrams=512`.

- Without `max_ngrams` (the first layout, e.g. `word:1-2:4096`): the stored vector is the dense
  `dim`-wide binary presence per hashed n-gram, L2-normalised. Small `dim` collides: Myntra's
  training titles hold 15,051 distinct character 2-4-grams, and in 4,096 slots a ridge on
  them lost 0.006 of test R² on log price (none on validation) against a collision-free vocabulary (BENCHMARKS.md,
  "Hashed title n-grams: slots and collisions").
- With `max_ngrams=K`: the vector stores the slot numbers (plus one; 0 pads) of up to K distinct
  n-grams of the title, over `dim` slots (up to 2**24 - 1, the largest a float32 holds exactly).
  At 2**20 slots 91 of those 15,051 share a slot (a few in a thousand), and a product costs K
  numbers whatever `dim` is; the heads expand them into presence over the n-grams the training
  products hold (heads.features), so their width is that vocabulary, not `dim`. A title with more
  than K distinct n-grams keeps the K with the smallest slot numbers (a fixed subset, as a
  tokenizer truncates at its maximum length); the longest title of Fashion or Myntra has 232
  distinct character 2-4-grams.

No weights, so nothing to download.
"""
from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import torch
from scipy import sparse as sp

from features.encoders.base import Encoder, check_weightless
from features.settings import EncoderSpec

MODEL_PATTERN = re.compile(r"^(word|char|char_wb):(\d+)-(\d+):(\d+)(?:;max_ngrams=(\d+))?$")
MAX_SLOTS = (1 << 24) - 1  # a stored slot number + 1 must be exact in float32


def parse_model(model: str) -> tuple[str, tuple[int, int], int, int | None]:
    """`word:1-2:4096` → ('word', (1, 2), 4096, None); `...;max_ngrams=64` → (..., 64); a clear
    ValueError for anything else."""
    m = MODEL_PATTERN.match(model)
    if not m:
        raise ValueError(
            f"hashing model {model!r} is not '<analyzer>:<min>-<max>:<dim>[;max_ngrams=<K>]' "
            "(analyzer word, char or char_wb), e.g. 'word:1-2:4096' or 'char_wb:2-4:1048576;max_ngrams=512'"
        )
    analyzer, lo, hi, dim = m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4))
    keep = int(m.group(5)) if m.group(5) else None
    if not 1 <= lo <= hi or dim < 2:
        raise ValueError(f"hashing model {model!r}: need 1 <= min <= max n-gram and dim >= 2")
    if keep is not None and not (1 <= keep and dim <= MAX_SLOTS):
        raise ValueError(f"hashing model {model!r}: with max_ngrams, need max_ngrams >= 1 and dim <= {MAX_SLOTS}")
    return analyzer, (lo, hi), dim, keep


def model_of(encoder_id: str) -> str:
    """The model part of a hashing encoder id (`hashing:<model>:<weights>:<input>`; the model has colons)."""
    return ":".join(encoder_id.split(":")[1:-2])


def stores_slots(encoder_id: str) -> bool:
    """Whether a hashing encoder id stores slot numbers (`max_ngrams`) rather than dense presence."""
    return encoder_id.startswith("hashing:") and parse_model(model_of(encoder_id))[3] is not None


def slot_rows(x, keep: int) -> np.ndarray:
    """CSR presence rows → (n, keep) float32: each row's slot numbers + 1, ascending, 0-padded."""
    x = sp.csr_matrix(x, copy=True)
    x.sort_indices()
    per_row = np.diff(x.indptr)
    rows = np.repeat(np.arange(x.shape[0]), per_row)
    place = np.arange(x.nnz) - np.repeat(x.indptr[:-1], per_row)  # rank of the slot within its row
    kept = place < keep
    out = np.zeros((x.shape[0], keep), dtype=np.float32)
    out[rows[kept], place[kept]] = x.indices[kept] + 1
    return out


class HashingEncoder(Encoder):
    """Titles → float32 rows of a HashingVectorizer (dense, or slot numbers); `forward` only hands them on."""

    def __init__(self, encoder_id: str, model: str) -> None:
        from sklearn.feature_extraction.text import HashingVectorizer

        analyzer, ngrams, dim, keep = parse_model(model)
        super().__init__(encoder_id, dim if keep is None else keep, "title")
        self.keep = keep
        self.vectorizer = HashingVectorizer(
            analyzer=analyzer, ngram_range=ngrams, n_features=dim,
            binary=True, alternate_sign=False, norm="l2", dtype=np.float32,
        )

    def tokenize(self, titles: Sequence[str], pad_to_max: bool = False) -> torch.Tensor:
        x = self.vectorizer.transform(list(titles))
        if self.keep is None:
            return torch.from_numpy(x.toarray())
        return torch.from_numpy(slot_rows(x.tocsr(), self.keep))

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return batch


def build(spec: EncoderSpec, encoder_id: str) -> Encoder:
    check_weightless(spec, "hashing", "title", "titles")
    return HashingEncoder(encoder_id, spec.model)
