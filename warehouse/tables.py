"""Reading and replacing the warehouse's own tables as Arrow, for code that is not SQL."""
from __future__ import annotations

import json
import os
import shutil
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from warehouse import schemas
from warehouse.atomic import visible_parquet_files, write_parquet_atomic
from warehouse.layout import Warehouse, safe_name


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def read_dataset(directory: Path, schema: pa.Schema | None = None) -> pa.Table:
    """All committed files of a dataset directory as one table (empty with `schema` if none)."""
    files = visible_parquet_files(directory)
    if not files:
        return schema.empty_table() if schema is not None else pa.table({})
    tables = [pq.read_table(f) for f in files]
    return pa.concat_tables(tables, promote_options="default")


def read_products(wh: Warehouse, columns: list[str] | None = None) -> pa.Table:
    if not wh.products_path.exists():
        return schemas.PRODUCT_FIXED.empty_table()
    return pq.read_table(wh.products_path, columns=columns)


def product_column_names(wh: Warehouse) -> list[str]:
    """The products table's column names (the fixed ones and the catalog's own), without reading rows."""
    if not wh.products_path.exists():
        return schemas.PRODUCT_FIXED.names
    return pq.read_schema(wh.products_path).names


def read_rejects(wh: Warehouse) -> pa.Table:
    return read_dataset(wh.rejects_dir, schemas.REJECTS)


def replace_rejects(wh: Warehouse, source: str, rejects: pa.Table) -> None:
    """Rejects of one source are those of its latest ingest: re-ingesting adds no copies."""
    path = wh.rejects_dir / f"{safe_name(source)}.parquet"
    if rejects.num_rows == 0:
        path.unlink(missing_ok=True)
        return
    write_parquet_atomic(rejects.cast(schemas.REJECTS), path)


def record_run(
    wh: Warehouse,
    run_id: str,
    flow: str,
    parameters: dict,
    started_at: datetime,
    status: str,
    counts: dict | None = None,
    finished_at: datetime | None = None,
    message: str | None = None,
) -> None:
    """Write (or overwrite) the one row that describes a run."""
    row = {
        "run_id": [run_id],
        "flow": [flow],
        "parameters": [json.dumps(parameters, default=str, sort_keys=True)],
        "started_at": [started_at],
        "finished_at": [finished_at],
        "status": [status],
        "counts": [json.dumps(counts or {}, default=str, sort_keys=True)],
        "message": [message],
    }
    write_parquet_atomic(pa.table(row, schema=schemas.RUNS), wh.runs_dir / f"{safe_name(run_id)}.parquet")


def predictions_path(wh: Warehouse, run_id: str) -> Path:
    return wh.predictions_dir / f"run={safe_name(run_id)}" / "part-0.parquet"


def write_predictions(wh: Warehouse, run_id: str, table: pa.Table) -> Path:
    """Append a run's predictions; a re-run of the same run id replaces only its own file."""
    return write_parquet_atomic(table.cast(schemas.PREDICTIONS), predictions_path(wh, run_id))


STAGING_PREFIX = ".staging-"


def staging_dir(wh: Warehouse, run_id: str) -> Path:
    """Where the shards of a sharded scoring run put their files: hidden, so no reader sees them."""
    return wh.predictions_dir / f"{STAGING_PREFIX}{predictions_path(wh, run_id).parent.name}"


def stage_predictions(wh: Warehouse, run_id: str, shard: tuple[int, int], table: pa.Table) -> Path:
    """One shard's predictions, invisible until `publish_predictions` (a re-run replaces its file)."""
    i, n = shard
    return write_parquet_atomic(table.cast(schemas.PREDICTIONS), staging_dir(wh, run_id) / f"part-{i}-of-{n}.parquet")


def publish_predictions(wh: Warehouse, run_id: str) -> int:
    """Make every staged shard of a run visible at once (one directory rename); returns the files.

    Called after every shard succeeded: a run with a failed shard is never published, so it
    leaves no predictions visible, like an unsharded run that fails.
    """
    staged = staging_dir(wh, run_id)
    if not staged.exists():
        return 0
    files = len(list(staged.glob("*.parquet")))
    final = predictions_path(wh, run_id).parent
    if final.exists():  # a re-run of the same run id replaces its own predictions
        aside = wh.predictions_dir / f"{STAGING_PREFIX}old-{uuid.uuid4().hex}"
        os.replace(final, aside)
        shutil.rmtree(aside)
    os.replace(staged, final)
    return files


def remove_stale_staging(wh: Warehouse) -> None:
    """Staged shards of runs that never published; call only while holding the writer lock."""
    if wh.predictions_dir.exists():
        for d in wh.predictions_dir.glob(f"{STAGING_PREFIX}*"):
            shutil.rmtree(d, ignore_errors=True)


def read_models(wh: Warehouse) -> pa.Table:
    if not wh.models_registry_path.exists():
        return schemas.MODELS.empty_table()
    return pq.read_table(wh.models_registry_path)


def replace_models(wh: Warehouse, table: pa.Table) -> None:
    write_parquet_atomic(table.cast(schemas.MODELS), wh.models_registry_path)
