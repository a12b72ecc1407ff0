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
from warehouse.atomic import atomic_path, read_metadata, visible_parquet_files
from warehouse.compaction import latest_predictions_sql
from warehouse.layout import Warehouse

DEFAULT_RECLASS_THRESHOLD = 0.8


def _lit(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _scan(directory, schema) -> str:
    files = visible_parquet_files(directory)
    if not files:
        return schemas.empty_select(schema)
    listed = ", ".join(_lit(str(f)) for f in files)
    return f"SELECT * FROM read_parquet([{listed}], union_by_name = true)"


def embedding_view_name(encoder_dir_name: str) -> str:
    return "embeddings_" + re.sub(r"[^A-Za-z0-9]+", "_", encoder_dir_name).strip("_").lower()


def _reclass_sql(wh: Warehouse, threshold: float) -> str:
    """Seller-set labels that disagree with a confident prediction, one row per (product, target).

    Built from the product columns that exist, so a catalog without a column never breaks it.
    """
    empty = (
        "SELECT NULL::VARCHAR AS product_id, NULL::VARCHAR AS title, NULL::VARCHAR AS target, "
        "NULL::VARCHAR AS seller_label, NULL::VARCHAR AS suggested_label, NULL::DOUBLE AS confidence, "
        f"NULL::{schemas.duckdb_type(schemas.TOP_K)} AS top_k, NULL::VARCHAR AS model_id, "
        "NULL::VARCHAR AS run_id WHERE false"
    )
    if not wh.products_path.exists():
        return empty
    fixed = set(schemas.PRODUCT_FIXED.names)
    label_cols = [n for n in pq.read_schema(wh.products_path).names if n not in fixed]
    if not label_cols:
        return empty
    parts = [
        f"SELECT product_id, {_lit(c)} AS target, CAST(\"{c}\" AS VARCHAR) AS seller_label FROM products "
        f"WHERE \"{c}\" IS NOT NULL"
        for c in label_cols
    ]
    seller = " UNION ALL ".join(parts)
    return (
        "SELECT s.product_id, p.title, s.target, s.seller_label, lp.label AS suggested_label, "
        "lp.confidence, lp.top_k, lp.model_id, lp.run_id "
        f"FROM ({seller}) s JOIN latest_predictions lp USING (product_id, target) "
        "JOIN products p USING (product_id) "
        f"WHERE lp.label IS NOT NULL AND lp.label <> s.seller_label AND lp.label <> {_lit(schemas.OTHER_LABEL)} "
        f"AND lp.confidence >= {float(threshold)!r}"
    )


def view_ddl(wh: Warehouse, reclass_threshold: float = DEFAULT_RECLASS_THRESHOLD) -> list[str]:
    """CREATE VIEW statements for the warehouse as it is on disk right now."""
    products = (
        f"SELECT * FROM read_parquet({_lit(str(wh.products_path))})"
        if wh.products_path.exists()
        else schemas.empty_select(schemas.PRODUCT_FIXED)
    )
    ddl = [
        f"CREATE OR REPLACE VIEW products AS {products}",
        f"CREATE OR REPLACE VIEW rejects AS {_scan(wh.rejects_dir, schemas.REJECTS)}",
        "CREATE OR REPLACE VIEW deleted_products AS "
        + (
            f"SELECT * FROM read_parquet({_lit(str(wh.deleted_products_path))})"
            if wh.deleted_products_path.exists()
            else schemas.empty_select(schemas.PRODUCT_FIXED.append(pa.field("deleted_at", schemas.TS)))
        ),
        f"CREATE OR REPLACE VIEW runs AS {_scan(wh.runs_dir, schemas.RUNS)}",
        f"CREATE OR REPLACE VIEW predictions AS {_scan(wh.predictions_dir, schemas.PREDICTIONS)}",
        "CREATE OR REPLACE VIEW models AS "
        + (
            f"SELECT * FROM read_parquet({_lit(str(wh.models_registry_path))})"
            if wh.models_registry_path.exists()
            else schemas.empty_select(schemas.MODELS)
        ),
        f"CREATE OR REPLACE VIEW latest_predictions AS {latest_predictions_sql(wh)}",
        f"CREATE OR REPLACE VIEW reclassification_candidates AS {_reclass_sql(wh, reclass_threshold)}",
    ]
    encoders = []
    if wh.embeddings_root.exists():
        for d in sorted(p for p in wh.embeddings_root.iterdir() if p.is_dir()):
            files = visible_parquet_files(d)
            if not files:
                continue
            md = read_metadata(files[0])
            name = embedding_view_name(d.name)
            ddl.append(f"CREATE OR REPLACE VIEW {name} AS {_scan(d, schemas.EMBEDDINGS_FIXED)}")
            encoders.append(
                f"SELECT {_lit(md.get('vitrine.encoder_id', d.name))} AS encoder_id, "
                f"{int(md.get('vitrine.dim', 0))} AS dim, {_lit(name)} AS view_name, "
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
    return ddl


def connect(wh: Warehouse, reclass_threshold: float = DEFAULT_RECLASS_THRESHOLD) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with every warehouse view; never blocks, never blocks a writer."""
    con = duckdb.connect(":memory:")
    for stmt in view_ddl(wh, reclass_threshold):
        con.execute(stmt)
    return con


def refresh_catalog(wh: Warehouse, reclass_threshold: float = DEFAULT_RECLASS_THRESHOLD) -> None:
    """Rebuild vitrine.duckdb with the current views; call while holding the writer lock.

    The file is built under a temporary name and renamed into place, never edited: a `duckdb`
    CLI session that has it open keeps its consistent old views and never blocks the refresh,
    and a file another DuckDB version wrote (a storage version this one cannot open) is simply
    replaced, since it holds nothing but views derived from the Parquet files.
    """
    with atomic_path(wh.db_path) as tmp:
        con = duckdb.connect(str(tmp))
        try:
            for stmt in view_ddl(wh, reclass_threshold):
                con.execute(stmt)
            con.execute("CHECKPOINT")
        finally:
            con.close()
        # a write-ahead log left next to the old file must not be replayed into the new one
        wh.db_path.with_name(wh.db_path.name + ".wal").unlink(missing_ok=True)
