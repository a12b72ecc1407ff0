"""The review queue: reclassification candidates filtered the way a reviewer narrows them.

One function used by `vitrine review` and the review page, so both show the same cards.
"""
from __future__ import annotations

from dataclasses import dataclass

import duckdb

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
