"""Prefect flows over the plain functions of warehouse/, features/ and heads/.

Each flow takes the settings as a JSON-able dict (or a config path, for deployments), holds the
warehouse writer lock for its whole run (a second run at once waits `lock_timeout_s`, then stops
with a clear message), and records itself in the `runs` table. Tasks only call the rooms'
functions: everything a test wants is testable without Prefect.
"""
from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.task_runners import ThreadPoolTaskRunner

from flows.settings import Settings, load_settings, write_session_for
from warehouse import open_warehouse
from warehouse.current_predictions import compaction_due


def resolve_settings(settings: dict | Settings | None = None, config: str | None = None) -> Settings:
    if isinstance(settings, Settings):
        return settings
    if settings:
        return Settings.model_validate(settings)
    return load_settings(config)


def _open(s: Settings):
    return open_warehouse(s.warehouse.path)


# -- tasks ----------------------------------------------------------------------------------


@task(name="ingest")
def ingest_task(settings: dict, source: str) -> dict:
    from warehouse.ingest import ingest

    s = resolve_settings(settings)
    return ingest(_open(s), source, s.ingest).as_dict()


@task(name="encode-shard")
def encode_shard(settings: dict, shard: tuple[int, int]) -> list[dict]:
    from features.encode import encode

    s = resolve_settings(settings)
    reports = encode(_open(s), s.encoders, s.encode, shard=tuple(shard), progress=False)
    return [{k: v for k, v in asdict(r).items() if k != "failed"} | {"failed": len(r.failed)} for r in reports]


@task(name="train")
def train_task(settings: dict, head: str | None, targets: list[str] | None) -> list[dict]:
    from heads.train import train

    s = resolve_settings(settings)
    return [{"model_id": m.model_id, "head": m.head, "targets": list(m.targets)} for m in train(_open(s), s, head=head, targets=targets, progress=False)]


@task(name="score")
def score_task(settings: dict, run_id: str, rescore_all: bool, shard: tuple[int, int] | None = None) -> dict:
    from heads.score import score

    s = resolve_settings(settings)
    return score(_open(s), s, run_id, rescore_all=rescore_all, shard=tuple(shard) if shard else None).as_dict()


@task(name="compact-predictions")
def compact_task(settings: dict) -> dict:
    from warehouse.compaction import compact_predictions

    s = resolve_settings(settings)
    return compact_predictions(_open(s)).as_dict()


@task(name="similar-index")
def index_task(settings: dict) -> dict:
    """Bring the approximate index up to date where the config uses one (mode on, or auto at auto_rows)."""
    from features.search import wants_index
    from features.vector_index import build_indexes

    s = resolve_settings(settings)
    wh = _open(s)
    names = list(s.similar.encoders)
    if not wants_index(wh, s.encoders, s.similar, names):
        return {"skipped": f"similar.index.mode {s.similar.index.mode}"}
    return {r.name: r.as_dict() for r in build_indexes(wh, s.encoders, s.similar.index, names)}


@task(name="duplicates")
def duplicates_task(settings: dict, run_id: str) -> dict:
    from features.duplicates import find_duplicates

    s = resolve_settings(settings)
    return find_duplicates(_open(s), s.encoders, s.similar.duplicates, run_id).as_dict()


def _retrying(t, s: Settings):
    return t.with_options(retries=s.runner.retries, retry_delay_seconds=s.runner.retry_delay_s)


def encode_sharded(s: Settings) -> dict:
    """Split encoding into `encode.shards` tasks; they write disjoint chunks, so order is free."""
    sd = s.model_dump(mode="json")
    n = s.encode.shards
    futures = [_retrying(encode_shard, s).submit(sd, (i, n)) for i in range(n)]
    totals: dict[str, dict] = {}
    for f in futures:
        for r in f.result():
            keys = ("candidates", "already_stored", "encoded", "reused", "skipped_no_input", "failed")
            t = totals.setdefault(r["name"], {"encoder_id": r["encoder_id"], **{k: 0 for k in keys}})
            for k in keys:
                t[k] += r[k]
    return totals


def score_sharded(s: Settings, run_id: str, rescore_all: bool) -> dict:
    """Split scoring into `score.shards` tasks; their files become visible together, or not at all."""
    from warehouse.tables import publish_predictions

    sd = s.model_dump(mode="json")
    n = s.score.shards
    if n == 1:
        return _retrying(score_task, s)(sd, run_id, rescore_all)
    futures = [_retrying(score_task, s).submit(sd, run_id, rescore_all, (i, n)) for i in range(n)]
    parts = [f.result() for f in futures]
    publish_predictions(_open(s), run_id)
    total = {k: sum(p[k] for p in parts) for k in ("products", "to_score", "scored", "skipped_no_vectors", "rows_written")}
    return {"run_id": run_id, "models": parts[0]["models"], **total, "seconds": max(p["seconds"] for p in parts), "shards": n}


# -- flows ----------------------------------------------------------------------------------


@flow(name="vitrine-ingest")
def ingest_flow(source: str, settings: dict | None = None, config: str | None = None) -> dict:
    s = resolve_settings(settings, config)
    with write_session_for(s, "ingest", {"source": source}) as run:
        run.counts = _retrying(ingest_task, s)(s.model_dump(mode="json"), source)
    return run.counts


@flow(name="vitrine-encode")
def encode_flow(settings: dict | None = None, config: str | None = None) -> dict:
    s = resolve_settings(settings, config)
    with write_session_for(s, "encode", {"shards": s.encode.shards}) as run:
        run.counts = encode_sharded(s)
    return run.counts


@flow(name="vitrine-train")
def train_flow(settings: dict | None = None, config: str | None = None, head: str | None = None, targets: list[str] | None = None) -> dict:
    s = resolve_settings(settings, config)
    with write_session_for(s, "train", {"head": head, "targets": targets}) as run:
        run.counts = {"models": train_task(s.model_dump(mode="json"), head, targets)}
    return run.counts


@flow(name="vitrine-score")
def score_flow(settings: dict | None = None, config: str | None = None, rescore_all: bool = False) -> dict:
    s = resolve_settings(settings, config)
    with write_session_for(s, "score", {"rescore_all": rescore_all}) as run:
        run.counts = score_sharded(s, run.run_id, rescore_all)
    return run.counts


@flow(name="vitrine-nightly")
def nightly(source: str | None = None, settings: dict | None = None, config: str | None = None) -> dict:
    """Ingest the snapshot → encode what changed → score what has no prediction → summary.

    Then, where the config asks: the similarity index brought up to date, near-duplicates among
    the new and changed products.
    """
    s = resolve_settings(settings, config)
    source = source or (str(s.schedule.source) if s.schedule.source else None)
    if source is None:
        raise ValueError("nightly needs a source: pass source= or set schedule.source in the config")
    sd = s.model_dump(mode="json")
    summary: dict[str, Any] = {"source": source, "seconds": {}}
    with write_session_for(s, "nightly", {"source": source}) as run:
        summary["run_id"] = run.run_id
        t = time.perf_counter()
        summary["ingest"] = _retrying(ingest_task, s)(sd, source)
        summary["seconds"]["ingest"] = round(time.perf_counter() - t, 2)
        t = time.perf_counter()
        summary["encode"] = encode_sharded(s)
        summary["seconds"]["encode"] = round(time.perf_counter() - t, 2)
        t = time.perf_counter()
        summary["score"] = score_sharded(s, run.run_id, False)
        summary["seconds"]["score"] = round(time.perf_counter() - t, 2)
        if compaction_due(_open(s), s.warehouse.compact_after_runs):
            t = time.perf_counter()
            summary["compact"] = compact_task(sd)
            summary["seconds"]["compact"] = round(time.perf_counter() - t, 2)
        if s.similar.index.mode != "off":
            t = time.perf_counter()
            summary["index"] = index_task(sd)
            summary["seconds"]["index"] = round(time.perf_counter() - t, 2)
        if s.similar.duplicates.nightly:
            t = time.perf_counter()
            summary["duplicates"] = duplicates_task(sd, run.run_id)
            summary["seconds"]["duplicates"] = round(time.perf_counter() - t, 2)
        run.counts = summary
    summary["top_candidates"] = top_candidates(s)
    _publish(summary)
    return summary


def top_candidates(s: Settings, limit: int = 10) -> list[dict]:
    from warehouse.views import connect

    con = connect(_open(s), s.score.reclass_threshold)
    cur = con.execute(
        "SELECT rank, product_id, title, target, seller_label, suggested_label, round(confidence, 3) AS confidence, "
        f"source FROM reclassification_candidates ORDER BY rank LIMIT {int(limit)}"
    )
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def summary_markdown(summary: dict) -> str:
    ing, sc = summary["ingest"], summary["score"]
    lines = [
        f"# vitrine nightly `{summary['run_id']}`",
        "",
        f"Source: `{summary['source']}`",
        "",
        "| step | seconds | counts |",
        "|---|---|---|",
        f"| ingest | {summary['seconds']['ingest']} | new {ing['new']}, updated {ing['updated']}, deleted {ing.get('deleted', 0)}, unchanged {ing['unchanged']}, rejected {ing['rejected']}, images missing {ing['images_missing']} |",
        f"| encode | {summary['seconds']['encode']} | "
        + ", ".join(f"{k}: {v['encoded']} encoded ({v['already_stored']} already stored)" for k, v in summary["encode"].items())
        + " |",
        f"| score | {summary['seconds']['score']} | {sc['scored']} products scored, {sc['rows_written']} prediction rows |",
    ] + ([
        f"| duplicates | {summary['seconds']['duplicates']} | {summary['duplicates']['compared']} new or changed products "
        f"compared, {summary['duplicates']['pairs']} new pairs (`duplicate_pairs`) |",
    ] if "duplicates" in summary else []) + [
        "",
        "## Top reclassification candidates",
        "",
        "Most likely wrong first; work through them with `vitrine review`.",
        "",
        "| rank | product | title | target | seller | suggested | confidence | judged by |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in summary["top_candidates"]:
        lines.append(f"| {c['rank']} | {c['product_id']} | {c['title']} | {c['target']} | {c['seller_label']} | "
                     f"{c['suggested_label']} | {c['confidence']} | {c['source'].replace('_', '-')} |")
    return "\n".join(lines)


def _publish(summary: dict) -> None:
    """The run summary as a Prefect artifact; a failure to publish never fails the run."""
    try:
        aid = create_markdown_artifact(key="vitrine-nightly-summary", markdown=summary_markdown(summary), description="vitrine nightly run summary")
        summary["artifact_id"] = str(aid)
    except Exception as e:  # the run's data is already committed; the artifact is a convenience
        summary["artifact_error"] = str(e)


@flow(name="vitrine-compact")
def compact_flow(settings: dict | None = None, config: str | None = None) -> dict:
    s = resolve_settings(settings, config)
    with write_session_for(s, "compact", {}) as run:
        run.counts = compact_task(s.model_dump(mode="json"))
    return run.counts


FLOWS = {"nightly": nightly, "ingest": ingest_flow, "encode": encode_flow, "train": train_flow, "score": score_flow,
         "compact": compact_flow}


def task_runner(s: Settings):
    """Threads by default; Dask (prefect-dask) for a cluster or a local one with N workers."""
    if s.runner.task_runner == "dask":
        from prefect_dask import DaskTaskRunner

        if s.runner.dask_address:
            return DaskTaskRunner(address=s.runner.dask_address)
        return DaskTaskRunner(cluster_kwargs={"n_workers": s.runner.dask_workers, "threads_per_worker": 1, "processes": True})
    return ThreadPoolTaskRunner(max_workers=max(1, s.encode.shards, s.score.shards))


def run_flow(name: str, s: Settings, **kwargs) -> dict:
    """Run one flow once, in this process, with the configured task runner."""
    f = FLOWS[name].with_options(task_runner=task_runner(s))
    return f(settings=s.model_dump(mode="json"), **kwargs)
