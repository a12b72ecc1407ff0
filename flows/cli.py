"""The `vitrine` command: thin wiring from arguments to the rooms' functions.

Every command that writes goes through warehouse.session.write_session (lock + run row + views).
Errors a user can fix (VitrineError) are printed as one message and exit code 2, never a traceback.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from flows.console import FORMATS, console, out, print_rows
from flows.settings import Settings, load_settings, write_session_for
from warehouse import open_warehouse
from warehouse.errors import VitrineError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="vitrine: embeddings once, light heads, predictions in DuckDB.")


def _settings(ctx: typer.Context) -> Settings:
    return ctx.obj["settings"]


@app.callback()
def main_options(
    ctx: typer.Context,
    config: Annotated[Optional[Path], typer.Option("--config", envvar="VITRINE_CONFIG", help="YAML config file")] = None,
    warehouse: Annotated[Optional[Path], typer.Option("--warehouse", envvar="VITRINE_WAREHOUSE", help="warehouse directory")] = None,
) -> None:
    ctx.obj = {"settings": load_settings(config, warehouse), "config": config, "warehouse": warehouse}


def session(settings: Settings, flow: str, parameters: dict):
    return open_warehouse(settings.warehouse.path), write_session_for(settings, flow, parameters)


def progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console,
    )


# -- ingest / sql / status --------------------------------------------------------------------


@app.command()
def ingest(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="catalog folder or CSV/Parquet file")],
    preset: Annotated[Optional[str], typer.Option(help="fashion-product-images | myntra | generic | auto")] = None,
    full_snapshot: Annotated[Optional[bool], typer.Option(
        "--full-snapshot/--delta", help="the file lists its source's whole catalog: delete the products it lacks "
        "(default: ingest.full_snapshot, off)")] = None,
) -> None:
    """Validate a catalog snapshot and merge it into products (bad rows go to rejects)."""
    from warehouse.ingest import ingest as run_ingest

    s = _settings(ctx)
    if preset not in (None, "auto", "fashion-product-images", "myntra", "generic"):
        raise VitrineError(f"unknown preset {preset!r}: use fashion-product-images, myntra, generic or auto")
    wh, sess = session(s, "ingest", {"path": str(path), "preset": preset or s.ingest.preset, "full_snapshot": full_snapshot})
    with sess as run, progress_bar() as bar:
        task = bar.add_task("checking images", total=None)

        def on_progress(stage: str, advance: int, total: int | None) -> None:
            bar.update(task, advance=advance, total=total)

        summary = run_ingest(wh, path, s.ingest, preset, on_progress, full_snapshot)
        run.counts = summary.as_dict()
    print_summary("ingest", summary.as_dict(), keys=["new", "updated", "unchanged", "deleted", "repaired", "rejected", "images_missing", "images_unreadable", "seconds"])
    if summary.rejected:
        console.print(f"[yellow]{summary.rejected} rows rejected[/]: vitrine sql \"SELECT line, reason, raw FROM rejects\"")


def print_summary(title: str, data: dict, keys: list[str] | None = None) -> None:
    t = Table(title=title, show_header=False)
    for k in keys or list(data):
        t.add_row(k.replace("_", " "), str(data.get(k)))
    out.print(t)


@app.command()
def sql(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(help="DuckDB SQL over products, rejects, runs, predictions, ...")],
    format: Annotated[str, typer.Option("--format", help="table | csv | json")] = "table",
) -> None:
    """Run DuckDB SQL over the warehouse's tables and views (never blocks a writer)."""
    import duckdb

    from warehouse.views import connect

    s = _settings(ctx)
    if format not in FORMATS:
        raise VitrineError(f"unknown format {format!r}: use table, csv or json")
    from flows.settings import similar_sql

    con = connect(open_warehouse(s.warehouse.path), s.score.reclass_threshold, similar_sql(s))
    try:
        cur = con.execute(query)
    except duckdb.Error as e:
        raise VitrineError(f"query failed: {e}") from None
    if cur.description is None:
        return
    print_rows([d[0] for d in cur.description], cur.fetchall(), format)


@app.command()
def status(ctx: typer.Context) -> None:
    """Row counts of every table and the last runs."""
    from warehouse.views import connect

    s = _settings(ctx)
    wh = open_warehouse(s.warehouse.path)
    con = connect(wh, s.score.reclass_threshold)
    t = Table("table", "rows", title=f"warehouse {wh.root}")
    for name in ("products", "rejects", "predictions", "latest_predictions", "reclassification_candidates", "models"):
        t.add_row(name, str(con.execute(f"SELECT count(*) FROM {name}").fetchone()[0]))
    for enc, dim, view, n in con.execute("SELECT * FROM encoders ORDER BY encoder_id").fetchall():
        t.add_row(f"{view} ({dim}-d)", str(n))
    out.print(t)
    runs = con.execute(
        "SELECT run_id, flow, status, started_at, finished_at, message FROM runs ORDER BY started_at DESC LIMIT 10"
    ).fetchall()
    r = Table("run", "flow", "status", "started", "finished", "message", title="last runs")
    for row in runs:
        r.add_row(*("" if v is None else str(v) for v in row))
    out.print(r)


# -- encode / train / models / evaluate / predict ------------------------------------------------


@app.command()
def encode(
    ctx: typer.Context,
    encoder: Annotated[Optional[list[str]], typer.Option("--encoder", help="encoder name from the config (repeatable)")] = None,
) -> None:
    """Encode every product whose current content has no vector yet."""
    from features.encode import encode as run_encode

    s = _settings(ctx)
    unknown = [e for e in encoder or [] if e not in s.encoders]
    if unknown:
        raise VitrineError(f"unknown encoder {unknown}: the config declares {sorted(s.encoders)}")
    wh, sess = session(s, "encode", {"encoders": encoder or sorted(s.encoders)})
    with sess as run:
        reports = run_encode(wh, s.encoders, s.encode, names=encoder or None, progress=True)
        run.counts = {r.name: {"encoded": r.encoded, "reused": r.reused, "already_stored": r.already_stored,
                               "failed": len(r.failed)} for r in reports}
    t = Table("encoder", "id", "dim", "candidates", "already stored", "encoded", "of which reused", "no input", "failed",
              "seconds", title="encode")
    for r in reports:
        t.add_row(r.name, r.encoder_id, str(r.dim), str(r.candidates), str(r.already_stored), str(r.encoded), str(r.reused),
                  str(r.skipped_no_input), str(len(r.failed)), f"{r.seconds:.1f}")
    out.print(t)
    for r in reports:
        for pid, why in r.failed[:10]:
            console.print(f"[yellow]{r.name}: product {pid}: {why}[/]")


@app.command()
def train(
    ctx: typer.Context,
    head: Annotated[Optional[str], typer.Option(help="mlp | lightgbm | linear | knn | blend | both (default: the config's train.heads)")] = None,
    target: Annotated[Optional[list[str]], typer.Option("--target", help="train only these targets (repeatable)")] = None,
) -> None:
    """Train heads on the stored embeddings and register them (the better one becomes current)."""
    from heads.train import train as run_train

    s = _settings(ctx)
    from heads.predict import HEADS

    if head is not None and head not in (*HEADS, "both"):
        raise VitrineError(f"unknown head {head!r}: use {', '.join(HEADS)} or both")
    wh, sess = session(s, "train", {"head": head or list(s.train.heads), "targets": target})
    with sess as run:
        models = run_train(wh, s, head=head, targets=target or None, progress=True)
        run.counts = {"models": [m.model_id for m in models]}
    for m in models:
        out.print(f"[bold]{m.model_id}[/] ({m.head}) targets {', '.join(m.targets)} → report {m.report_path}")


@app.command()
def models(ctx: typer.Context) -> None:
    """List registered models; the current one per target set is marked."""
    from heads.registry import list_models

    s = _settings(ctx)
    rows = list_models(open_warehouse(s.warehouse.path))
    t = Table("current", "head", "targets", "rows", "trained_at")
    t.add_column("model_id", no_wrap=True)
    for m in rows:
        t.add_row("✓" if m["is_current"] else "", m["head"], ", ".join(m["targets"]), str(m["training_rows"]), str(m["trained_at"])[:19], m["model_id"])
    out.print(t)


@app.command()
def promote(ctx: typer.Context, model_id: str) -> None:
    """Make MODEL_ID the current model of its target set (e.g. roll back); the next run re-scores."""
    from heads.registry import set_current

    s = _settings(ctx)
    wh, sess = session(s, "promote", {"model_id": model_id})
    with sess:
        set_current(wh, model_id)
    out.print(f"{model_id} is now current; `vitrine predict` re-scores every product with it")


@app.command()
def evaluate(ctx: typer.Context, model_id: str) -> None:
    """Print a model's evaluation report (metrics on its held-out test split)."""
    from heads.evaluate import evaluate as run_evaluate

    s = _settings(ctx)
    report = run_evaluate(open_warehouse(s.warehouse.path), model_id)
    p = Path(str(report))
    out.print(p.read_text() if len(str(report)) < 4096 and p.is_file() else report)


@app.command()
def predict(
    ctx: typer.Context,
    all: Annotated[bool, typer.Option("--all", help="re-score every product, not only new content")] = False,
) -> None:
    """Score every product whose current content has no prediction from the current model."""
    from heads.score import score

    s = _settings(ctx)
    wh, sess = session(s, "score", {"all": all})
    with sess as run:
        summary = score(wh, s, run.run_id, rescore_all=all)
        run.counts = summary.as_dict()
    print_summary("predict", summary.as_dict())


@app.command()
def compact(ctx: typer.Context) -> None:
    """Compact predictions: the current row per product and target in one file (history kept)."""
    from warehouse.compaction import compact_predictions

    s = _settings(ctx)
    wh, sess = session(s, "compact", {})
    with sess as run:
        summary = compact_predictions(wh)
        run.counts = summary.as_dict()
    print_summary("compact", summary.as_dict())


# -- flows ----------------------------------------------------------------------------------


@app.command()
def run(
    ctx: typer.Context,
    flow: Annotated[str, typer.Argument(help="nightly | ingest | encode | train | score | compact")],
    source: Annotated[Optional[Path], typer.Option(help="catalog snapshot to ingest (nightly, ingest)")] = None,
) -> None:
    """Run one Prefect flow once, locally (an ephemeral Prefect API, no server to start)."""
    from flows.flows import FLOWS, run_flow

    s = _settings(ctx)
    if flow not in FLOWS:
        raise VitrineError(f"unknown flow {flow!r}: use {', '.join(FLOWS)}")
    source = source or s.schedule.source
    if flow in ("nightly", "ingest") and source is None:
        raise VitrineError(f"'{flow}' needs --source PATH (or schedule.source in the config)")
    kwargs = {"source": str(source)} if flow in ("nightly", "ingest") else {}
    result = run_flow(flow, s, **kwargs)
    out.print_json(json.dumps(result, default=str))


@app.command()
def serve(ctx: typer.Context) -> None:
    """Serve the deployments (nightly on its cron schedule, and the other flows) from this process."""
    from flows.deployments import serve_all

    serve_all(_settings(ctx))


@app.command()
def demo(
    ctx: typer.Context,
    fresh: Annotated[bool, typer.Option(help="wipe the demo warehouse first")] = True,
) -> None:
    """Ingest the bundled sample, encode, train, score, and show what came out (configs/demo.yaml)."""
    from flows.demo import run_demo
    from flows.settings import CONFIG_DIR

    config = ctx.obj["config"] or CONFIG_DIR / "demo.yaml"
    s = load_settings(config, ctx.obj["warehouse"])
    run_demo(s, fresh=fresh, console=out, config_hint=str(config))


from flows.review_cli import review_app  # noqa: E402  (after app: the sub-app is registered on it)

app.add_typer(review_app, name="review")

from flows.similar_cli import register as register_similar  # noqa: E402

register_similar(app)


def main() -> None:
    try:
        app(standalone_mode=False)
    except VitrineError as e:
        console.print(f"[bold red]error:[/] {e}")
        sys.exit(2)
    except typer.Abort:
        console.print("aborted")
        sys.exit(130)
    except Exception as e:  # click usage errors carry their own exit code
        import click

        if isinstance(e, click.exceptions.ClickException):
            e.show()
            sys.exit(e.exit_code)
        if isinstance(e, click.exceptions.Exit):
            sys.exit(e.exit_code)
        raise


if __name__ == "__main__":
    main()
