"""A simulated year of predictions: do `latest_predictions` reads stay fast as history piles up?

1,000,000 products and 8 targets; 365 nightly scoring runs that each re-score the 1% of products
that changed, and 12 full re-scorings after retrains (one a month, each by a new current model).
Prediction files are written through `warehouse.tables.write_predictions`, exactly as scoring
writes them, and compaction runs as the nightly runs it (`warehouse.compact_after_runs`, default
7). At the end: `SELECT count(*) FROM latest_predictions` and a one-product lookup, through the
compacted snapshot and, for comparison, through the window over the whole history; disk growth.
Goals: count under 5 s, lookup under 200 ms.

    python benchmarks/predictions_year.py --work /tmp/vyear
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import command_line, stamp, write_section  # noqa: E402

from warehouse import schemas  # noqa: E402
from warehouse.compaction import compact_predictions  # noqa: E402
from warehouse.current_predictions import compaction_due  # noqa: E402
from warehouse.layout import open_warehouse  # noqa: E402
from warehouse.tables import replace_models, write_predictions  # noqa: E402
from warehouse.views import connect  # noqa: E402

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
TARGETS = ["master_category", "sub_category", "article_type", "gender", "usage", "base_colour", "season", "brand"]
HISTORY = (
    "SELECT count(*) FROM (SELECT p.* FROM predictions p JOIN models m ON p.model_id = m.model_id AND m.is_current "
    "AND list_contains(m.targets, p.target) QUALIFY row_number() OVER (PARTITION BY p.product_id, p.target "
    "ORDER BY p.scored_at DESC, p.run_id DESC) = 1)"
)


def register(wh, n_models: int) -> None:
    rows = [{"model_id": f"model-{i:02d}", "head": "mlp", "target_set": ",".join(sorted(TARGETS)), "targets": TARGETS,
             "encoder_ids": ["e"], "metrics": "{}", "training_rows": 1, "training_latest_updated_at": T0,
             "artifact_path": "/nowhere", "trained_at": T0 + timedelta(days=30 * i), "is_current": i == n_models - 1}
            for i in range(n_models)]
    replace_models(wh, pa.Table.from_pylist(rows, schema=schemas.MODELS))


def run_table(run: str, model: str, day: int, products: np.ndarray, rng: np.random.Generator) -> pa.Table:
    """One scoring run's rows, built column-wise: every product × every target."""
    n, k = len(products), len(TARGETS)
    pid = pa.array(np.char.add("p", products.astype(str)).repeat(k))
    labels = pa.array(np.char.add("class-", rng.integers(0, 40, n * k).astype(str)))
    if isinstance(labels, pa.ChunkedArray):  # pyarrow chunks large numpy string arrays
        labels = labels.combine_chunks()
    conf = pa.array(rng.random(n * k))
    top = pa.ListArray.from_arrays(pa.array(np.arange(0, n * k + 1, dtype=np.int32)),
                                   pa.StructArray.from_arrays([labels, conf], names=["label", "probability"]))
    const = lambda v, t: pa.array([v] * (n * k), t)  # noqa: E731
    return pa.table({
        "run_id": const(run, pa.string()), "model_id": const(model, pa.string()),
        "scored_at": const(T0 + timedelta(days=day), schemas.TS), "product_id": pid,
        "content_hash": pa.array(np.char.add(f"h{day}-", products.astype(str)).repeat(k)),
        "target": pa.array(np.tile(np.array(TARGETS), n)), "label": labels, "confidence": conf, "top_k": top,
        "value": pa.nulls(n * k, pa.float64()), "lower": pa.nulls(n * k, pa.float64()), "upper": pa.nulls(n * k, pa.float64()),
    }, schema=schemas.PREDICTIONS)


def timed(con, sql: str, reps: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(reps):
        t = time.perf_counter()
        out = con.execute(sql).fetchall()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def disk(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--products", type=int, default=1_000_000)
    ap.add_argument("--nights", type=int, default=365)
    ap.add_argument("--retrains", type=int, default=12)
    ap.add_argument("--churn", type=float, default=0.01)
    ap.add_argument("--compact-after-runs", type=int, default=7)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    wh = open_warehouse(args.work / "wh")
    rng = np.random.default_rng(0)
    everyone = np.arange(args.products)
    retrain_days = set(np.linspace(0, args.nights - 1, args.retrains).astype(int).tolist())
    t0 = time.perf_counter()
    compact_s, compactions, model = [], 0, -1
    for day in range(args.nights):
        if day in retrain_days:  # a retrain: a new current model, and a full re-scoring
            model += 1
            register(wh, model + 1)
            who = everyone
        else:
            who = np.sort(rng.choice(everyone, int(args.products * args.churn), replace=False))
        write_predictions(wh, f"night-{day:03d}", run_table(f"night-{day:03d}", f"model-{model:02d}", day, who, rng))
        if compaction_due(wh, args.compact_after_runs):
            t = time.perf_counter()
            compact_predictions(wh)
            compact_s.append(time.perf_counter() - t)
            compactions += 1
        if day % 30 == 0:
            print(f"day {day}: {time.perf_counter() - t0:.0f}s, {disk(wh.root):.0f} MB", flush=True)
    build_s = time.perf_counter() - t0
    con = connect(wh)
    rows = args.products * len(TARGETS)
    count_s, (count,) = timed(con, "SELECT count(*) FROM latest_predictions", 5)
    look = f"SELECT * FROM latest_predictions WHERE product_id = 'p{args.products // 2}'"
    look_s, got = timed(con, look, 5)
    assert count[0] == rows and len(got) == len(TARGETS), (count, len(got))
    hist_s, (hcount,) = timed(con, HISTORY, 1)
    hlook_s, _ = timed(con, HISTORY.replace("SELECT count(*) FROM (", "SELECT * FROM (").replace(") = 1)", ") = 1) WHERE product_id = " + look.split("= ")[-1]), 1)
    total_rows = con.execute("SELECT count(*) FROM predictions").fetchone()[0]
    cmd = command_line(__file__)
    body = (
        stamp(cmd) + f"\n{args.products:,} products × {len(TARGETS)} targets; {args.nights} nightly runs re-scoring "
        f"{args.churn:.0%} of products each, {args.retrains} of them full re-scorings by a new current model; "
        f"{total_rows:,} prediction rows in all, written in {build_s:.0f}s including {compactions} compactions "
        f"(nightly policy: after {args.compact_after_runs} runs; median {statistics.median(compact_s):.1f}s, "
        f"longest {max(compact_s):.1f}s). Disk: `predictions/` {disk(wh.predictions_dir):.0f} MB (the whole "
        f"history), `predictions_current/` {disk(wh.predictions_current_path.parent):.0f} MB. Times are medians "
        "of 5 on a fresh in-memory DuckDB connection (`warehouse.views.connect`), 2 cores.\n\n"
        "| query | through the compacted snapshot | window over the whole history (before compaction existed) | goal |\n"
        "|---|---|---|---|\n"
        f"| `SELECT count(*) FROM latest_predictions` ({count[0]:,} rows) | **{count_s:.2f} s** | {hist_s:.2f} s | < 5 s |\n"
        f"| one product's {len(TARGETS)} rows | **{look_s * 1000:.0f} ms** | {hlook_s * 1000:.0f} ms | < 200 ms |\n"
    )
    print(body)
    if not args.no_write:
        write_section("Predictions over a year", body)


if __name__ == "__main__":
    main()
