"""Product groups: k-means over the stored vectors, for catalogs nobody labelled.

Each product's vectors of the chosen encoders are unit-normalised and concatenated with weights
√(w / Σw), so squared Euclidean distance between two products is 2 - 2 x their combined cosine:
k-means then groups by the same similarity `vitrine similar` ranks by. scikit-learn's KMeans
(Lloyd, k-means++ seeding) up to 100k products; MiniBatchKMeans above, whose cost per iteration
does not grow with the catalog (the groups are a browsing aid, not a label; a slightly worse
inertia is the price). Products without a current vector of every chosen encoder are left out
and counted.
"""
from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pyarrow as pa

from features.settings import EncoderSpec
from features.similar import QueryError, read_vector_set
from warehouse.atomic import write_parquet_atomic
from warehouse.layout import Warehouse, safe_name
from warehouse.schemas import TS
from warehouse.tables import now_utc, read_products

MINIBATCH_FROM = 100_000
GROUPS = pa.schema([
    ("product_id", pa.string()), ("group_id", pa.int32()), ("distance", pa.float32()), ("run_id", pa.string()),
    ("content_hash", pa.string()), ("k", pa.int32()), ("encoders", pa.string()), ("grouped_at", TS),
])


@dataclass
class GroupsReport:
    run_id: str
    k: int
    encoders: list[str]
    products: int
    grouped: int
    left_out: int  # without a current vector of every chosen encoder
    inertia: float
    seconds: float

    def as_dict(self) -> dict:
        return asdict(self)


def group_matrix(wh: Warehouse, encoders: Mapping[str, EncoderSpec], names: Sequence[str], weights: Mapping[str, float]):
    """(products, positions having every encoder's vector, the weighted concatenation of their unit vectors)."""
    products = read_products(wh, ["product_id", "title", "image_sha256", "title_sha256", "content_hash"])
    sets = [read_vector_set(wh, n, encoders[n], products) for n in names]
    both = sets[0].rows
    for vs in sets[1:]:
        both = np.intersect1d(both, vs.rows)
    total = sum(weights[n] for n in names)
    blocks = [np.sqrt(weights[vs.name] / total) * vs.matrix[np.searchsorted(vs.rows, both)] for vs in sets]
    X = np.hstack(blocks).astype(np.float32) if blocks else np.zeros((0, 0), np.float32)
    return products, both, X


def kmeans(X: np.ndarray, k: int, seed: int):
    from sklearn.cluster import KMeans, MiniBatchKMeans

    if len(X) > MINIBATCH_FROM:
        model = MiniBatchKMeans(n_clusters=k, random_state=seed, batch_size=4096, n_init=3)
    else:
        model = KMeans(n_clusters=k, random_state=seed, n_init=1)
    labels = model.fit_predict(X)
    dist = np.linalg.norm(X - model.cluster_centers_[labels], axis=1)
    return labels, dist, float(model.inertia_)


def group_products(
    wh: Warehouse, encoders: Mapping[str, EncoderSpec], names: Sequence[str], weights: Mapping[str, float],
    k: int, run_id: str, seed: int = 0,
) -> GroupsReport:
    """Cluster the products into k groups and write them as one product_groups file of this run."""
    t0 = time.perf_counter()
    products, pos, X = group_matrix(wh, encoders, names, weights)
    if len(pos) < k:
        raise QueryError(f"only {len(pos)} products have a current vector of every encoder {list(names)}: fewer than k={k}")
    labels, dist, inertia = kmeans(X, k, seed)
    sub = products.take(pa.array(pos))
    n = len(pos)
    table = pa.table({
        "product_id": sub["product_id"], "group_id": pa.array(labels.astype(np.int32)), "distance": pa.array(dist.astype(np.float32)),
        "run_id": [run_id] * n, "content_hash": sub["content_hash"], "k": pa.array([k] * n, pa.int32()),
        "encoders": [",".join(names)] * n, "grouped_at": pa.array([now_utc()] * n, TS),
    }, schema=GROUPS)
    write_parquet_atomic(table, wh.product_groups_dir / f"{safe_name(run_id)}.parquet")
    return GroupsReport(run_id, k, list(names), products.num_rows, n, products.num_rows - n, inertia,
                        round(time.perf_counter() - t0, 3))
