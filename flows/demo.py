"""`vitrine demo`: the whole path on real products bundled in the repo, in a few minutes.

Plain calls to the rooms' functions (no Prefect server needed), each in a write session so the
demo warehouse looks exactly like a production one afterwards.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from flows.settings import Settings, write_session_for
from warehouse import open_warehouse
from warehouse.errors import VitrineError
from warehouse.views import connect

SAMPLE = Path(__file__).resolve().parent / "sample"

QUERIES = [
    (
        "How sure is the model, per target?",
        "SELECT target, count(*) AS products, round(avg(confidence), 3) AS mean_confidence "
        "FROM latest_predictions WHERE label IS NOT NULL GROUP BY target ORDER BY target",
    ),
    (
        "Listings whose seller-set article type is most likely wrong (vitrine review lists the whole queue)",
        "SELECT rank, product_id, title, seller_label, suggested_label, round(confidence, 2) AS confidence, source "
        "FROM reclassification_candidates WHERE target = 'article_type' ORDER BY rank LIMIT 10",
    ),
    (
        "Which seller categories are most often disputed?",
        "SELECT target, seller_label, suggested_label, count(*) AS n FROM reclassification_candidates "
        "GROUP BY ALL ORDER BY n DESC LIMIT 10",
    ),
]


def _fresh(path: Path) -> None:
    """Wipe a previous demo warehouse, but never a folder that is not one."""
    if not path.exists():
        return
    if not ((path / "vitrine.duckdb").exists() or (path / "products").exists()):
        raise VitrineError(f"{path} exists and is not a vitrine warehouse; choose another --warehouse")
    shutil.rmtree(path)


def run_demo(settings: Settings, fresh: bool = True, console: Console | None = None, config_hint: str = "configs/demo.yaml") -> dict:
    from features.encode import encode
    from heads.score import score
    from heads.train import train
    from warehouse.ingest import ingest

    console = console or Console()
    s = settings
    if fresh:
        _fresh(Path(s.warehouse.path))
    wh = open_warehouse(s.warehouse.path)
    timings: dict[str, float] = {}

    def step(name: str):
        console.rule(f"[bold]{name}")
        return write_session_for(s, name, {"demo": True})

    t = time.perf_counter()
    with step("ingest") as run:
        ing = ingest(wh, SAMPLE, s.ingest)
        run.counts = ing.as_dict()
    console.print(f"{ing.new} new products, {ing.repaired} rows repaired, {ing.rejected} rejected, {ing.images_missing} images missing")
    timings["ingest"] = time.perf_counter() - t

    t = time.perf_counter()
    with step("encode") as run:
        reports = encode(wh, s.encoders, s.encode, progress=True)
        run.counts = {r.name: r.encoded for r in reports}
    for r in reports:
        console.print(f"{r.name}: {r.encoded} vectors from {r.encoder_id} ({r.dim}-d) in {r.seconds:.1f}s")
    timings["encode"] = time.perf_counter() - t

    t = time.perf_counter()
    with step("train") as run:
        models = train(wh, s, head=None, progress=True)
        run.counts = {"models": [m.model_id for m in models]}
    timings["train"] = time.perf_counter() - t

    t = time.perf_counter()
    with step("score") as run:
        sc = score(wh, s, run.run_id)
        run.counts = sc.as_dict()
    timings["score"] = time.perf_counter() - t

    con = connect(wh, s.score.reclass_threshold)
    console.rule("[bold]results")
    current = next(m for m in models if m.is_current)
    t = Table("target", "test accuracy", "macro-F1", "top-3 accuracy", "test rows", title=f"current model {current.model_id} ({current.head}), held-out test split")
    for target, parts in current.metrics["targets"].items():
        m = parts["test"]
        if "accuracy" in m:
            t.add_row(target, f"{m['accuracy']:.3f}", f"{m['macro_f1']:.3f}", f"{m['top3_accuracy']:.3f}", str(m["n"]))
    console.print(t)
    for target, why in getattr(models, "skipped", {}).items():
        console.print(f"[dim]skipped {target}: {why}[/]")
    cur = con.execute(
        "SELECT p.product_id, p.title, p.article_type AS seller_says, lp.label AS model_says, round(lp.confidence, 2) AS confidence "
        "FROM latest_predictions lp JOIN products p USING (product_id) WHERE lp.target = 'article_type' "
        "ORDER BY hash(p.product_id) LIMIT 8"
    )
    t = Table(*[d[0] for d in cur.description], title="a few predictions next to the seller's label")
    for row in cur.fetchall():
        t.add_row(*(str(v) for v in row))
    console.print(t)
    n_cand = con.execute("SELECT count(*) FROM reclassification_candidates").fetchone()[0]
    console.print(
        f"[bold]{n_cand}[/] reclassification candidates (seller label ≠ prediction with confidence ≥ {s.score.reclass_threshold})"
    )
    console.print("time: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))
    console.rule("[bold]try these")
    for title, q in QUERIES:
        console.print(f"# {title}\nvitrine --config {config_hint} sql \"{q}\"\n", soft_wrap=True, highlight=False)
    return {"timings": timings, "candidates": n_cand, "models": [m.model_id for m in models], "scored": sc.scored}
