"""Assemble the feature inputs of a head: one vector block per encoder id, plus which rows have it.

Heads never read files themselves: vectors come in bulk from the embedding store
(`EmbeddingStore.read_matrix`), matched on the product's *current* content hash of the encoder's
input (image bytes or title text), so a stale vector is treated as missing rather than mixed in.
A product missing a modality keeps a zero block and a False in `found`; each head turns `found`
into a missing-indicator input, so it knows the difference between "absent" and "zero".

Blocks of the hashing and columns families are held as scipy CSR matrices (`Block.is_sparse`):
two 4096-d hashed title encoders are 32 KB a product as dense float32 (32 GB at a million
products) but a few hundred bytes as non-zeros. Heads densify the rows of one batch at a time
(`dense_rows`), so a sparse and a dense copy of the same block give the same numbers.

Two families store codes, not the vector a head reads: the columns encoder stores each value's
slot, a hashing encoder with `max_ngrams` the slots of a title's n-grams, over millions of slots
so that nothing collides. A model reads them as presence over a vocabulary of codes (`Block.codes`)
fixed when it is trained: for columns every value of the rows read, for hashed n-grams those at
least `min_df` of the rows read hold (at most `max_codes`, the most frequent). The rows read are
the training products, labels unread, as a TF-IDF vectorizer is fitted on the corpus; a code only
held-out rows have gets a column no training row sets, which every head gives no weight.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pyarrow as pa

from scipy import sparse as sp

from features.identity import encoder_id as make_encoder_id
from features.store import HASH_COLUMN, EmbeddingStore
from heads.settings import TrainSettings
from warehouse.layout import Warehouse
from warehouse.errors import VitrineError


class FeatureMismatch(VitrineError, ValueError):
    """Features come from encoder ids or dimensions the model was not trained on."""


SPARSE_FAMILIES = ("hashing", "columns")  # encoder families whose vectors are mostly zeros
Matrix = np.ndarray | sp.csr_matrix


def dense_rows(m: Matrix, rows: np.ndarray | None = None) -> np.ndarray:
    """The rows `rows` (None: all) of a dense or CSR block, as dense float32: what a head computes on."""
    if sp.issparse(m):
        return np.asarray((m if rows is None else m[rows]).toarray(), dtype=np.float32)
    return m if rows is None else m[rows]


def row_chunks(n: int, size: int):
    """Consecutive row ranges of at most `size` rows (bounded memory for whole-block passes)."""
    for start in range(0, n, max(size, 1)):
        yield np.arange(start, min(start + size, n))


@dataclass(frozen=True)
class Block:
    """One encoder's slot in the feature vector: its id, its input kind and its dimension.

    `exclude`: columns of a columns encoder the heads do not see (they are targets of the model).
    `codes`: the codes the model reads, in order: for a columns encoder the one-hot codes
    (features.encoders.columns.codes) of the values its training rows hold and every numeric
    column; for a hashing encoder that stores slots, the n-gram slots of its vocabulary. Unset
    before training; `read_features` fills it from the rows it reads. `dim` is then len(codes).
    """

    name: str
    encoder_id: str
    input: str
    dim: int | None = None
    exclude: tuple[str, ...] = ()
    codes: tuple[int, ...] | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["exclude"] = list(self.exclude)
        d["codes"] = None if self.codes is None else list(self.codes)
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> "Block":
        codes = d.get("codes")
        return cls(name=d["name"], encoder_id=d["encoder_id"], input=d["input"], dim=d.get("dim"),
                   exclude=tuple(d.get("exclude") or ()), codes=None if codes is None else tuple(int(c) for c in codes))

    @property
    def is_sparse(self) -> bool:
        """Read as CSR: the hashing and columns families (hashed n-grams, one-hots) are mostly zeros."""
        return self.encoder_id.split(":", 1)[0] in SPARSE_FAMILIES

    @property
    def stores_slots(self) -> bool:
        """A hashing encoder storing its n-grams' slot numbers (`max_ngrams`), read through a vocabulary."""
        from features.encoders.hashing import stores_slots

        return stores_slots(self.encoder_id)

    def layout(self):
        """The column layout of a columns encoder (its model is the second part of the encoder id)."""
        from features.encoders.columns import parse_model

        return parse_model(self.encoder_id.split(":")[1])

    def numeric_positions(self) -> np.ndarray:
        """Positions, in what the heads see, of a columns encoder's numeric values (scaled one by one)."""
        if self.input != "columns" or self.codes is None:
            return np.zeros(0, dtype=np.int64)
        return np.flatnonzero(np.isin(np.asarray(self.codes, dtype=np.int64), self.layout().numeric_codes()))


def column_vocabulary(layout, codes: np.ndarray, exclude: Sequence[str]) -> np.ndarray:
    """The one-hot codes a model reads: every categorical value present and every numeric value and flag,
    without the excluded (target) columns; sorted."""
    num = [np.arange(*layout.column_codes(c), dtype=np.int64) for c in layout.numeric]
    keep = np.unique(np.concatenate([np.asarray(codes, dtype=np.int64), *num]))
    for c in exclude:
        lo, hi = layout.column_codes(c)
        keep = keep[(keep < lo) | (keep >= hi)]
    return keep


def read_columns(store: EmbeddingStore, ids: Sequence[str], hashes: Sequence[str | None], b: Block,
                 sparse: bool) -> tuple[Matrix, np.ndarray, Block]:
    """A columns block: the stored slot numbers expanded into a one-hot over the block's codes
    (the values of the rows read, when the block has none yet: training)."""
    from features.encoders import columns

    lay = b.layout()
    if store.dim is not None and store.dim != lay.width:
        raise FeatureMismatch(f"encoder {b.encoder_id!r} stores {store.dim} numbers per product, its layout has "
                              f"{lay.width}: vectors of an earlier layout; run `vitrine encode` again")
    n = len(ids)
    if store.dim is None:
        m, f = np.zeros((n, lay.width), dtype=np.float32), np.zeros(n, dtype=bool)
    else:
        m, f = store.read_matrix(ids, hashes)
    rows, code, vals = columns.codes(m[f], lay)
    rows = np.flatnonzero(f)[rows]
    vocab = np.asarray(b.codes, dtype=np.int64) if b.codes is not None else column_vocabulary(lay, code, b.exclude)
    pos, hit = vocab_positions(vocab, code)  # a value the model never saw has no input: the unknown bucket
    x = sp.csr_matrix((vals[hit], (rows[hit], pos[hit])), shape=(n, len(vocab)), dtype=np.float32)
    block = b if b.codes is not None else Block(b.name, b.encoder_id, b.input, len(vocab), b.exclude,
                                                 tuple(int(c) for c in vocab))
    return (x if sparse else x.toarray()), f, block


def vocab_positions(vocab: np.ndarray, code: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each code's column in a sorted vocabulary, and whether the vocabulary has it at all: codes
    outside it (values or n-grams training never saw) must get no input rather than a neighbour's."""
    pos = np.searchsorted(vocab, code)
    hit = pos < len(vocab)
    hit[hit] = vocab[pos[hit]] == code[hit]
    return pos, hit


def slot_vocabulary(code: np.ndarray, min_df: int, max_codes: int) -> np.ndarray:
    """The n-gram slots at least `min_df` rows hold, at most `max_codes` of them (the most frequent;
    ties: the smaller slot), sorted. `code`: every stored (row, slot) pair's slot; a row stores a
    slot once, so a slot's count is its number of rows."""
    uniq, df = np.unique(code, return_counts=True)
    keep = df >= max(min_df, 1)
    uniq, df = uniq[keep], df[keep]
    if len(uniq) > max_codes:
        uniq = np.sort(uniq[np.argsort(-df, kind="stable")[:max_codes]])
    return uniq


def read_slots(store: EmbeddingStore, ids: Sequence[str], hashes: Sequence[str | None], b: Block, sparse: bool,
               min_df: int, max_codes: int) -> tuple[Matrix, np.ndarray, Block]:
    """A hashing block stored as slot numbers: binary presence over the block's vocabulary, each row
    L2-normalised over all its n-grams (the numbers the dense layout holds, without its collisions)."""
    from features.encoders.hashing import model_of, parse_model

    keep = parse_model(model_of(b.encoder_id))[3]
    if store.dim is not None and store.dim != keep:
        raise FeatureMismatch(f"encoder {b.encoder_id!r} stores {store.dim} numbers per product, its model keeps "
                              f"{keep} n-grams: vectors of another layout; run `vitrine encode` again")
    n = len(ids)
    if store.dim is None:
        m, f = sp.csr_matrix((n, keep), dtype=np.float32), np.zeros(n, dtype=bool)
    else:
        m, f = store.read_matrix(ids, hashes, sparse=True)
    x, vocab = slot_presence(m, None if b.codes is None else np.asarray(b.codes, dtype=np.int64), min_df, max_codes)
    block = b if b.codes is not None else Block(b.name, b.encoder_id, b.input, len(vocab), b.exclude,
                                                 tuple(int(c) for c in vocab))
    return (x if sparse else x.toarray()), f, block


def slot_presence(stored, vocab: np.ndarray | None, min_df: int, max_codes: int) -> tuple[sp.csr_matrix, np.ndarray]:
    """Stored slot rows (slot + 1 per n-gram, 0 pads; dense or CSR) → (presence over `vocab`, each row
    L2-normalised over all its n-grams, and `vocab`); `vocab` None: `slot_vocabulary` of these rows."""
    m = sp.csr_matrix(stored, dtype=np.float32)
    m.eliminate_zeros()
    n = m.shape[0]
    per_row = np.diff(m.indptr)
    rows = np.repeat(np.arange(n), per_row)
    code = np.rint(m.data).astype(np.int64) - 1
    vals = (1.0 / np.sqrt(np.maximum(per_row, 1))).astype(np.float32)[rows]
    if vocab is None:
        vocab = slot_vocabulary(code, min_df, max_codes)
    pos, hit = vocab_positions(vocab, code)
    return sp.csr_matrix((vals[hit], (rows[hit], pos[hit])), shape=(n, len(vocab)), dtype=np.float32), vocab


def without_targets(blocks: Sequence[Block], targets: Sequence[str]) -> tuple[list[Block], list[str]]:
    """Columns blocks with the model's target columns left out: a column is never both input and target."""
    out, notes = [], []
    for b in blocks:
        if b.input == "columns":
            hit = tuple(c for c in b.layout().columns if c in set(targets))
            if hit:
                notes.append(f"features {b.name}: column(s) {', '.join(hit)} left out, they are targets of this model")
                b = Block(b.name, b.encoder_id, b.input, b.dim, hit, b.codes)
        out.append(b)
    return out, notes


def input_hashes(products: pa.Table, block: Block) -> list[str | None]:
    """Each product's content hash of the block's input: the one its stored vector is keyed by."""
    if block.input == "columns":
        from features.encoders import columns

        return columns.content_hashes(columns.sources(products, block.layout()))
    return products[HASH_COLUMN[block.input]].to_pylist()


def product_columns(blocks: Sequence[Block]) -> list[str]:
    """The catalog columns the blocks' inputs are made of (beyond product_id and the *_sha256 hashes)."""
    return list(dict.fromkeys(c for b in blocks if b.input == "columns" for c in b.layout().columns))


@dataclass
class Features:
    """Per-encoder matrices aligned to `product_ids`; missing rows are zeros with found=False.

    A matrix is dense float32 or, for a sparse block, scipy CSR float32 (see `dense_rows`).
    """

    product_ids: list[str]
    blocks: list[Block]
    matrices: dict[str, Matrix]
    found: dict[str, np.ndarray]

    @property
    def n(self) -> int:
        return len(self.product_ids)

    def take(self, idx: np.ndarray) -> "Features":
        """The rows `idx`, e.g. one split."""
        return Features(
            [self.product_ids[i] for i in idx],
            self.blocks,
            {k: v[idx] for k, v in self.matrices.items()},
            {k: v[idx] for k, v in self.found.items()},
        )

    def any_found(self) -> np.ndarray:
        out = np.zeros(self.n, dtype=bool)
        for m in self.found.values():
            out |= m
        return out


def blocks_from_settings(settings, names: Sequence[str] | None = None) -> list[Block]:
    """The feature blocks named by `settings.train.features` (or `names`), dims not yet known."""
    names = list(names) if names is not None else list(settings.train.features)
    out = []
    for name in names:
        if name not in settings.encoders:
            raise KeyError(f"feature {name!r} is not a configured encoder ({sorted(settings.encoders)})")
        spec = settings.encoders[name]
        out.append(Block(name=name, encoder_id=make_encoder_id(spec), input=spec.input))
    return out


def has_input(products: pa.Table, kind: str) -> np.ndarray:
    """Which products have this input at all: a readable photo (image_status 'ok'), a title hash."""
    import pyarrow.compute as pc

    if kind == "image":
        if "image_status" not in products.column_names:
            return products[HASH_COLUMN["image"]].is_valid().to_numpy(zero_copy_only=False)
        return pc.equal(products["image_status"], "ok").fill_null(False).to_numpy(zero_copy_only=False)
    return products[HASH_COLUMN[kind]].is_valid().to_numpy(zero_copy_only=False)


def blocks_with_inputs(wh: Warehouse, products: pa.Table, blocks: Sequence[Block]) -> tuple[list[Block], list[str]]:
    """The blocks worth training on, and one message per block left out.

    A block whose encoder stored nothing because no product has its input (a catalog without
    photos, trained with a config that lists an image encoder) is left out with a message; one
    whose products do have the input but whose store is empty is kept, so `read_features` still
    says to run `vitrine encode`. If every block would be left out, training cannot go on.
    """
    kept, notes = [], []
    for b in blocks:
        if b.input in HASH_COLUMN and EmbeddingStore(wh, b.encoder_id).dim is None and not has_input(products, b.input).any():
            notes.append(f"features {b.name}: left out, no product has an {b.input} input for encoder {b.encoder_id!r}")
            continue
        kept.append(b)
    if not kept:
        names = ", ".join(f"{b.name} ({b.input})" for b in blocks)
        raise FeatureMismatch(f"no product has the input of any training feature: {names}")
    return kept, notes


def read_features(wh: Warehouse, products: pa.Table, blocks: Sequence[Block], require_vectors: bool = True,
                  sparse: bool = True, min_df: int | None = None, max_codes: int | None = None) -> Features:
    """Bulk-read every block's vectors for the products (columns product_id + *_sha256).

    Blocks with a known `dim` (a trained model's) refuse a store holding another dimension.
    `sparse`: sparse blocks come back as CSR (False: every block dense, as before CSR existed).
    `min_df`, `max_codes`: the vocabulary of a hashing block stored as slots, when it has none yet
    (training; see the module docstring); None: the `train.ngram_*` defaults.
    """
    fields = TrainSettings.model_fields
    min_df = fields["ngram_min_df"].default if min_df is None else min_df
    max_codes = fields["ngram_max_codes"].default if max_codes is None else max_codes
    ids = products["product_id"].to_pylist()
    mats: dict[str, np.ndarray] = {}
    found: dict[str, np.ndarray] = {}
    resolved: list[Block] = []
    for b in blocks:
        if b.input not in HASH_COLUMN and b.input != "columns":
            raise ValueError(f"encoder {b.encoder_id!r} has unknown input {b.input!r}")
        store = EmbeddingStore(wh, b.encoder_id)
        coded = b.input == "columns" or b.stores_slots
        if store.dim is None and (b.codes if coded else b.dim) is None:
            if require_vectors:
                raise FeatureMismatch(f"no vectors stored for encoder {b.encoder_id!r} ({b.name}); run `vitrine encode` first")
            if not coded:
                raise FeatureMismatch(f"encoder {b.encoder_id!r} has no vectors and no known dimension")
        if coded:
            hashes = input_hashes(products, b)
            mats[b.encoder_id], found[b.encoder_id], done = (
                read_columns(store, ids, hashes, b, sparse) if b.input == "columns"
                else read_slots(store, ids, hashes, b, sparse, min_df, max_codes))
            resolved.append(done)
            continue
        if store.dim is None:
            mats[b.encoder_id] = (sp.csr_matrix((len(ids), b.dim), dtype=np.float32) if sparse and b.is_sparse
                                  else np.zeros((len(ids), b.dim), dtype=np.float32))
            found[b.encoder_id] = np.zeros(len(ids), dtype=bool)
            resolved.append(b)
            continue
        seen = int(store.dim)
        if b.dim is not None and seen != b.dim:
            raise FeatureMismatch(
                f"encoder {b.encoder_id!r} stores {store.dim}-d vectors but the model was trained on {b.dim}-d ones"
            )
        m, f = store.read_matrix(ids, input_hashes(products, b), sparse=sparse and b.is_sparse)
        mats[b.encoder_id], found[b.encoder_id] = m, f
        resolved.append(Block(b.name, b.encoder_id, b.input, seen, b.exclude))
    return Features(ids, resolved, mats, found)


def check_features(features: Features, trained: Sequence[Block]) -> None:
    """Refuse features whose encoder ids or dimensions differ from the trained ones."""
    want = {b.encoder_id: b.dim for b in trained}
    have = {eid: m.shape[1] for eid, m in features.matrices.items()}
    unknown = sorted(set(have) - set(want))
    if unknown:
        raise FeatureMismatch(f"model was not trained on encoder ids {unknown}; it expects {sorted(want)}")
    absent = sorted(set(want) - set(have))
    if absent:
        raise FeatureMismatch(f"features lack encoder ids {absent} that the model was trained on")
    for eid, d in want.items():
        if have[eid] != d:
            raise FeatureMismatch(f"encoder {eid!r}: model was trained on {d}-d vectors, got {have[eid]}-d")


def from_arrays(product_ids: Sequence[str], blocks: Sequence[Block], arrays: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> Features:
    """Features from in-memory (matrix, found) pairs keyed by encoder id (tests, benchmarks); CSR kept."""
    mats = {k: (sp.csr_matrix(v[0], dtype=np.float32) if sp.issparse(v[0]) else np.asarray(v[0], dtype=np.float32))
            for k, v in arrays.items()}
    found = {k: np.asarray(v[1], dtype=bool) for k, v in arrays.items()}
    return Features(list(product_ids), list(blocks), mats, found)


def coverage(features: Features) -> dict[str, float]:
    """Share of rows that have a fresh vector, per encoder id (reported, and warned about)."""
    return {eid: float(f.mean()) if f.size else 0.0 for eid, f in features.found.items()}
