"""Compaction: the current row per (product, target) written to one file, history untouched.

Every scoring run appends one file to `predictions`, and every row stays there: that is the
history. Reading the current prediction of a product from it means a window over every run
ever written, which grows by a full catalog at each retrain. Compaction writes
`predictions_current/current.parquet` instead (read by `warehouse.current_predictions`). The run
files it covered are named in that file's own Parquet metadata, so the snapshot and the record of
what it covers change in one atomic rename; a crash mid-way leaves a hidden temporary (removed by
the next writer) and the old snapshot.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass

import pyarrow.parquet as pq

from warehouse.atomic import atomic_path
from warehouse.current_predictions import MODELS_KEY, RUNS_KEY, current_model_ids, run_files, usable_snapshot
from warehouse.layout import Warehouse
from warehouse.schemas import sql_literal
from warehouse.views import connect


@dataclass
class CompactionSummary:
    rows: int
    runs_covered: int
    runs_before: int  # delta runs the previous snapshot did not cover
    seconds: float

    def as_dict(self) -> dict:
        return asdict(self)


def compact_predictions(wh: Warehouse, threads: int | None = None) -> CompactionSummary:
    """Rewrite the snapshot from the old one and the runs since; the caller holds the writer lock."""
    t0 = time.perf_counter()
    con = connect(wh)  # the views as they are now: `latest_predictions` is what the snapshot must hold
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    _, delta = usable_snapshot(wh)
    runs = sorted({f.parent.name for f in run_files(wh)})
    models = sorted(current_model_ids(wh))
    path = wh.predictions_current_path
    kv = f"{{{sql_literal(RUNS_KEY)}: {sql_literal(json.dumps(runs))}, {sql_literal(MODELS_KEY)}: {sql_literal(json.dumps(models))}}}"
    with atomic_path(path) as tmp:
        con.execute(
            f"COPY (SELECT * FROM latest_predictions ORDER BY target, product_id) TO {sql_literal(str(tmp))} "
            f"(FORMAT parquet, COMPRESSION zstd, KV_METADATA {kv})"
        )
        con.close()
    rows = pq.ParquetFile(path).metadata.num_rows
    return CompactionSummary(rows, len(runs), len(delta), round(time.perf_counter() - t0, 3))
