"""Compaction of predictions: the same current rows, a smaller read, history kept, crash-safe."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa

from warehouse import schemas
from warehouse.compaction import compact_predictions
from warehouse.current_predictions import compaction_due, read_snapshot
from warehouse.layout import open_warehouse
from warehouse.tables import replace_models, write_predictions
from warehouse.views import connect

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
TARGETS = ["article_type", "gender"]
HISTORY = (  # the old definition: a window over every run ever written
    "SELECT p.* FROM predictions p JOIN models m ON p.model_id = m.model_id AND m.is_current "
    "AND list_contains(m.targets, p.target) QUALIFY row_number() OVER (PARTITION BY p.product_id, p.target "
    "ORDER BY p.scored_at DESC, p.run_id DESC) = 1"
)


def register(wh, current: str, models=("m1", "m2")) -> None:
    rows = [{"model_id": m, "head": "mlp", "target_set": ",".join(TARGETS), "targets": TARGETS, "encoder_ids": ["e"],
             "metrics": "{}", "training_rows": 1, "training_latest_updated_at": T0, "artifact_path": "/nowhere",
             "trained_at": T0, "is_current": m == current} for m in models]
    replace_models(wh, pa.Table.from_pylist(rows, schema=schemas.MODELS))


def score_run(wh, run: str, model: str, day: int, products: range, version: int = 0) -> None:
    rows = [{"run_id": run, "model_id": model, "scored_at": T0 + timedelta(days=day), "product_id": f"p{i}",
             "content_hash": f"h{i}-{version}", "target": t, "label": f"{t}-{model}-{day}", "confidence": 0.5,
             "top_k": [{"label": f"{t}-{model}-{day}", "probability": 0.5}], "value": None, "lower": None, "upper": None}
            for i in products for t in TARGETS]
    write_predictions(wh, run, pa.Table.from_pylist(rows, schema=schemas.PREDICTIONS))


def rows(wh, sql="SELECT * FROM latest_predictions") -> list[tuple]:
    return sorted(connect(wh).execute(sql).fetchall(), key=lambda r: (r[3], r[5]))


def test_compaction_keeps_exactly_the_current_rows_and_the_history(tmp_path):
    wh = open_warehouse(tmp_path)
    register(wh, "m1")
    score_run(wh, "r0", "m1", 0, range(50))
    score_run(wh, "r1", "m1", 1, range(0, 5), version=1)  # 10% churn
    score_run(wh, "r2", "m2", 2, range(50))  # a model that is not current
    before = rows(wh)
    assert before == rows(wh, HISTORY) and len(before) == 50 * 2
    history = connect(wh).execute("SELECT count(*) FROM predictions").fetchone()[0]

    summary = compact_predictions(wh)
    assert summary.rows == 100 and summary.runs_covered == 3
    assert rows(wh) == before
    assert connect(wh).execute("SELECT count(*) FROM predictions").fetchone()[0] == history

    score_run(wh, "r3", "m1", 3, range(3, 8), version=2)  # runs after the snapshot are a delta over it
    assert rows(wh) == rows(wh, HISTORY)
    assert not compaction_due(wh, after_runs=2) and compaction_due(wh, after_runs=1)
    compact_predictions(wh)
    assert rows(wh) == rows(wh, HISTORY) and read_snapshot(wh).runs == {"run=r0", "run=r1", "run=r2", "run=r3"}


def test_a_rollback_to_a_model_the_snapshot_lacks_reads_the_history(tmp_path):
    wh = open_warehouse(tmp_path)
    register(wh, "m1")
    score_run(wh, "r0", "m1", 0, range(20))
    register(wh, "m2")
    score_run(wh, "r1", "m2", 1, range(20))
    compact_predictions(wh)  # holds m2's rows only
    register(wh, "m1")  # `vitrine promote m1`
    assert rows(wh) == rows(wh, HISTORY) and {r[1] for r in rows(wh)} == {"m1"}
    assert compaction_due(wh, after_runs=7)


def test_a_kill_during_compaction_leaves_the_old_snapshot_and_correct_views(tmp_path):
    wh = open_warehouse(tmp_path)
    register(wh, "m1")
    score_run(wh, "r0", "m1", 0, range(50))
    compact_predictions(wh)
    old = wh.predictions_current_path.read_bytes()
    for d in range(1, 4):
        score_run(wh, f"r{d}", "m1", d, range(40_000), version=d)
    expected = rows(wh)
    code = f"from warehouse.compaction import compact_predictions; from warehouse.layout import open_warehouse; compact_predictions(open_warehouse({str(tmp_path)!r}), threads=1)"
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=Path(__file__).resolve().parent.parent)
    folder = wh.predictions_current_path.parent
    deadline = time.monotonic() + 120
    while not any(p.name.startswith(".tmp-") for p in folder.iterdir()):  # mid-write: its temporary exists
        assert proc.poll() is None and time.monotonic() < deadline, "compaction ended before it could be killed"
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert wh.predictions_current_path.read_bytes() == old
    assert rows(wh) == expected
    compact_predictions(wh)
    assert rows(wh) == expected
