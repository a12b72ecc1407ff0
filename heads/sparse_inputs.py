"""One sparse design matrix from the feature blocks, for the linear and nearest-neighbour heads.

The hashing title encoders store binary n-gram presence, L2-normalised, with no inverse document
frequency (they are stateless: no fitted vocabulary). A linear model on those weighs "shirt",
which every second title has, like the brand word that decides a price. So each mostly-zero title
block is re-weighted by the IDF of its columns on the training rows and L2-normalised again
(scikit-learn's TfidfTransformer): the rows become the TF-IDF of the hashed n-grams, what a
notebook baseline uses. Dense embeddings are standardised and divided by sqrt(dim), so every block
has a row norm near 1 and none outweighs another by its width; a columns block keeps its one-hot
slots (1 for the value, an unseen value sets a slot no training row has: no weight) and
standardises its numeric values. Each block adds a missing-indicator column.

Blocks arrive as dense float32 arrays or scipy CSR matrices (hashing and columns families); the
result is CSR when any block is sparse-like, else dense.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfTransformer

from heads.features import Features

SPARSE_ZEROS = 0.5  # a block with more zeros than this share is treated as sparse counts


def _zero_share(m) -> float:
    if sp.issparse(m):
        return 1.0 - m.nnz / max(m.shape[0] * m.shape[1], 1)
    return float((m == 0).mean()) if m.size else 1.0


def _rows(m, idx: np.ndarray):
    return m[idx] if len(idx) else m[:0]


@dataclass
class BlockTransform:
    """How one block becomes columns of the design matrix; fitted on the training rows."""

    encoder_id: str
    kind: str  # tfidf | dense | columns
    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    positions: np.ndarray | None = None  # columns: numeric positions
    tfidf: TfidfTransformer | None = field(default=None, repr=False)

    def apply(self, m, found: np.ndarray):
        if self.kind == "tfidf":
            x = sp.csr_matrix(m, dtype=np.float64)
            if x.shape[0]:
                x = self.tfidf.transform(x)
            return sp.csr_matrix(x.multiply(found[:, None].astype(np.float64)))
        if self.kind == "columns":
            x = sp.csr_matrix(m, dtype=np.float64)
            if len(self.positions):  # the one-hot slots as they are, then the numerics standardised
                num = (x[:, self.positions].toarray() - self.mean) / self.std
                keep = np.setdiff1d(np.arange(x.shape[1]), self.positions)
                x = sp.hstack([x[:, keep], sp.csr_matrix(num)], format="csr")
            return sp.csr_matrix(x.multiply(found[:, None].astype(np.float64)))
        x = np.asarray(m.toarray() if sp.issparse(m) else m, dtype=np.float64)
        z = (x - self.mean) / self.std / np.sqrt(x.shape[1])
        z[~found] = 0.0
        return z


def fit_block(feats: Features, eid: str, train: np.ndarray, is_columns: bool) -> BlockTransform:
    m, f = feats.matrices[eid], feats.found[eid]
    rows = train[f[train]]
    x = _rows(m, rows)
    if is_columns:
        pos = next(b for b in feats.blocks if b.encoder_id == eid).numeric_positions()
        num = (x[:, pos].toarray() if sp.issparse(x) else np.asarray(x)[:, pos]).astype(np.float64)
        mean = num.mean(axis=0) if len(num) else np.zeros(len(pos))
        std = num.std(axis=0) if len(num) else np.ones(len(pos))
        return BlockTransform(eid, "columns", mean, np.where(std > 1e-9, std, 1.0), pos)
    if _zero_share(x) > SPARSE_ZEROS:
        tf = TfidfTransformer(norm="l2", use_idf=True, smooth_idf=True)
        tf.fit(sp.csr_matrix(x, dtype=np.float64) if x.shape[0] else sp.csr_matrix((1, m.shape[1])))
        return BlockTransform(eid, "tfidf", tfidf=tf)
    xd = np.asarray(x.toarray() if sp.issparse(x) else x, dtype=np.float64)
    mean = xd.mean(axis=0) if len(xd) else np.zeros(m.shape[1])
    std = xd.std(axis=0) if len(xd) else np.ones(m.shape[1])
    return BlockTransform(eid, "dense", mean, np.where(std > 1e-9, std, 1.0))


@dataclass
class SparseInputs:
    """The fitted transforms of the blocks a head reads, in order."""

    transforms: list[BlockTransform] = field(default_factory=list)

    @classmethod
    def fit(cls, feats: Features, train: np.ndarray, block_names: list[str] | None = None) -> "SparseInputs":
        blocks = [b for b in feats.blocks if block_names is None or b.name in block_names] or list(feats.blocks)
        return cls([fit_block(feats, b.encoder_id, train, b.input == "columns") for b in blocks])

    @property
    def encoder_ids(self) -> list[str]:
        return [t.encoder_id for t in self.transforms]

    def transform(self, feats: Features, missing: bool = True):
        """The design matrix (CSR if any block is sparse-like, else dense) with missing indicators."""
        parts = [t.apply(feats.matrices[t.encoder_id], feats.found[t.encoder_id]) for t in self.transforms]
        if missing:
            parts.append(np.column_stack([(~feats.found[e]).astype(np.float64) for e in self.encoder_ids]))
        if any(sp.issparse(p) for p in parts):
            return sp.hstack([sp.csr_matrix(p) for p in parts], format="csr")
        return np.hstack(parts)
