"""The review queue: reclassification candidates filtered the way a reviewer narrows them.

One function used by `vitrine review` and the review page, so both show the same cards.
`QueueReader` keeps the decision-independent part of the queue (`reclassification_flagged`)
in memory for a reader that asks many times, rebuilding it only when a file it reads changed.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from fnmatch import fnmatch

import duckdb

from warehouse import schemas
from warehouse.atomic import visible_parquet_files
from warehouse.layout import Warehouse
from warehouse.schemas import sql_literal
from warehouse.views import (DECISIONS_GLOB, DECISIONS_IN_FORCE_SQL, DEFAULT_RECLASS_THRESHOLD, connect,
                             ensure_decisions_seed, reclass_sql)

QUEUE_COLUMNS = ("rank", "product_id", "title", "target", "seller_label", "suggested_label", "confidence",
                 "label_quality", "source", "model_id")


@dataclass
class QueueFilter:
    target: str | None = None
    seller_label: str | None = None
    suggested_label: str | None = None
    min_confidence: float | None = None
    max_confidence: float | None = None
    text: str | None = None  # a substring of the title, case-insensitive

    def where(self) -> tuple[str, list]:
        parts, params = [], []
        for col, value in (("target", self.target), ("seller_label", self.seller_label),
                           ("suggested_label", self.suggested_label)):
            if value is not None:
                parts.append(f"{col} = ?")
                params.append(value)
        if self.min_confidence is not None:
            parts.append("confidence >= ?")
            params.append(float(self.min_confidence))
        if self.max_confidence is not None:
            parts.append("confidence <= ?")
            params.append(float(self.max_confidence))
        if self.text:
            parts.append("title ILIKE ? ESCAPE '\\'")
            params.append("%" + self.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
        return (" WHERE " + " AND ".join(parts)) if parts else "", params


def review_queue(con: duckdb.DuckDBPyConnection, flt: QueueFilter, limit: int | None = None, offset: int = 0,
                 columns: tuple[str, ...] = QUEUE_COLUMNS) -> tuple[list[str], list[tuple]]:
    """(columns, rows) of the candidates matching `flt`, in rank order."""
    where, params = flt.where()
    sql = f"SELECT {', '.join(columns)} FROM reclassification_candidates{where} ORDER BY rank"
    if limit is not None:
        sql += f" LIMIT {int(limit)} OFFSET {int(offset)}"
    cur = con.execute(sql, params)
    return [d[0] for d in cur.description], cur.fetchall()


def file_state(path) -> tuple:
    """(path, mtime, size): what tells a reader that a file it built on was replaced."""
    try:
        st = path.stat()
    except OSError:
        return (str(path), None)
    return (str(path), st.st_mtime_ns, st.st_size)


class QueueReader:
    """Connections whose `reclassification_flagged` is a table built once per warehouse state.

    The flagged labels depend on products, models, label scores and predictions, which change
    when a nightly run or a training job publishes; decisions change with every key press. So
    the expensive part is materialized and kept while those files are unchanged (a stat of
    each, checked on every `cursor()`): a new state is built on a new connection while the old
    one keeps answering. Decisions are tables too: each decision file is read once, when it
    first appears (files are only ever added, under new names), and the decisions in force are
    recomputed from them; so every query sees every decision written before it started, the
    other reviewers' included, without re-reading thousands of small files per request.
    """

    def __init__(self, wh: Warehouse, reclass_threshold: float = DEFAULT_RECLASS_THRESHOLD):
        self.wh, self.reclass_threshold = wh, reclass_threshold
        self._lock = threading.Lock()
        self._con: duckdb.DuckDBPyConnection | None = None
        self._state: tuple | None = None
        self._read: set[str] = set()  # decision files already in `decisions_read`
        self.builds = 0  # how many times the flagged table was built (tests and benchmarks read it)

    def state(self) -> tuple:
        """What the flagged labels were computed from: every file they read, with mtime and size."""
        wh = self.wh
        files = [wh.products_path, wh.deleted_products_path, wh.predictions_current_path,
                 *visible_parquet_files(wh.models_root), *visible_parquet_files(wh.predictions_dir)]
        return tuple(file_state(f) for f in files)

    def _decision_files(self) -> set[str]:
        try:
            return {n for n in os.listdir(self.wh.decisions_dir) if fnmatch(n, DECISIONS_GLOB)}
        except OSError:
            return set()

    def _build(self) -> duckdb.DuckDBPyConnection:
        ensure_decisions_seed(self.wh)
        con = connect(self.wh, self.reclass_threshold)
        con.execute("CREATE TABLE flagged_snapshot AS SELECT * FROM reclassification_flagged ORDER BY rank")
        con.execute("CREATE OR REPLACE VIEW reclassification_flagged AS SELECT * FROM flagged_snapshot")
        # decisions in force join products on every query: read the file once, not per query
        con.execute("CREATE TABLE products_snapshot AS SELECT * FROM products")
        con.execute("CREATE OR REPLACE VIEW products AS SELECT * FROM products_snapshot")
        # decision files are only ever added: read each once, appending the new ones as they appear
        self._read = self._decision_files()
        con.execute("CREATE TABLE decisions_read AS " + self._files_sql(sorted(self._read)))
        con.execute("CREATE OR REPLACE VIEW label_decisions AS SELECT * FROM decisions_read")
        con.execute(f"CREATE TABLE decisions_snapshot AS {DECISIONS_IN_FORCE_SQL}")
        con.execute("CREATE OR REPLACE VIEW decisions_in_force AS SELECT * FROM decisions_snapshot")
        # every query here orders by itself (review_queue does): a top-n, not a sort of the whole queue
        con.execute(f"CREATE OR REPLACE VIEW reclassification_candidates AS {reclass_sql(ordered=False)}")
        self.builds += 1
        return con

    def _files_sql(self, names: list[str]) -> str:
        if not names:
            return schemas.empty_select(schemas.LABEL_DECISIONS)
        listed = ", ".join(sql_literal(str(self.wh.decisions_dir / n)) for n in names)
        return f"SELECT * FROM read_parquet([{listed}], union_by_name = true)"

    def connection(self) -> duckdb.DuckDBPyConnection:
        """The connection for the warehouse as it is now (shared: take a `cursor()` per thread)."""
        state = self.state()
        with self._lock:
            if self._con is None or state != self._state:
                self._con, self._state = self._build(), state
            new = self._decision_files() - self._read
            if new:
                self._con.execute("INSERT INTO decisions_read BY NAME " + self._files_sql(sorted(new)))
                self._con.execute(f"CREATE OR REPLACE TABLE decisions_snapshot AS {DECISIONS_IN_FORCE_SQL}")
                self._read |= new
            return self._con

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor of its own for one request: DuckDB connections are not shared across threads."""
        return self.connection().cursor()
