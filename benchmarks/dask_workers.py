"""Encode and score on Dask: one local worker against two, through the real Prefect flows.

A sample of real Fashion Product Images products is ingested, encoded and a head trained once
(threads); then, for each worker count, a hard-linked copy of that warehouse without its vectors
is encoded (`vitrine-encode`, `encode.shards` shards) and scored (`vitrine-score`,
`score.shards`) with `runner.task_runner: dask` and a local cluster of that many worker
processes, each given cores / workers torch threads. Wall time per step, cluster start included.

    HF_HOME=$PWD/.hf-cache python benchmarks/dask_workers.py --products 3000 --work /tmp/vdask
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from flows.flows import run_flow  # noqa: E402
from flows.settings import Settings, load_settings  # noqa: E402
from quality import sample_fashion  # noqa: E402
from report import command_line, stamp, write_section  # noqa: E402


def with_runner(s: Settings, root: Path, workers: int | None) -> Settings:
    cores = len(os.sched_getaffinity(0))
    runner = {"task_runner": "dask", "dask_workers": workers} if workers else {"task_runner": "threads"}
    shards = max(workers or 1, 1)
    return s.model_copy(update={
        "warehouse": s.warehouse.model_copy(update={"path": root}),
        "runner": s.runner.model_copy(update=runner),
        "encode": s.encode.model_copy(update={"shards": shards, "threads": max(cores // shards, 1), "num_workers": 0}),
        "score": s.score.model_copy(update={"shards": shards}),
    })


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--products", type=int, default=3000)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args(argv)
    base_settings = load_settings(ROOT / "configs" / "demo.yaml")
    shutil.rmtree(a.work, ignore_errors=True)
    a.work.mkdir(parents=True)
    catalog = sample_fashion(a.products, a.work, seed=0)
    base = with_runner(base_settings, a.work / "base", None)
    run_flow("ingest", base, source=str(catalog))
    run_flow("encode", base)
    run_flow("train", base)
    rows = []
    for w in [int(x) for x in a.workers.split(",")]:
        root = a.work / f"workers-{w}"
        shutil.copytree(a.work / "base", root, copy_function=os.link, ignore=shutil.ignore_patterns("embeddings"))
        s = with_runner(base_settings, root, w)
        t = time.perf_counter()
        enc = run_flow("encode", s)
        t_enc = time.perf_counter() - t
        t = time.perf_counter()
        sc = run_flow("score", s)
        t_score = time.perf_counter() - t
        encoded = sum(v.get("encoded", 0) for v in enc.values() if isinstance(v, dict))
        rows.append((w, encoded, t_enc, sc.get("scored", 0), t_score))
        print(rows[-1], flush=True)
    first = rows[0]
    lines = [stamp(command_line(__file__, argv)), "",
             f"{a.products} Fashion Product Images products, `configs/demo.yaml` encoders (EfficientNet-Lite0 photo, "
             "MiniLM title, two hashed title encoders), the registered MLP; a local Dask cluster "
             "(`runner.task_runner: dask`, `runner.dask_workers` N), `encode.shards` = `score.shards` = N, "
             "cores / N torch threads per worker. Seconds are wall time of the flow, cluster start included.", "",
             "| workers | vectors encoded | encode s | products scored | score s | encode speed-up |",
             "|---|---|---|---|---|---|"]
    for w, n, te, ns, ts in rows:
        lines.append(f"| {w} | {n} | {te:.1f} | {ns} | {ts:.1f} | {first[2] / te:.2f}× |")
    lines += ["", "On one 2-core machine two workers share the same cores: this measures the cost of "
              "sharding and the cluster, not the gain of a second host (none here)."]
    body = "\n".join(lines)
    print(body)
    if not a.no_write:
        write_section("Dask: one local worker against two", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
