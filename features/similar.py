"""Nearest products by cosine over the stored vectors: exact search in NumPy.

Every named encoder's *current* vectors (matched on the product's content hash of that input, so
a stale vector is missing, never mixed in) are read once, in bulk, as one unit-normalised float32
matrix; a query is then one matrix-vector product per encoder. Several encoders combine as a
weighted sum of cosine similarities, divided by the weights of the encoders the query has a vector
for: a candidate without a vector of one of them scores 0 there (no photo is no evidence of a
match). Measured on the full Fashion catalog (benchmarks/similar.py), this beats DuckDB's
`array_cosine_similarity`, which re-reads the Parquet files for every query; the SQL macros of
the warehouse file use that one, for people at the `duckdb` prompt.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from features.identity import encoder_id as make_encoder_id
from features.settings import EncoderSpec
from features.store import HASH_COLUMN, EmbeddingStore
from warehouse.errors import VitrineError
from warehouse.layout import Warehouse
from warehouse.tables import read_products


class QueryError(VitrineError, ValueError):
    """A query that cannot be answered: unknown product, missing vector, undecodable image, ..."""


def unit_rows(m: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (zero rows stay zero), float32."""
    m = np.asarray(m, dtype=np.float32)
    norms = np.linalg.norm(m, axis=-1, keepdims=True)
    return m / np.where(norms > 0, norms, 1.0).astype(np.float32)


@dataclass
class VectorSet:
    """One encoder's current vectors: unit rows, and which catalog positions they belong to."""

    name: str
    encoder_id: str
    input: str
    rows: np.ndarray  # int64 positions in the catalog's product order
    matrix: np.ndarray  # (len(rows), dim) unit float32
    _where: dict[int, int] = field(default_factory=dict, repr=False)

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    def row_of(self, position: int) -> int | None:
        """Index into `matrix` of a catalog position, None when that product has no current vector."""
        if not self._where and len(self.rows):
            self._where = {int(p): i for i, p in enumerate(self.rows)}
        return self._where.get(position)


@dataclass
class Catalog:
    """The current products (ids, titles, content hashes) and the vector sets read for them."""

    products: pa.Table
    sets: dict[str, VectorSet]

    def __post_init__(self) -> None:
        self.product_ids: list[str] = self.products["product_id"].to_pylist()
        self.position = {p: i for i, p in enumerate(self.product_ids)}

    @property
    def n(self) -> int:
        return len(self.product_ids)

    def position_of(self, product_id: str) -> int:
        pos = self.position.get(product_id)
        if pos is None:
            raise QueryError(f"product {product_id!r} is not in the catalog (deleted, or never ingested)")
        return pos


PRODUCT_COLUMNS = ["product_id", "title", "image_sha256", "title_sha256"]


def read_vector_set(wh: Warehouse, name: str, spec: EncoderSpec, products: pa.Table) -> VectorSet:
    """The current vectors of one encoder for `products` (columns product_id + *_sha256)."""
    if spec.input not in HASH_COLUMN:
        raise QueryError(f"encoder {name!r} encodes catalog {spec.input}, not photos or titles: "
                         "similarity over the stored vectors takes image and title encoders")
    eid = make_encoder_id(spec)
    if spec.family == "hashing":
        from features.encoders.hashing import stores_slots

        if stores_slots(eid):
            raise QueryError(f"encoder {name!r} stores the slot numbers of a title's n-grams (max_ngrams), not a "
                             "vector to compare: name an image or sentence encoder, or a hashing model without max_ngrams")
    store = EmbeddingStore(wh, eid)
    ids = products["product_id"].to_pylist()
    matrix, found = store.read_matrix(ids, products[HASH_COLUMN[spec.input]].to_pylist())
    rows = np.flatnonzero(found).astype(np.int64)
    return VectorSet(name, eid, spec.input, rows, unit_rows(matrix[rows]) if len(rows) else np.zeros((0, store.dim or 0), np.float32))


def open_catalog(wh: Warehouse, encoders: Mapping[str, EncoderSpec], names: Sequence[str]) -> Catalog:
    """The catalog with the vector sets of `names` read (each once, in bulk)."""
    products = read_products(wh, PRODUCT_COLUMNS)
    return Catalog(products, {n: read_vector_set(wh, n, encoders[n], products) for n in names})


def check_names(encoders: Mapping[str, EncoderSpec], names: Sequence[str]) -> None:
    unknown = [n for n in names if n not in encoders]
    if unknown:
        raise QueryError(f"unknown encoder {unknown}: the config declares {sorted(encoders)}")


def product_query(catalog: Catalog, product_id: str, names: Sequence[str], explicit: bool) -> dict[str, np.ndarray]:
    """A stored product's own current vectors as the query.

    An encoder named on the command line (`explicit`) must have a vector for it; of the configured
    default encoders, those it lacks are left out (the caller says so) unless it has none at all.
    """
    pos = catalog.position_of(product_id)
    out: dict[str, np.ndarray] = {}
    lacking = []
    for n in names:
        vs = catalog.sets[n]
        r = vs.row_of(pos)
        if r is None:
            lacking.append(n)
        else:
            out[n] = vs.matrix[r]
    if lacking and (explicit or not out):
        raise QueryError(
            f"product {product_id!r} has no current vector of encoder {', '.join(map(repr, lacking))} "
            "(no such input, or not encoded since it changed: run `vitrine encode`)"
        )
    return out


def fitting_names(encoders: Mapping[str, EncoderSpec], names: Sequence[str], kind: str, explicit: bool) -> list[str]:
    """The encoders of `names` whose input is `kind` ('image' or 'title'); an explicit misfit is an error."""
    misfit = [n for n in names if encoders[n].input != kind]
    if misfit and explicit:
        flag = "--image" if kind == "image" else "--title"
        raise QueryError(
            f"encoder {', '.join(map(repr, misfit))} encodes {encoders[misfit[0]].input}s, not {kind}s: "
            f"it cannot take {flag}"
        )
    fit = [n for n in names if encoders[n].input == kind]
    if not fit:
        raise QueryError(f"none of the encoders {list(names)} encodes {kind}s; name one with --encoder")
    return fit


def encode_query(spec: EncoderSpec, image: Path | None = None, text: str | None = None) -> np.ndarray:
    """A new photo or text → a unit vector of the same encoder (same encoder_id) as the stored ones."""
    import torch
    from PIL import Image

    from features.encoders import load_encoder
    from features.mapper import Mapper

    if image is not None:
        if spec.input != "image":
            raise QueryError(f"encoder {spec.model!r} encodes {spec.input}s, not images")
        try:
            with Image.open(image) as im:
                im.load()
                im = im if im.mode == "RGB" else im.convert("RGB")
        except FileNotFoundError:
            raise QueryError(f"image {image} does not exist") from None
        except Exception as e:  # PIL raises several types for a file it cannot read
            raise QueryError(f"image {image} cannot be decoded: {type(e).__name__}: {e}") from None
        enc = load_encoder(spec)
        inputs = enc.preprocess(im).unsqueeze(0)
    else:
        if spec.input != "title":
            raise QueryError(f"encoder {spec.model!r} encodes {spec.input}s, not titles")
        if text is None or not text.strip():
            raise QueryError("the query text is empty")
        enc = load_encoder(spec)
        inputs = enc.tokenize([text])
    with torch.inference_mode():
        vec = Mapper(enc, "fp32")(inputs)[0]
    return unit_rows(vec)


@dataclass
class Hit:
    product_id: str
    similarity: float
    per_encoder: dict[str, float | None]


def combined_scores(catalog: Catalog, query: Mapping[str, np.ndarray], weights: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """(score of every catalog product, whether it has a vector of any query encoder)."""
    score = np.zeros(catalog.n, dtype=np.float32)
    covered = np.zeros(catalog.n, dtype=bool)
    total = sum(weights[n] for n in query)
    for n, q in query.items():
        vs = catalog.sets[n]
        if len(vs.rows):
            score[vs.rows] += (weights[n] / total) * (vs.matrix @ q)
            covered[vs.rows] = True
    return score, covered


def top_k(score: np.ndarray, eligible: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k best eligible scores, best first (ties by catalog order)."""
    idx = np.flatnonzero(eligible)
    if len(idx) > k:
        part = np.argpartition(-score[idx], k - 1)[:k]
        idx = idx[part]
    return idx[np.lexsort((idx, -score[idx]))]


def exact_search(
    catalog: Catalog,
    query: Mapping[str, np.ndarray],
    weights: Mapping[str, float],
    k: int,
    allowed: np.ndarray | None = None,
    exclude: str | None = None,
) -> list[Hit]:
    """The k products nearest to `query` by the weighted cosine; `allowed` masks catalog positions."""
    score, eligible = combined_scores(catalog, query, weights)
    if allowed is not None:
        eligible &= allowed
    if exclude is not None and exclude in catalog.position:
        eligible[catalog.position[exclude]] = False
    return [hit_at(catalog, int(p), float(score[p]), query) for p in top_k(score, eligible, k)]


def hit_at(catalog: Catalog, pos: int, similarity: float, query: Mapping[str, np.ndarray]) -> Hit:
    per: dict[str, float | None] = {}
    for n, q in query.items():
        r = catalog.sets[n].row_of(pos)
        per[n] = None if r is None else float(catalog.sets[n].matrix[r] @ q)
    return Hit(catalog.product_ids[pos], similarity, per)
