"""The current predictions as `latest_predictions` reads them: the compacted snapshot plus the runs since.

`predictions_current/current.parquet` holds the newest row per (product, target) among the models
current when it was written (`warehouse.compaction` writes it); its own Parquet metadata names
the run files it covers and those models. The view reads the snapshot plus a window over the
runs written since (the delta), never over the whole history. If a model is current that the
snapshot was not built for (a `vitrine promote` back to an older model), its rows may lie only in
compacted runs, so the view falls back to the window over history until the next compaction.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pyarrow.compute as pc

from warehouse import schemas
from warehouse.schemas import sql_literal
from warehouse.atomic import read_metadata, visible_parquet_files
from warehouse.layout import Warehouse
from warehouse.tables import read_models

RUNS_KEY, MODELS_KEY = "vitrine.compacted_runs", "vitrine.models"
CURRENT = (
    "JOIN models m ON {a}.model_id = m.model_id AND m.is_current AND list_contains(m.targets, {a}.target)"
)
NEWEST = "QUALIFY row_number() OVER (PARTITION BY p.product_id, p.target ORDER BY p.scored_at DESC, p.run_id DESC) = 1"


@dataclass(frozen=True)
class Snapshot:
    path: Path
    runs: frozenset[str]  # run folder names (`run=<id>`) the snapshot covers
    models: frozenset[str]  # model ids current when it was written


def _files_sql(files: list[Path]) -> str:
    if not files:
        return schemas.empty_select(schemas.PREDICTIONS)
    return f"SELECT * FROM read_parquet([{', '.join(sql_literal(str(f)) for f in files)}])"


def run_files(wh: Warehouse) -> list[Path]:
    return visible_parquet_files(wh.predictions_dir)


def read_snapshot(wh: Warehouse) -> Snapshot | None:
    if not wh.predictions_current_path.exists():
        return None
    md = read_metadata(wh.predictions_current_path)
    return Snapshot(wh.predictions_current_path, frozenset(json.loads(md[RUNS_KEY])), frozenset(json.loads(md[MODELS_KEY])))


def current_model_ids(wh: Warehouse) -> set[str]:
    t = read_models(wh)
    return set(t.filter(pc.fill_null(t["is_current"], False))["model_id"].to_pylist()) if t.num_rows else set()


def usable_snapshot(wh: Warehouse) -> tuple[Snapshot | None, list[Path]]:
    """The snapshot if it covers every current model, and the run files it does not cover."""
    files = run_files(wh)
    snap = read_snapshot(wh)
    if snap is None or not current_model_ids(wh) <= snap.models:
        return None, files
    return snap, [f for f in files if f.parent.name not in snap.runs]


def latest_predictions_sql(wh: Warehouse) -> str:
    """The newest prediction per (product, target) of the current models, deleted products left out.

    Needs a `models` view.
    """
    snap, delta = usable_snapshot(wh)
    if wh.deleted_products_path.exists():
        deleted = f"SELECT product_id FROM read_parquet({sql_literal(str(wh.deleted_products_path))})"
        return f"SELECT * FROM ({_latest_sql(snap, delta)}) ANTI JOIN ({deleted}) USING (product_id)"
    return _latest_sql(snap, delta)


def _latest_sql(snap: Snapshot | None, delta: list[Path]) -> str:
    if snap is None:
        return f"SELECT p.* FROM ({_files_sql(delta)}) p {CURRENT.format(a='p')} {NEWEST}"
    return (
        f"WITH delta AS (SELECT p.* FROM ({_files_sql(delta)}) p {CURRENT.format(a='p')} {NEWEST}) "
        "SELECT * FROM delta UNION ALL BY NAME "
        f"SELECT c.* FROM read_parquet({sql_literal(str(snap.path))}) c {CURRENT.format(a='c')} "
        "ANTI JOIN delta USING (product_id, target)"
    )


def scored_sql(wh: Warehouse, model_id: str) -> str:
    """(product_id, content_hash) pairs that `model_id` has a prediction for, from snapshot + delta."""
    snap = read_snapshot(wh)
    files = run_files(wh)
    where = f"WHERE model_id = {sql_literal(model_id)}"
    if snap is None or model_id not in snap.models:
        return f"SELECT DISTINCT product_id, content_hash FROM ({_files_sql(files)}) {where}"
    delta = [f for f in files if f.parent.name not in snap.runs]
    return (
        f"SELECT product_id, content_hash FROM read_parquet({sql_literal(str(snap.path))}) {where} UNION "
        f"SELECT product_id, content_hash FROM ({_files_sql(delta)}) {where}"
    )


def compaction_due(wh: Warehouse, after_runs: int) -> bool:
    """Whether `after_runs` (0: never) runs lie outside the snapshot, or it lacks a current model."""
    if after_runs <= 0:
        return False
    snap, delta = usable_snapshot(wh)
    return len(delta) >= after_runs or (snap is None and read_snapshot(wh) is not None)
