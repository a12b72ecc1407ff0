"""The approximate index of `vitrine similar`: faiss IVF-Flat per encoder, kept up to date by hash.

Why IVF-Flat (faiss-cpu) and not HNSW (usearch, faiss HNSW): building an HNSW graph searches the
graph for every vector it inserts, which on two-core machines makes a million 1280-d vectors a
matter of an hour or more, while IVF trains its cells on a sample and then only assigns each vector
to its nearest cell (minutes per million, benchmarks/similar.py). IVF-Flat also keeps each vector exactly (float32),
so the candidates it finds are re-ranked on exactly the stored vectors with no second read of the
Parquet store, and it removes and adds ids in place: an update touches only what changed.

The index is a cache of the embedding store, never a source: each build writes a new generation
directory (index.faiss + manifest.parquet of the (key, product_id, content_hash) it holds) and then
switches the CURRENT pointer atomically. A search first checks the manifest against the products'
current content hashes and the vectors stored for them; any difference (a new, changed or deleted
product not yet indexed) makes the index stale, and the caller searches exactly instead.
"""
from __future__ import annotations

import json
import math
import shutil
import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from features.identity import encoder_id as make_encoder_id
from features.settings import EncoderSpec, IndexSettings
from features.similar import Hit, unit_rows
from features.store import HASH_COLUMN, EmbeddingStore
from warehouse.atomic import atomic_path, fsync_dir, write_parquet_atomic
from warehouse.layout import Warehouse
from warehouse.tables import now_utc, read_products

POINTER = "CURRENT"
MANIFEST = pa.schema([("key", pa.int64()), ("product_id", pa.string()), ("content_hash", pa.string())])


def _faiss(threads: int | None = None):
    import faiss

    if threads:
        faiss.omp_set_num_threads(threads)
    return faiss


@dataclass
class IndexReport:
    name: str
    encoder_id: str
    vectors: int
    added: int
    removed: int
    rebuilt: bool
    nlist: int
    seconds: float
    written: bool

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class LoadedIndex:
    """One generation of an encoder's index: the faiss object and the manifest it covers."""

    encoder_id: str
    index: object
    manifest: pa.Table  # sorted by key
    meta: dict

    @property
    def keys(self) -> np.ndarray:
        return self.manifest["key"].to_numpy()

    def product_ids(self, keys: np.ndarray) -> list[str]:
        pos = np.searchsorted(self.keys, keys)
        return self.manifest["product_id"].take(pa.array(pos)).to_pylist()

    def keys_of(self, product_ids: list[str]) -> np.ndarray:
        """Each product's key, -1 when the index has no vector for it."""
        pos = pc.index_in(pa.array(product_ids, pa.string()), value_set=self.manifest["product_id"])
        pos = pos.fill_null(-1).to_numpy(zero_copy_only=False)
        return np.where(pos >= 0, self.keys[np.maximum(pos, 0)], -1)

    def vectors(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The stored (unit, float32) vectors of `keys`, and which keys the index holds."""
        have = keys >= 0
        out = np.zeros((len(keys), self.index.d), dtype=np.float32)
        if have.any():
            out[have] = self.index.reconstruct_batch(keys[have].astype(np.int64))
        return out, have


def current_keys(wh: Warehouse, spec: EncoderSpec, products: pa.Table) -> pa.Table:
    """(product_id, content_hash) of the products whose current content has a stored vector."""
    store = EmbeddingStore(wh, make_encoder_id(spec))
    if not store.files():
        return MANIFEST.remove(0).empty_table()
    con = duckdb.connect()
    con.register("p", products.select(["product_id", HASH_COLUMN[spec.input]]).rename_columns(["product_id", "content_hash"]))
    out = con.sql(
        "SELECT DISTINCT s.product_id, s.content_hash FROM (" + store._scan_sql("product_id, content_hash")
        + ") s JOIN p USING (product_id, content_hash) ORDER BY 1"
    ).to_arrow_table()
    con.close()
    return out


def _pointer(d: Path) -> Path:
    return d / POINTER


def load_index(wh: Warehouse, encoder_id: str) -> LoadedIndex | None:
    """The current generation of an encoder's index, None when none was built."""
    d = wh.index_dir(encoder_id)
    if not _pointer(d).exists():
        return None
    meta = json.loads(_pointer(d).read_text())
    gen = d / meta["generation"]
    if not (gen / "index.faiss").exists():
        return None
    faiss = _faiss()
    index = faiss.read_index(str(gen / "index.faiss"))
    manifest = pq.read_table(gen / "manifest.parquet").sort_by("key")
    return LoadedIndex(meta["encoder_id"], index, manifest, meta)


def staleness(loaded: LoadedIndex | None, current: pa.Table, dim: int | None) -> str | None:
    """Why this index cannot answer for the current catalog, or None when it covers it exactly."""
    if loaded is None:
        return "no index built (run `vitrine index build`)"
    if dim is not None and loaded.index.d != dim:
        return f"the index holds {loaded.index.d}-d vectors, the store {dim}-d ones"
    added, removed = diff(loaded.manifest, current)
    if added.num_rows or removed.num_rows:
        return (f"the index is stale: {added.num_rows} products new or changed and {removed.num_rows} changed "
                "or deleted since it was built (run `vitrine index build`)")
    return None


def diff(manifest: pa.Table, current: pa.Table) -> tuple[pa.Table, pa.Table]:
    """(current rows the manifest lacks, manifest rows no longer current), on (product_id, content_hash)."""
    con = duckdb.connect()
    con.register("m", manifest)
    con.register("c", current)
    added = con.sql("SELECT product_id, content_hash FROM c ANTI JOIN m USING (product_id, content_hash) ORDER BY 1").to_arrow_table()
    removed = con.sql("SELECT key, product_id, content_hash FROM m ANTI JOIN c USING (product_id, content_hash) ORDER BY 1").to_arrow_table()
    con.close()
    return added, removed


def default_nlist(n: int) -> int:
    """4·√n cells, but at least 39 training vectors per cell (faiss's own floor)."""
    return max(1, min(int(4 * math.sqrt(max(n, 1))), n // 39))


def _new_ivf(dim: int, train: np.ndarray, nlist: int, threads: int):
    faiss = _faiss(threads)
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    index.train(train)
    index.set_direct_map_type(faiss.DirectMap.Hashtable)
    return index


def _read_vectors(store: EmbeddingStore, rows: pa.Table) -> np.ndarray:
    m, found = store.read_matrix(rows["product_id"].to_pylist(), rows["content_hash"].to_pylist())
    if not found.all():  # a vector vanished between the key scan and this read: never index a zero row
        raise RuntimeError(f"{int((~found).sum())} vectors of {store.encoder_id} disappeared while indexing")
    return unit_rows(m)


def build_indexes(wh: Warehouse, encoders: Mapping[str, EncoderSpec], s: IndexSettings, names: list[str],
                  rebuild: bool = False) -> list[IndexReport]:
    """Every named encoder's index brought up to date against the current products (one read of them)."""
    products = read_products(wh, ["product_id", *HASH_COLUMN.values()])
    return [build_index(wh, n, encoders[n], s, products, rebuild) for n in names]


def build_index(
    wh: Warehouse, name: str, spec: EncoderSpec, s: IndexSettings, products: pa.Table, rebuild: bool = False
) -> IndexReport:
    """Bring an encoder's index up to date; call while holding the writer lock.

    With an index already built (same dimension), only what changed is touched: keys of deleted
    and changed products are removed, vectors of new and changed ones added; nothing changed,
    nothing written. `rebuild` (or no index yet) trains new cells on a sample of the vectors.
    """
    t0 = time.perf_counter()
    eid = make_encoder_id(spec)
    store = EmbeddingStore(wh, eid)
    current = current_keys(wh, spec, products)
    loaded = None if rebuild else load_index(wh, eid)
    if loaded is not None and store.dim is not None and loaded.index.d != store.dim:
        loaded = None
    _faiss(s.threads)
    if loaded is None:
        n = current.num_rows
        if n == 0:
            return IndexReport(name, eid, 0, 0, 0, True, 0, time.perf_counter() - t0, False)
        vectors = _read_vectors(store, current)
        nlist = min(s.nlist or default_nlist(n), n)
        rng = np.random.default_rng(0)
        sample = vectors[rng.choice(n, size=min(n, s.train_rows), replace=False)] if n > s.train_rows else vectors
        index = _new_ivf(vectors.shape[1], sample, nlist, s.threads)
        keys = np.arange(n, dtype=np.int64)
        index.add_with_ids(vectors, keys)
        manifest = pa.table({"key": pa.array(keys), "product_id": current["product_id"], "content_hash": current["content_hash"]},
                            schema=MANIFEST)
        _write_generation(wh, eid, index, manifest, nlist)
        return IndexReport(name, eid, n, n, 0, True, nlist, time.perf_counter() - t0, True)
    added, removed = diff(loaded.manifest, current)
    index = loaded.index
    if added.num_rows == 0 and removed.num_rows == 0:
        return IndexReport(name, eid, index.ntotal, 0, 0, False, index.nlist, time.perf_counter() - t0, False)
    keep = loaded.manifest
    if removed.num_rows:
        gone = removed["key"].to_numpy()
        index.remove_ids(gone.astype(np.int64))
        keep = keep.filter(pc.invert(pc.is_in(keep["key"], value_set=pa.array(gone))))
    if added.num_rows:
        start = int(loaded.keys.max()) + 1 if loaded.manifest.num_rows else 0
        new_keys = np.arange(start, start + added.num_rows, dtype=np.int64)
        index.add_with_ids(_read_vectors(store, added), new_keys)
        keep = pa.concat_tables([keep, pa.table({"key": pa.array(new_keys), "product_id": added["product_id"],
                                                 "content_hash": added["content_hash"]}, schema=MANIFEST)])
    _write_generation(wh, eid, index, keep, index.nlist)
    return IndexReport(name, eid, index.ntotal, added.num_rows, removed.num_rows, False, index.nlist,
                       time.perf_counter() - t0, True)


def _write_generation(wh: Warehouse, eid: str, index, manifest: pa.Table, nlist: int) -> None:
    """A new generation directory, then the pointer switched to it (readers see old or new, whole)."""
    faiss = _faiss()
    d = wh.index_dir(eid)
    d.mkdir(parents=True, exist_ok=True)
    name = f"gen-{now_utc().strftime('%Y%m%dT%H%M%S%f')}-{uuid.uuid4().hex[:6]}"
    gen = d / name
    gen.mkdir()
    faiss.write_index(index, str(gen / "index.faiss"))
    write_parquet_atomic(manifest, gen / "manifest.parquet")
    fsync_dir(gen)
    previous = json.loads(_pointer(d).read_text())["generation"] if _pointer(d).exists() else None
    meta = {"generation": name, "encoder_id": eid, "vectors": int(index.ntotal), "dim": int(index.d), "nlist": int(nlist),
            "built_at": now_utc().isoformat()}
    with atomic_path(_pointer(d)) as tmp:
        tmp.write_text(json.dumps(meta))
    for old in d.glob("gen-*"):  # keep the previous one: a reader may have just read the old pointer
        if old.name not in (name, previous):
            shutil.rmtree(old, ignore_errors=True)


def index_search(
    indexes: Mapping[str, LoadedIndex],
    query: Mapping[str, np.ndarray],
    weights: Mapping[str, float],
    k: int,
    s: IndexSettings,
    allowed: set[str] | None = None,
    exclude: str | None = None,
) -> list[Hit] | None:
    """Candidates from each query encoder's index, re-ranked on the exact stored vectors.

    None when the candidates that pass `allowed` are fewer than k (a narrow --where): the caller
    then searches exactly rather than answer with fewer products than exist.
    """
    fetch = max(s.candidates, k + 1)
    cand: list[str] = []
    seen: set[str] = set()
    for n, q in query.items():
        ix = indexes[n]
        ix.index.nprobe = min(s.nprobe, ix.index.nlist)
        _, keys = ix.index.search(q.reshape(1, -1).astype(np.float32), fetch)
        keys = keys[0][keys[0] >= 0]
        for pid in ix.product_ids(keys):
            if pid not in seen and pid != exclude and (allowed is None or pid in allowed):
                seen.add(pid)
                cand.append(pid)
    if len(cand) < k:
        return None
    total = sum(weights[n] for n in query)
    score = np.zeros(len(cand), dtype=np.float32)
    per: dict[str, np.ndarray] = {}
    has: dict[str, np.ndarray] = {}
    for n, q in query.items():
        vecs, have = indexes[n].vectors(indexes[n].keys_of(cand))
        sims = vecs @ q
        per[n], has[n] = sims, have
        score += (weights[n] / total) * np.where(have, sims, 0.0).astype(np.float32)
    order = sorted(range(len(cand)), key=lambda i: (-score[i], cand[i]))[:k]
    return [Hit(cand[i], float(score[i]), {n: (float(per[n][i]) if has[n][i] else None) for n in query}) for i in order]
