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
import os
import time
import uuid
from dataclasses import asdict, dataclass

import pyarrow.parquet as pq

from warehouse.atomic import TMP_PREFIX, fsync_dir
from warehouse.current_predictions import MODELS_KEY, RUNS_KEY, current_model_ids, run_files, usable_snapshot
from warehouse.layout import Warehouse
from warehouse.views import connect


@dataclass
class CompactionSummary:
    rows: int
    runs_covered: int
    runs_before: int  # delta runs the previous snapshot did not cover
    seconds: float

    def as_dict(self) -> dict:
        return asdict(self)


def _lit(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


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
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f"{TMP_PREFIX}{uuid.uuid4().hex}-{path.name}"
    kv = f"{{{_lit(RUNS_KEY)}: {_lit(json.dumps(runs))}, {_lit(MODELS_KEY)}: {_lit(json.dumps(models))}}}"
    try:
        con.execute(
            f"COPY (SELECT * FROM latest_predictions ORDER BY target, product_id) TO {_lit(str(tmp))} "
            f"(FORMAT parquet, COMPRESSION zstd, KV_METADATA {kv})"
        )
        con.close()
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    rows = pq.ParquetFile(path).metadata.num_rows
    return CompactionSummary(rows, len(runs), len(delta), round(time.perf_counter() - t0, 3))
