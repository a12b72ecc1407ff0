"""`vitrine review`: the reclassification queue and the decisions that work it off, from a shell.

Decisions go through warehouse.decisions (no writer lock: they never wait for a running job).
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from flows.console import out, print_rows
from warehouse import open_warehouse

review_app = typer.Typer(help="Work through the reclassification queue: list, accept, reject, import, or serve the review page.")


def _wh(ctx: typer.Context):
    return open_warehouse(ctx.obj["settings"].warehouse.path)


@review_app.callback(invoke_without_command=True)
def queue(
    ctx: typer.Context,
    target: Annotated[Optional[str], typer.Option(help="only this target (e.g. article_type)")] = None,
    seller_label: Annotated[Optional[str], typer.Option(help="only listings with this label in force")] = None,
    suggested_label: Annotated[Optional[str], typer.Option(help="only this suggestion")] = None,
    min_confidence: Annotated[Optional[float], typer.Option(help="only suggestions at least this confident")] = None,
    max_confidence: Annotated[Optional[float], typer.Option(help="only suggestions at most this confident")] = None,
    text: Annotated[Optional[str], typer.Option("--text", help="only titles containing this (any case)")] = None,
    limit: Annotated[int, typer.Option(help="at most this many rows (0 = all)")] = 50,
    format: Annotated[str, typer.Option("--format", help="table | csv | json")] = "table",
) -> None:
    """The queue, most likely wrong first (rank); `vitrine review accept|reject|import` decide."""
    if ctx.invoked_subcommand is not None:
        return
    from warehouse.review_queue import QueueFilter, review_queue
    from warehouse.views import connect

    s = ctx.obj["settings"]
    con = connect(_wh(ctx), s.score.reclass_threshold)
    flt = QueueFilter(target, seller_label, suggested_label, min_confidence, max_confidence, text)
    cols, rows = review_queue(con, flt, limit or None)
    print_rows(cols, rows, format)


def _decide(ctx: typer.Context, decision: str, product: str, target: str, label: str | None, by: str | None,
            note: str | None) -> None:
    from warehouse.decisions import decide

    row = decide(_wh(ctx), product, target, decision, label=label, decided_by=by, note=note,
                 reclass_threshold=ctx.obj["settings"].score.reclass_threshold)
    out.print(f"{row['decision']} {row['product_id']} {row['target']}: {row['seller_label']} → {row['final_label']}"
              f" (decision {row['decision_id']})")


Target = Annotated[str, typer.Option("--target", help="the label column decided on (e.g. article_type)")]
By = Annotated[Optional[str], typer.Option("--by", envvar="VITRINE_REVIEWER", help="who decided (decided_by)")]
Note = Annotated[Optional[str], typer.Option("--note", help="free text kept with the decision")]


@review_app.command()
def accept(ctx: typer.Context, product: str, target: Target,
           label: Annotated[Optional[str], typer.Option("--label", help="another label than the suggestion (a relabel)")] = None,
           by: By = None, note: Note = None) -> None:
    """Accept the suggestion (or set --label): the next training learns it."""
    _decide(ctx, "accept", product, target, label, by, note)


@review_app.command()
def reject(ctx: typer.Context, product: str, target: Target, by: By = None, note: Note = None) -> None:
    """Keep the seller's label: the suggestion is not proposed again until the listing changes."""
    _decide(ctx, "reject", product, target, None, by, note)


@review_app.command("import")
def import_(ctx: typer.Context,
            path: Annotated[Path, typer.Argument(help="CSV or Parquet with label_decisions columns")],
            by: By = None) -> None:
    """Record decisions made elsewhere; bad rows go to rejects with their line and reason."""
    from warehouse.decisions import import_decisions

    summary = import_decisions(_wh(ctx), path, decided_by=by,
                               reclass_threshold=ctx.obj["settings"].score.reclass_threshold)
    out.print(f"{path}: {summary.recorded} recorded, {summary.rejected} rejected")
    for line, reason in summary.rejects[:20]:
        out.print(f"  line {line}: {reason}")
    if summary.rejected > 20:
        out.print(f"  … {summary.rejected - 20} more: SELECT * FROM rejects WHERE source LIKE 'review-import:%'")


@review_app.command()
def serve(ctx: typer.Context,
          host: Annotated[Optional[str], typer.Option(help="interface to bind (default review.host: 127.0.0.1, this machine only)")] = None,
          port: Annotated[Optional[int], typer.Option(help="port (default review.port: 8765)")] = None,
          by: By = None) -> None:
    """The review page: cards in rank order, decided with one key; decisions land in label_decisions."""
    import uvicorn

    from flows.review_page.app import create_app

    s = ctx.obj["settings"]
    host, port = host or s.review.host, port or s.review.port
    wh = _wh(ctx)
    near = None
    if s.review.similar_k:
        from flows.review_page.neighbours import Neighbours

        near = Neighbours(wh, s.encoders, s.similar, s.review.similar_k)
    app = create_app(wh, reviewer=by or s.review.reviewer, reclass_threshold=s.score.reclass_threshold,
                     page_size=s.review.page_size, similar=near)
    out.print(f"review page on http://{host}:{port}/ (warehouse {s.warehouse.path}); Ctrl+C stops it")
    uvicorn.run(app, host=host, port=port, log_level="warning")
