"""Near-duplicate listings: pairs whose photo AND title are both at least as similar as configured.

Only products not compared before (new, or whose photo or title changed: the hashes of both inputs
are kept per compared product) are compared, each against the whole catalog, so a nightly run
costs what changed, not the square of the catalog. Every run appends two files: the pairs it found
(with both products' content hashes) and the products it compared. The `duplicate_pairs` view keeps
the newest row per pair whose two products still have that content, so an edit or a delete retires
a pair by itself and the next run re-compares the edited product.
"""
from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import duckdb
import numpy as np
import pyarrow as pa

from features.settings import DuplicateSettings, EncoderSpec
from features.similar import QueryError, read_vector_set
from warehouse.atomic import visible_parquet_files, write_parquet_atomic
from warehouse.layout import Warehouse, safe_name
from warehouse.schemas import TS, sql_literal
from warehouse.tables import now_utc, read_products

PAIRS = pa.schema([
    ("product_a", pa.string()), ("product_b", pa.string()),
    ("image_similarity", pa.float32()), ("title_similarity", pa.float32()),
    ("a_content_hash", pa.string()), ("b_content_hash", pa.string()),
    ("found_at", TS), ("run_id", pa.string()),
])
COMPARED = pa.schema([
    ("product_id", pa.string()), ("image_sha256", pa.string()), ("title_sha256", pa.string()),
    ("compared_at", TS), ("run_id", pa.string()),
])
BLOCK = 512  # query rows per matrix product: 512 x catalog float32 stays small


@dataclass
class DuplicateReport:
    run_id: str
    products: int
    comparable: int  # products with both a current photo and title vector
    compared: int  # of which new or changed since the last run, compared against the catalog
    pairs: int
    seconds: float

    def as_dict(self) -> dict:
        return asdict(self)


def compared_before(wh: Warehouse) -> pa.Table:
    files = visible_parquet_files(wh.duplicates_compared_dir)
    if not files:
        return COMPARED.empty_table()
    listed = ", ".join(sql_literal(str(f)) for f in files)
    return duckdb.sql(f"SELECT DISTINCT product_id, image_sha256, title_sha256 FROM read_parquet([{listed}])").to_arrow_table()


def _aligned(img, tit, n: int):
    """Positions with both vectors, and the two matrices row-aligned to them."""
    both = np.intersect1d(img.rows, tit.rows)
    ri = np.searchsorted(img.rows, both)
    rt = np.searchsorted(tit.rows, both)
    return both, img.matrix[ri], tit.matrix[rt]


def pairs_above(A: np.ndarray, B: np.ndarray, todo: np.ndarray, image_t: float, title_t: float):
    """(i, j, image sim, title sim) with i in `todo`, j anywhere, i != j, both sims at the thresholds; i<j per pair."""
    out_i, out_j, out_s, out_t = [], [], [], []
    in_todo = np.zeros(len(A), dtype=bool)
    in_todo[todo] = True
    for start in range(0, len(todo), BLOCK):
        rows = todo[start : start + BLOCK]
        S = A[rows] @ A.T
        S[np.arange(len(rows)), rows] = -np.inf  # not a duplicate of itself
        qi, j = np.nonzero(S >= image_t)
        i = rows[qi]
        keep = ~(in_todo[j] & (j < i))  # a pair of two compared products is found from both ends: keep one
        i, j, s = i[keep], j[keep], S[qi[keep], j[keep]]
        t = np.einsum("ij,ij->i", B[i], B[j])
        ok = t >= title_t
        out_i.append(i[ok]); out_j.append(j[ok]); out_s.append(s[ok]); out_t.append(t[ok])
    cat = lambda xs, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(0, dt)  # noqa: E731
    return cat(out_i, np.int64), cat(out_j, np.int64), cat(out_s, np.float32), cat(out_t, np.float32)


def find_duplicates(wh: Warehouse, encoders: Mapping[str, EncoderSpec], d: DuplicateSettings, run_id: str) -> DuplicateReport:
    """Compare the new and changed products against the catalog; append what was found and compared."""
    t0 = time.perf_counter()
    for role, name, kind in (("image_encoder", d.image_encoder, "image"), ("title_encoder", d.title_encoder, "title")):
        if name not in encoders:
            raise QueryError(f"similar.duplicates.{role} {name!r} is not a configured encoder ({sorted(encoders)})")
        if encoders[name].input != kind:
            raise QueryError(f"similar.duplicates.{role} {name!r} encodes {encoders[name].input}s, not {kind}s")
    products = read_products(wh, ["product_id", "title", "image_sha256", "title_sha256", "content_hash"])
    img = read_vector_set(wh, d.image_encoder, encoders[d.image_encoder], products)
    tit = read_vector_set(wh, d.title_encoder, encoders[d.title_encoder], products)
    both, A, B = _aligned(img, tit, products.num_rows)
    sub = products.take(pa.array(both))
    seen = compared_before(wh)
    con = duckdb.connect()
    con.register("sub", sub.append_column("i", pa.array(np.arange(len(both), dtype=np.int64))))
    con.register("seen", seen)
    todo = con.sql("SELECT i FROM sub ANTI JOIN seen USING (product_id, image_sha256, title_sha256) ORDER BY i").fetchnumpy()["i"]
    con.close()
    todo = np.asarray(todo, dtype=np.int64)
    i, j, s, t = pairs_above(A, B, todo, d.image_threshold, d.title_threshold)
    ids = np.array(sub["product_id"].to_pylist(), dtype=object)
    hashes = np.array(sub["content_hash"].to_pylist(), dtype=object)
    swap = ids[i] > ids[j]  # product_a < product_b, one row per pair
    a = np.where(swap, j, i)
    b = np.where(swap, i, j)
    now = now_utc()
    name = f"{safe_name(run_id)}.parquet"
    if len(a):
        write_parquet_atomic(pa.table({
            "product_a": ids[a].tolist(), "product_b": ids[b].tolist(), "image_similarity": s, "title_similarity": t,
            "a_content_hash": hashes[a].tolist(), "b_content_hash": hashes[b].tolist(),
            "found_at": pa.array([now] * len(a), TS), "run_id": [run_id] * len(a),
        }, schema=PAIRS), wh.duplicate_pairs_dir / name)
    if len(todo):  # after the pairs: a run killed in between re-compares, and the view keeps one row per pair
        done = sub.take(pa.array(todo))
        write_parquet_atomic(pa.table({
            "product_id": done["product_id"], "image_sha256": done["image_sha256"], "title_sha256": done["title_sha256"],
            "compared_at": pa.array([now] * len(todo), TS), "run_id": [run_id] * len(todo),
        }, schema=COMPARED), wh.duplicates_compared_dir / name)
    return DuplicateReport(run_id, products.num_rows, len(both), len(todo), int(len(a)), round(time.perf_counter() - t0, 3))
