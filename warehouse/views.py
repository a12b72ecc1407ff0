"""DuckDB over the warehouse: one view per table, plus the views analysts ask for.

`connect()` gives an in-memory DuckDB whose views read the committed Parquet files, so any number
of readers can query while a writer works. `refresh_catalog()` writes the same views into
`vitrine.duckdb` (with absolute paths) for people who open the warehouse with the `duckdb` CLI.
"""
from __future__ import annotations

import re

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from warehouse import schemas
from warehouse.schemas import sql_literal
from warehouse.atomic import atomic_path, read_metadata, visible_parquet_files, write_parquet_atomic
from warehouse.current_predictions import latest_predictions_sql
from warehouse.layout import Warehouse
from warehouse.similar_views import SimilarSQL, similarity_ddl

DEFAULT_RECLASS_THRESHOLD = 0.8


def _scan(directory, schema) -> str:
    files = visible_parquet_files(directory)
    if not files:
        return schemas.empty_select(schema)
    listed = ", ".join(sql_literal(str(f)) for f in files)
    return f"SELECT * FROM read_parquet([{listed}], union_by_name = true)"


def embedding_view_name(encoder_dir_name: str) -> str:
    return "embeddings_" + re.sub(r"[^A-Za-z0-9]+", "_", encoder_dir_name).strip("_").lower()


DECISIONS_GLOB = "d-*.parquet"
# a decision stays in force while the listing has not been edited since
DECISIONS_IN_FORCE_SQL = ("SELECT e.* FROM effective_decisions e JOIN products p USING (product_id) "
                          "WHERE e.decided_at >= p.updated_at")
DECISIONS_SEED = "d-0-seed.parquet"


def label_columns(wh: Warehouse) -> list[str]:
    """The catalog's label columns: every product column that is not one of vitrine's own."""
    if not wh.products_path.exists():
        return []
    fixed = set(schemas.PRODUCT_FIXED.names)
    return [n for n in pq.read_schema(wh.products_path).names if n not in fixed]


def ensure_decisions_seed(wh: Warehouse) -> None:
    """An empty decisions file, so the glob view over `label_decisions/` always matches one.

    The view is a glob (not a list fixed when the catalog was built) because decisions are written
    without the writer lock, after the last catalog refresh: the CLI must still see them.
    """
    if not visible_parquet_files(wh.decisions_dir):
        write_parquet_atomic(schemas.LABEL_DECISIONS.empty_table(), wh.decisions_dir / DECISIONS_SEED)


def _decisions_sql(wh: Warehouse) -> str:
    if not visible_parquet_files(wh.decisions_dir):
        return schemas.empty_select(schemas.LABEL_DECISIONS)
    return f"SELECT * FROM read_parquet({sql_literal(str(wh.decisions_dir / DECISIONS_GLOB))}, union_by_name = true)"


def _label_scores_sql(wh: Warehouse) -> str:
    """The current models' out-of-fold label scores."""
    files = []
    if wh.models_registry_path.exists():
        reg = pq.read_table(wh.models_registry_path, columns=["model_id", "is_current"]).to_pylist()
        files = [wh.label_scores_path(r["model_id"]) for r in reg if r["is_current"]]
        files = [f for f in files if f.exists()]
    if not files:
        return schemas.empty_select(schemas.LABEL_SCORES)
    listed = ", ".join(sql_literal(str(f)) for f in files)
    return f"SELECT * FROM read_parquet([{listed}], union_by_name = true)"


def _seller_labels_sql(wh: Warehouse) -> str:
    """Per (product, target): the label the seller set, one row per label column that has one."""
    cols = label_columns(wh)
    if not cols:
        return "SELECT NULL::VARCHAR AS product_id, NULL::VARCHAR AS target, NULL::VARCHAR AS seller_label WHERE false"
    return " UNION ALL ".join(
        f"SELECT product_id, {sql_literal(c)} AS target, CAST(\"{c}\" AS VARCHAR) AS seller_label FROM products" for c in cols)


def _labels_sql() -> str:
    """Per (product, target): the seller's label, or a reviewer's final label made since the last edit."""
    return (
        "WITH decided AS ("
        "  SELECT product_id, target, final_label FROM ("
        "    SELECT e.*, row_number() OVER (PARTITION BY e.product_id, e.target ORDER BY e.decided_at DESC, e.decision_id DESC) AS rn"
        "    FROM decisions_in_force e) WHERE rn = 1) "
        "SELECT s.product_id, s.target, s.seller_label, coalesce(d.final_label, s.seller_label) AS label, "
        "CASE WHEN d.final_label IS NOT NULL AND d.final_label IS DISTINCT FROM s.seller_label "
        "THEN 'decision' ELSE 'seller' END AS source "
        "FROM seller_labels s LEFT JOIN decided d USING (product_id, target) "
        "WHERE coalesce(d.final_label, s.seller_label) IS NOT NULL"
    )


# The order of the queue: most likely wrong first (lowest label quality), then most confident.
QUEUE_ORDER = "label_quality, confidence DESC, product_id, target"


def _flagged_sql(threshold: float) -> str:
    """Seller labels that are likely wrong, with a suggestion: the queue before reviewers' decisions.

    A label the registered model was trained on is judged by its out-of-fold score (confident
    learning flagged it); a product new or changed since training, or whose label changed, by
    the current model's prediction at `threshold`. It reads no decision, so a reader that serves
    the queue often (the review page) can keep it while only decisions change: a (product,
    target) whose label in force is not the seller's is settled by an accept or relabel in force,
    which `reclassification_candidates` leaves out anyway, so judging the seller's label here
    gives the same queue as judging the label in force. `rank` is the position in this queue:
    it stays put while reviewers work (a decided card leaves a gap), and is renumbered when a
    model, a scoring run or the catalog changes what is flagged.
    """
    other = sql_literal(schemas.OTHER_LABEL)
    return (
        "WITH oof AS ("
        "  SELECT ls.product_id, ls.target, l.seller_label, ls.suggested_label,"
        "    ls.suggested_probability AS confidence, ls.top_k, ls.model_id, NULL::VARCHAR AS run_id,"
        "    ls.label_quality, ls.is_issue, 'out_of_fold' AS source"
        "  FROM label_scores ls JOIN products p USING (product_id) JOIN seller_labels l USING (product_id, target)"
        "  WHERE ls.content_hash = p.content_hash AND ls.given_label = l.seller_label),"
        " cur AS ("
        "  SELECT l.product_id, l.target, l.seller_label, lp.label AS suggested_label, lp.confidence,"
        "    lp.top_k, lp.model_id, lp.run_id,"
        "    coalesce(list_max(list_transform(list_filter(lp.top_k, lambda x: x.label = l.seller_label), lambda x: x.probability)), 0.0)"
        "      AS label_quality, true AS is_issue, 'current_model' AS source"
        "  FROM seller_labels l JOIN latest_predictions lp USING (product_id, target)"
        f"  WHERE lp.confidence >= {float(threshold)!r}"
        "    AND NOT EXISTS (SELECT 1 FROM oof WHERE oof.product_id = l.product_id AND oof.target = l.target)),"
        " flagged AS (SELECT * FROM oof UNION ALL SELECT * FROM cur)"
        " SELECT f.product_id, p.title, f.target, f.seller_label, f.suggested_label, f.confidence, f.top_k,"
        "   f.model_id, f.run_id, f.label_quality,"
        f"   row_number() OVER (ORDER BY {QUEUE_ORDER}) AS rank, f.source"
        " FROM flagged f JOIN products p USING (product_id)"
        " WHERE f.is_issue AND f.seller_label IS NOT NULL AND f.suggested_label IS NOT NULL"
        f"   AND f.suggested_label <> f.seller_label AND f.suggested_label <> {other}"
        " ORDER BY rank"
    )


def reclass_sql(ordered: bool = True) -> str:
    """The flagged labels a reviewer has not settled, most-likely-wrong first (by their `rank`).

    What a reviewer settled stays out: an accepted or relabelled (product, target), and a
    rejected suggestion, until the listing is edited. `ordered=False` leaves the ORDER BY to the
    query, so that `ORDER BY rank LIMIT n` over the view is a top-n rather than a full sort.
    """
    return (
        "WITH settled AS (SELECT DISTINCT product_id, target FROM decisions_in_force WHERE decision IN ('accept', 'relabel')),"
        " rejected AS (SELECT DISTINCT product_id, target, suggested_label FROM decisions_in_force WHERE decision = 'reject')"
        " SELECT f.product_id, f.title, f.target, f.seller_label, f.suggested_label, f.confidence, f.top_k,"
        "   f.model_id, f.run_id, f.label_quality, f.rank, f.source"
        # anti joins on the (small) decided sets: a hash probe per flagged row, no correlated subquery
        " FROM reclassification_flagged f"
        " ANTI JOIN settled s ON s.product_id = f.product_id AND s.target = f.target"
        " ANTI JOIN rejected r ON r.product_id = f.product_id AND r.target = f.target"
        "   AND r.suggested_label = f.suggested_label"
        + (" ORDER BY rank" if ordered else "")
    )


def view_ddl(wh: Warehouse, reclass_threshold: float = DEFAULT_RECLASS_THRESHOLD, similar: SimilarSQL | None = None) -> list[str]:
    """CREATE VIEW statements for the warehouse as it is on disk right now (and the similarity macros)."""
    products = (
        f"SELECT * FROM read_parquet({sql_literal(str(wh.products_path))})"
        if wh.products_path.exists()
        else schemas.empty_select(schemas.PRODUCT_FIXED)
    )
    ddl = [
        f"CREATE OR REPLACE VIEW products AS {products}",
        f"CREATE OR REPLACE VIEW rejects AS {_scan(wh.rejects_dir, schemas.REJECTS)}",
        "CREATE OR REPLACE VIEW deleted_products AS "
        + (
            f"SELECT * FROM read_parquet({sql_literal(str(wh.deleted_products_path))})"
            if wh.deleted_products_path.exists()
            else schemas.empty_select(schemas.PRODUCT_FIXED.append(pa.field("deleted_at", schemas.TS)))
        ),
        f"CREATE OR REPLACE VIEW runs AS {_scan(wh.runs_dir, schemas.RUNS)}",
        f"CREATE OR REPLACE VIEW predictions AS {_scan(wh.predictions_dir, schemas.PREDICTIONS)}",
        "CREATE OR REPLACE VIEW models AS "
        + (
            f"SELECT * FROM read_parquet({sql_literal(str(wh.models_registry_path))})"
            if wh.models_registry_path.exists()
            else schemas.empty_select(schemas.MODELS)
        ),
        f"CREATE OR REPLACE VIEW latest_predictions AS {latest_predictions_sql(wh)}",
        f"CREATE OR REPLACE VIEW label_decisions AS {_decisions_sql(wh)}",
        "CREATE OR REPLACE VIEW effective_decisions AS SELECT * EXCLUDE (undoes) FROM label_decisions "
        "WHERE decision <> 'undo' AND decision_id NOT IN "
        "(SELECT undoes FROM label_decisions WHERE decision = 'undo' AND undoes IS NOT NULL)",
        f"CREATE OR REPLACE VIEW decisions_in_force AS {DECISIONS_IN_FORCE_SQL}",
        f"CREATE OR REPLACE VIEW seller_labels AS {_seller_labels_sql(wh)}",
        f"CREATE OR REPLACE VIEW labels AS {_labels_sql()}",
        f"CREATE OR REPLACE VIEW label_scores AS {_label_scores_sql(wh)}",
        f"CREATE OR REPLACE VIEW reclassification_flagged AS {_flagged_sql(reclass_threshold)}",
        f"CREATE OR REPLACE VIEW reclassification_candidates AS {reclass_sql()}",
    ]
    encoders = []
    views: dict[str, tuple[str, int]] = {}
    if wh.embeddings_root.exists():
        for d in sorted(p for p in wh.embeddings_root.iterdir() if p.is_dir()):
            files = visible_parquet_files(d)
            if not files:
                continue
            md = read_metadata(files[0])
            name = embedding_view_name(d.name)
            ddl.append(f"CREATE OR REPLACE VIEW {name} AS {_scan(d, schemas.EMBEDDINGS_FIXED)}")
            views[md.get("vitrine.encoder_id", d.name)] = (name, int(md.get("vitrine.dim", 0)))
            encoders.append(
                f"SELECT {sql_literal(md.get('vitrine.encoder_id', d.name))} AS encoder_id, "
                f"{int(md.get('vitrine.dim', 0))} AS dim, {sql_literal(name)} AS view_name, "
                f"(SELECT count(*) FROM {name}) AS vectors"
            )
    ddl.append(
        "CREATE OR REPLACE VIEW encoders AS "
        + (
            " UNION ALL ".join(encoders)
            if encoders
            else "SELECT NULL::VARCHAR AS encoder_id, NULL::INTEGER AS dim, NULL::VARCHAR AS view_name, "
            "NULL::BIGINT AS vectors WHERE false"
        )
    )
    ddl.extend(similarity_ddl(wh, views, similar, label_columns(wh)))
    return ddl


def connect(
    wh: Warehouse, reclass_threshold: float = DEFAULT_RECLASS_THRESHOLD, similar: SimilarSQL | None = None
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with every warehouse view; never blocks, never blocks a writer."""
    con = duckdb.connect(":memory:")
    for stmt in view_ddl(wh, reclass_threshold, similar):
        con.execute(stmt)
    return con


def refresh_catalog(
    wh: Warehouse, reclass_threshold: float = DEFAULT_RECLASS_THRESHOLD, similar: SimilarSQL | None = None
) -> None:
    """Rebuild vitrine.duckdb with the current views; call while holding the writer lock.

    The file is built under a temporary name and renamed into place, never edited: a `duckdb`
    CLI session that has it open keeps its consistent old views and never blocks the refresh,
    and a file another DuckDB version wrote (a storage version this one cannot open) is simply
    replaced, since it holds nothing but views derived from the Parquet files.
    """
    ensure_decisions_seed(wh)
    with atomic_path(wh.db_path) as tmp:
        con = duckdb.connect(str(tmp))
        try:
            for stmt in view_ddl(wh, reclass_threshold, similar):
                con.execute(stmt)
            con.execute("CHECKPOINT")
        finally:
            con.close()
        # a write-ahead log left next to the old file must not be replayed into the new one
        wh.db_path.with_name(wh.db_path.name + ".wal").unlink(missing_ok=True)
