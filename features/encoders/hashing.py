"""Lexical title vectors: hashed word or character n-grams (scikit-learn's HashingVectorizer).

Sentence encoders blur the exact words sellers type for colour, gender, brand or season ("Navy
Blue", "Unisex", "Fall"), and those words decide several targets; a head that also sees them
gets both. Hashing, unlike a fitted TF-IDF vocabulary, is stateless: a title's vector depends
only on the title and on `model`, so incremental encoding and the encoder_id contract hold
exactly as for a neural model, and no refit ever invalidates stored vectors.

`model` is `<analyzer>:<min>-<max>:<dim>`, e.g. `word:1-2:4096` or `char_wb:2-4:4096`: token
presence (binary) per hashed n-gram, L2-normalised. No weights, so nothing to download.
"""
from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import torch

from features.encoders.base import Encoder, check_weightless
from features.settings import EncoderSpec

MODEL_PATTERN = re.compile(r"^(word|char|char_wb):(\d+)-(\d+):(\d+)$")


def parse_model(model: str) -> tuple[str, tuple[int, int], int]:
    """`word:1-2:4096` → ('word', (1, 2), 4096); a clear ValueError for anything else."""
    m = MODEL_PATTERN.match(model)
    if not m:
        raise ValueError(
            f"hashing model {model!r} is not '<analyzer>:<min>-<max>:<dim>' "
            "(analyzer word, char or char_wb), e.g. 'word:1-2:4096'"
        )
    analyzer, lo, hi, dim = m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4))
    if not 1 <= lo <= hi or dim < 2:
        raise ValueError(f"hashing model {model!r}: need 1 <= min <= max n-gram and dim >= 2")
    return analyzer, (lo, hi), dim


class HashingEncoder(Encoder):
    """Titles → dense float32 rows of a HashingVectorizer; `forward` only hands them on."""

    def __init__(self, encoder_id: str, model: str) -> None:
        from sklearn.feature_extraction.text import HashingVectorizer

        analyzer, ngrams, dim = parse_model(model)
        super().__init__(encoder_id, dim, "title")
        self.vectorizer = HashingVectorizer(
            analyzer=analyzer, ngram_range=ngrams, n_features=dim,
            binary=True, alternate_sign=False, norm="l2", dtype=np.float32,
        )

    def tokenize(self, titles: Sequence[str], pad_to_max: bool = False) -> torch.Tensor:
        return torch.from_numpy(self.vectorizer.transform(list(titles)).toarray())

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return batch


def build(spec: EncoderSpec, encoder_id: str) -> Encoder:
    check_weightless(spec, "hashing", "title", "titles")
    return HashingEncoder(encoder_id, spec.model)
