"""Batch scoring: every product whose current content has no prediction from a current model.

Predictions are append-only: one file per run, written once at the end, so a failed run leaves
nothing visible and a re-run of the same run id replaces only its own rows. A product is scored
once every input it has (a readable image, a title) has a fresh vector for each encoder the model
reads; until then it is skipped and counted, so nothing is scored on half of its inputs.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from features.encode import shard_of
from heads.features import HASH_COLUMN, Features, product_columns, read_features
from heads.predict import TargetPrediction, load_model, to_predictions
from heads.registry import current_models
from warehouse import schemas
from warehouse.current_predictions import scored_sql
from warehouse.errors import VitrineError
from warehouse.layout import Warehouse
from warehouse.tables import now_utc, product_column_names, read_products, stage_predictions, write_predictions


class NoCurrentModel(VitrineError):
    pass


@dataclass
class ScoreSummary:
    run_id: str
    models: list[str] = field(default_factory=list)
    products: int = 0
    to_score: int = 0
    scored: int = 0
    skipped_no_vectors: int = 0
    rows_written: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def _already_scored(wh: Warehouse, model_id: str, products: pa.Table) -> pa.Table:
    """Products whose current content_hash has no prediction from `model_id` yet."""
    con = duckdb.connect()
    con.register("products_now", products)
    out = con.sql(
        f"SELECT p.* FROM products_now p ANTI JOIN ({scored_sql(wh, model_id)}) d USING (product_id, content_hash) "
        "ORDER BY p.product_id"
    ).to_arrow_table()
    con.close()
    return out


def ready(batch: pa.Table, features: Features) -> np.ndarray:
    """Products whose every present input has a fresh vector in every block that reads it."""
    has_input = {
        "image": pc.equal(batch["image_status"], "ok").fill_null(False).to_numpy(zero_copy_only=False),
        "title": batch[HASH_COLUMN["title"]].is_valid().to_numpy(zero_copy_only=False),
        "columns": np.ones(batch.num_rows, dtype=bool),  # every product has its columns, if only as missing
    }
    ok = np.zeros(batch.num_rows, dtype=bool)
    for b in features.blocks:
        ok |= features.found[b.encoder_id]
    for b in features.blocks:
        ok &= features.found[b.encoder_id] | ~has_input[b.input]
    return ok


def _rows(tp: TargetPrediction, batch: pa.Table, base: dict) -> pa.Table:
    """One prediction row per product of `batch`, built column-wise (no per-row Python objects)."""
    n = batch.num_rows
    ids, hashes = batch["product_id"], batch["content_hash"]
    null_s, null_f = pa.nulls(n, pa.string()), pa.nulls(n, pa.float64())
    if tp.kind == "classification":
        labels, probs = tp.labels, tp.probs.astype(np.float64)
        k = labels.shape[1]
        structs = pa.StructArray.from_arrays(
            [pa.array(labels.reshape(-1), pa.string()), pa.array(probs.reshape(-1))], names=["label", "probability"]
        )
        top_k = pa.ListArray.from_arrays(pa.array(np.arange(0, n * k + 1, k, dtype=np.int32)), structs)
        label, conf = pa.array(labels[:, 0], pa.string()), pa.array(probs[:, 0])
        value = lower = upper = null_f
    else:
        top_k = pa.nulls(n, schemas.TOP_K)
        label, conf = null_s, null_f
        value, lower, upper = (pa.array(np.asarray(a, np.float64)) for a in (tp.value, tp.lower, tp.upper))
    cols = {
        "run_id": pa.array([base["run_id"]] * n, pa.string()),
        "model_id": pa.array([base["model_id"]] * n, pa.string()),
        "scored_at": pa.array([base["scored_at"]] * n, schemas.TS),
        "product_id": ids,
        "content_hash": hashes,
        "target": pa.array([tp.target] * n, pa.string()),
        "label": label,
        "confidence": conf,
        "top_k": top_k,
        "value": value,
        "lower": lower,
        "upper": upper,
    }
    return pa.table(cols, schema=schemas.PREDICTIONS)


def score(
    wh: Warehouse, settings, run_id: str, rescore_all: bool = False, shard: tuple[int, int] | None = None
) -> ScoreSummary:
    """Score with every current model and append the predictions of this run.

    `settings` needs `.score` (top_k, batch_rows). `shard=(i, n)` scores only the products whose
    stable hash % n == i and stages its file, which `warehouse.tables.publish_predictions` makes
    visible once every shard is done. The caller holds the writer lock.
    """
    t0 = time.perf_counter()
    models = current_models(wh)
    if not models:
        raise NoCurrentModel("no current model in the registry: train one first (`vitrine train`)")
    loaded = {m["model_id"]: load_model(wh, m["model_id"]) for m in models}
    have = set(product_column_names(wh))
    extra = [c for lm in loaded.values() for c in product_columns(lm.blocks) if c in have]
    products = read_products(wh, columns=list(dict.fromkeys(
        ["product_id", "content_hash", "image_status", "image_sha256", "title_sha256"] + extra)))
    if shard is not None:
        products = products.filter(pa.array(shard_of(products["product_id"].to_pylist(), shard[1]) == shard[0]))
    summary = ScoreSummary(run_id=run_id, products=products.num_rows)
    scored_at = now_utc()
    parts: list[pa.Table] = []
    scored_ids: set[str] = set()
    for m in models:
        summary.models.append(m["model_id"])
        todo = products if rescore_all else _already_scored(wh, m["model_id"], products)
        summary.to_score += todo.num_rows
        if todo.num_rows == 0:
            continue
        model = loaded[m["model_id"]]
        base = {"run_id": run_id, "model_id": m["model_id"], "scored_at": scored_at}
        step = settings.score.batch_rows
        for start in range(0, todo.num_rows, step):
            batch = todo.slice(start, step)
            features = read_features(wh, batch, model.blocks)
            keep = np.flatnonzero(ready(batch, features))
            summary.skipped_no_vectors += batch.num_rows - len(keep)
            if len(keep) == 0:
                continue
            batch, features = batch.take(pa.array(keep)), features.take(keep)
            preds = to_predictions(model, model.predict_features(features), features, settings.score.top_k)
            scored_ids.update(batch["product_id"].to_pylist())
            parts.extend(_rows(tp, batch, base) for tp in preds.values())
    table = pa.concat_tables(parts) if parts else schemas.PREDICTIONS.empty_table()
    if table.num_rows and shard is not None:
        stage_predictions(wh, run_id, shard, table)
    elif table.num_rows:
        write_predictions(wh, run_id, table)
    summary.scored = len(scored_ids)
    summary.rows_written = table.num_rows
    summary.seconds = round(time.perf_counter() - t0, 3)
    return summary
