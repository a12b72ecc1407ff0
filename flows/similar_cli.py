"""`vitrine similar`, `vitrine duplicates`, `vitrine groups` and `vitrine index`: the stored vectors put to use.

Search only reads; duplicates, groups and the index write through a write session (writer lock, a
run row, fresh views), like every other writing command.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from flows.console import console, out, print_rows
from flows.settings import similar_sql, write_session_for
from warehouse import open_warehouse
from warehouse.errors import VitrineError
from warehouse.schemas import sql_literal

index_app = typer.Typer(help="The approximate index of `vitrine similar` (faiss IVF-Flat, re-ranked exactly).")


def _names(s, encoder: list[str] | None) -> list[str]:
    """The --encoder names given (each a configured encoder), else the configured similar.encoders."""
    unknown = [e for e in encoder or [] if e not in s.encoders]
    if unknown:
        raise VitrineError(f"unknown encoder {unknown}: the config declares {sorted(s.encoders)}")
    return list(encoder) if encoder else list(s.similar.encoders)


def describe(wh, s, product_ids: list[str]) -> dict[str, tuple[str | None, str]]:
    """product id -> (title, its labels in force, values only, in the order of train.classification_targets)."""
    from warehouse.views import connect

    if not product_ids:
        return {}
    con = connect(wh, s.score.reclass_threshold)
    listed = ", ".join(sql_literal(p) for p in product_ids)
    order = {t: i for i, t in enumerate(s.train.classification_targets)}
    rows = con.execute(
        "SELECT p.product_id, p.title, list(struct_pack(target := l.target, label := l.label)) FILTER (WHERE l.target IS NOT NULL) "
        f"FROM products p LEFT JOIN labels l USING (product_id) WHERE p.product_id IN ({listed}) GROUP BY p.product_id, p.title"
    ).fetchall()
    con.close()
    out = {}
    for pid, title, labels in rows:
        shown = sorted((x for x in labels or [] if x["target"] in order), key=lambda x: order[x["target"]])
        out[pid] = (title, " / ".join(x["label"] for x in shown))
    return out


def similar(
    ctx: typer.Context,
    product: Annotated[Optional[str], typer.Option("--product", help="a stored product's id: products like it")] = None,
    image: Annotated[Optional[Path], typer.Option("--image", help="a new photo, encoded by the image encoder")] = None,
    title: Annotated[Optional[str], typer.Option("--title", help="a text, encoded by the title encoder")] = None,
    encoder: Annotated[Optional[list[str]], typer.Option("--encoder", help="encoder name (repeatable; default similar.encoders)")] = None,
    k: Annotated[Optional[int], typer.Option("-k", "--k", min=1, help="neighbours to list (default similar.k)")] = None,
    where: Annotated[Optional[str], typer.Option("--where", help="SQL condition on products, applied before ranking")] = None,
    format: Annotated[str, typer.Option("--format", help="table | csv | json")] = "table",
) -> None:
    """Products nearest to a product, a photo or a text (weighted cosine over the stored vectors).

    Columns: the combined similarity, each encoder's cosine (<name>_sim), the title, and the labels in
    force of train.classification_targets, in that order.
    """
    from features.search import search

    s = ctx.obj["settings"]
    _names(s, encoder)
    wh = open_warehouse(s.warehouse.path)
    result = search(wh, s.encoders, s.similar, product=product, image=image, title=title, names=encoder, k=k, where=where)
    for m in result.messages:
        console.print(f"[yellow]{m}[/]")
    console.print(f"{result.mode} search over {', '.join(result.encoders)}")
    info = describe(wh, s, [h.product_id for h in result.hits])
    cols = ["rank", "product_id", "similarity", *[f"{n}_sim" for n in result.encoders], "title", "labels"]
    rows = [
        (i + 1, h.product_id, round(h.similarity, 6), *[None if v is None else round(v, 6) for v in h.per_encoder.values()],
         *info.get(h.product_id, (None, "")))
        for i, h in enumerate(result.hits)
    ]
    print_rows(cols, rows, format)


def duplicates(
    ctx: typer.Context,
    format: Annotated[str, typer.Option("--format", help="table | csv | json")] = "table",
    limit: Annotated[int, typer.Option(help="list at most this many pairs (0 = none)")] = 20,
) -> None:
    """Find near-duplicate listings among new and changed products; list the duplicate_pairs view."""
    from features.duplicates import find_duplicates
    from warehouse.views import connect

    s = ctx.obj["settings"]
    wh = open_warehouse(s.warehouse.path)
    with write_session_for(s, "duplicates", {"thresholds": [s.similar.duplicates.image_threshold, s.similar.duplicates.title_threshold]}) as run:
        report = find_duplicates(wh, s.encoders, s.similar.duplicates, run.run_id)
        run.counts = report.as_dict()
    console.print(f"compared {report.compared} new or changed of {report.comparable} comparable products "
                  f"({report.products} listed): {report.pairs} new pairs in {report.seconds} s")
    if limit:
        con = connect(wh, s.score.reclass_threshold, similar_sql(s))
        cur = con.execute("SELECT product_a, product_b, image_similarity, title_similarity, title_a, title_b, found_at "
                          f"FROM duplicate_pairs LIMIT {int(limit)}")
        print_rows([d[0] for d in cur.description], cur.fetchall(), format)


def groups(
    ctx: typer.Context,
    k: Annotated[int, typer.Option("--k", "-k", min=2, help="how many groups")],
    encoder: Annotated[Optional[list[str]], typer.Option("--encoder", help="encoder name (repeatable; default similar.encoders)")] = None,
    format: Annotated[str, typer.Option("--format", help="table | csv | json")] = "table",
) -> None:
    """Cluster the products into k groups (k-means on the stored vectors); writes product_groups."""
    from features.groups import group_products
    from features.search import weights_of
    from warehouse.views import connect

    s = ctx.obj["settings"]
    names = _names(s, encoder)
    wh = open_warehouse(s.warehouse.path)
    with write_session_for(s, "groups", {"k": k, "encoders": names}) as run:
        report = group_products(wh, s.encoders, names, weights_of(s.similar, names), k, run.run_id, s.similar.group_seed)
        run.counts = report.as_dict()
    console.print(f"{report.grouped} products in {k} groups over {', '.join(names)} ({report.left_out} left out: "
                  f"no current vector of every encoder), run {report.run_id}")
    con = connect(wh, s.score.reclass_threshold, similar_sql(s))
    cur = con.execute("SELECT * FROM product_group_summary ORDER BY size DESC")
    print_rows([d[0] for d in cur.description], cur.fetchall(), format)


@index_app.command("build")
def index_build(
    ctx: typer.Context,
    encoder: Annotated[Optional[list[str]], typer.Option("--encoder", help="encoder name (repeatable; default similar.encoders)")] = None,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="train new cells from scratch instead of updating")] = False,
) -> None:
    """Build the index, or bring it up to date with new, changed and deleted products."""
    from features.vector_index import build_indexes

    s = ctx.obj["settings"]
    names = _names(s, encoder)
    wh = open_warehouse(s.warehouse.path)
    with write_session_for(s, "index", {"encoders": names, "rebuild": rebuild}) as run:
        reports = build_indexes(wh, s.encoders, s.similar.index, names, rebuild)
        run.counts = {r.name: r.as_dict() for r in reports}
    cols = ["encoder", "vectors", "added", "removed", "rebuilt", "nlist", "written", "seconds"]
    print_rows(cols, [(r.name, r.vectors, r.added, r.removed, r.rebuilt, r.nlist, r.written, round(r.seconds, 2)) for r in reports])


@index_app.command("status")
def index_status(ctx: typer.Context) -> None:
    """Whether each encoder's index covers the current catalog exactly."""
    from features.identity import encoder_id
    from features.store import EmbeddingStore
    from features.vector_index import current_keys, load_index, staleness
    from warehouse.tables import read_products

    s = ctx.obj["settings"]
    wh = open_warehouse(s.warehouse.path)
    products = read_products(wh, ["product_id", "image_sha256", "title_sha256"])
    rows = []
    for n in s.similar.encoders:
        eid = encoder_id(s.encoders[n])
        loaded = load_index(wh, eid)
        why = staleness(loaded, current_keys(wh, s.encoders[n], products), EmbeddingStore(wh, eid).dim)
        rows.append((n, None if loaded is None else int(loaded.index.ntotal), "up to date" if why is None else why))
    print_rows(["encoder", "indexed", "status"], rows)
    out.print(f"similar.index.mode: {s.similar.index.mode} (auto uses the index from {s.similar.index.auto_rows} vectors)")


def register(app: typer.Typer) -> None:
    app.command()(similar)
    app.command()(duplicates)
    app.command()(groups)
    app.add_typer(index_app, name="index")
