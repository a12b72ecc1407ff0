"""Arrow schemas of the warehouse's own tables.

Products carry whatever label columns their source has, so only their fixed columns are named here.
"""
from __future__ import annotations

import pyarrow as pa

TS = pa.timestamp("us", tz="UTC")

PRODUCT_FIXED = pa.schema(
    [
        ("product_id", pa.string()),
        ("source", pa.string()),
        ("title", pa.string()),
        ("image_path", pa.string()),
        ("image_status", pa.string()),  # ok | missing | unreadable | none
        ("image_sha256", pa.string()),
        ("title_sha256", pa.string()),
        ("content_hash", pa.string()),
        ("first_seen_at", TS),
        ("updated_at", TS),
    ]
)

REJECTS = pa.schema(
    [
        ("source", pa.string()),
        ("line", pa.int64()),
        ("raw", pa.string()),
        ("reason", pa.string()),
        ("seen_at", TS),
    ]
)

RUNS = pa.schema(
    [
        ("run_id", pa.string()),
        ("flow", pa.string()),
        ("parameters", pa.string()),  # JSON
        ("started_at", TS),
        ("finished_at", TS),
        ("status", pa.string()),  # running | completed | failed
        ("counts", pa.string()),  # JSON
        ("message", pa.string()),
    ]
)

# The catch-all class that heads merge rare classes into. A prediction of it names no concrete
# category, so it never makes a listing a reclassification candidate.
OTHER_LABEL = "__other__"

TOP_K = pa.list_(pa.struct([("label", pa.string()), ("probability", pa.float64())]))

PREDICTIONS = pa.schema(
    [
        ("run_id", pa.string()),
        ("model_id", pa.string()),
        ("scored_at", TS),
        ("product_id", pa.string()),
        ("content_hash", pa.string()),
        ("target", pa.string()),
        ("label", pa.string()),
        ("confidence", pa.float64()),
        ("top_k", TOP_K),
        ("value", pa.float64()),
        ("lower", pa.float64()),
        ("upper", pa.float64()),
    ]
)

MODELS = pa.schema(
    [
        ("model_id", pa.string()),
        ("head", pa.string()),
        ("target_set", pa.string()),
        ("targets", pa.list_(pa.string())),
        ("encoder_ids", pa.list_(pa.string())),
        ("metrics", pa.string()),  # JSON
        ("training_rows", pa.int64()),
        ("training_latest_updated_at", TS),
        ("artifact_path", pa.string()),
        ("trained_at", TS),
        ("is_current", pa.bool_()),
    ]
)

# What a reviewer decided about a seller's label (append-only; an 'undo' row voids `undoes`).
DECISIONS = ("accept", "reject", "relabel")
LABEL_DECISIONS = pa.schema(
    [
        ("decision_id", pa.string()),
        ("product_id", pa.string()),
        ("target", pa.string()),
        ("seller_label", pa.string()),  # the label in force when the decision was made
        ("suggested_label", pa.string()),
        ("decision", pa.string()),  # accept | reject | relabel | undo
        ("final_label", pa.string()),
        ("decided_by", pa.string()),
        ("decided_at", TS),
        ("model_id", pa.string()),
        ("content_hash", pa.string()),
        ("note", pa.string()),
        ("undoes", pa.string()),
    ]
)

# Cross-fitted (out-of-fold) judgement of every training label, stored with the model.
LABEL_SCORES = pa.schema(
    [
        ("product_id", pa.string()),
        ("target", pa.string()),
        ("given_label", pa.string()),
        ("given_label_probability", pa.float64()),
        ("suggested_label", pa.string()),
        ("suggested_probability", pa.float64()),
        ("label_quality", pa.float64()),
        ("is_issue", pa.bool_()),
        ("top_k", TOP_K),
        ("content_hash", pa.string()),
        ("model_id", pa.string()),
    ]
)

# The products column a stored vector's content_hash must equal for the vector to be current.
HASH_COLUMN = {"image": "image_sha256", "title": "title_sha256"}

EMBEDDINGS_FIXED = pa.schema(
    [("product_id", pa.string()), ("content_hash", pa.string()), ("encoded_at", TS)]
)


def embeddings_schema(dim: int) -> pa.Schema:
    return pa.schema(
        [
            ("product_id", pa.string()),
            ("content_hash", pa.string()),
            ("vector", pa.list_(pa.float32(), dim)),
            ("encoded_at", TS),
        ]
    )


def duckdb_type(t: pa.DataType) -> str:
    """DuckDB spelling of an Arrow type, for typed empty views before a table has data."""
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "VARCHAR"
    if pa.types.is_int64(t):
        return "BIGINT"
    if pa.types.is_float64(t):
        return "DOUBLE"
    if pa.types.is_float32(t):
        return "FLOAT"
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ" if t.tz else "TIMESTAMP"
    if pa.types.is_fixed_size_list(t):
        return f"{duckdb_type(t.value_type)}[{t.list_size}]"
    if pa.types.is_list(t):
        return f"{duckdb_type(t.value_type)}[]"
    if pa.types.is_struct(t):
        inner = ", ".join(f'"{f.name}" {duckdb_type(f.type)}' for f in t)
        return f"STRUCT({inner})"
    raise TypeError(f"no DuckDB type for {t}")


def sql_literal(s: str) -> str:
    """A DuckDB string literal (paths and ids spliced into view SQL)."""
    return "'" + s.replace("'", "''") + "'"


def empty_select(schema: pa.Schema) -> str:
    cols = ", ".join(f'CAST(NULL AS {duckdb_type(f.type)}) AS "{f.name}"' for f in schema)
    return f"SELECT {cols} WHERE false"
