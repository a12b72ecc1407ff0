"""Views and SQL macros over the similarity tables: duplicate_pairs, product_groups, similar_products.

The macros put `vitrine similar` at the `duckdb` prompt: `similar_products_<name>(product_id, k)`
per configured encoder and `similar_products(product_id, k)`, the weighted sum of the configured
`similar.encoders`, both exact (`array_cosine_similarity` over the embedding views, current
vectors only: a vector counts when its content_hash is the product's current one of that input).
The names and weights come from the config, handed in by whoever rebuilds the catalog; this room
knows which encoder ids have vectors, not what the models are.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from warehouse.atomic import visible_parquet_files
from warehouse.layout import Warehouse
from warehouse.schemas import HASH_COLUMN, sql_literal


@dataclass(frozen=True)
class SimilarSQL:
    """What the similarity macros need from the config: encoder name -> (encoder id, input), weights."""

    encoders: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    weights: Mapping[str, float] = field(default_factory=dict)


def macro_suffix(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_").lower()


def _files_sql(directory, empty: str) -> str:
    files = visible_parquet_files(directory)
    if not files:
        return empty
    listed = ", ".join(sql_literal(str(f)) for f in files)
    return f"SELECT * FROM read_parquet([{listed}], union_by_name = true)"


def _current(view: str, dim: int, input_kind: str) -> str:
    h = HASH_COLUMN[input_kind]
    return (f"SELECT e.product_id, e.vector::FLOAT[{int(dim)}] AS vector FROM {view} e JOIN products p "
            f"ON p.product_id = e.product_id AND p.{h} = e.content_hash")


def similarity_ddl(wh: Warehouse, views: Mapping[str, tuple[str, int]], similar: SimilarSQL | None, label_columns: list[str]) -> list[str]:
    """DDL of the similarity views and macros; `views` maps encoder id -> (its embeddings view, dim)."""
    ddl = [
        "CREATE OR REPLACE VIEW duplicate_pairs_history AS " + _files_sql(
            wh.duplicate_pairs_dir,
            "SELECT NULL::VARCHAR AS product_a, NULL::VARCHAR AS product_b, NULL::FLOAT AS image_similarity, "
            "NULL::FLOAT AS title_similarity, NULL::VARCHAR AS a_content_hash, NULL::VARCHAR AS b_content_hash, "
            "NULL::TIMESTAMPTZ AS found_at, NULL::VARCHAR AS run_id WHERE false"),
        # the newest finding per pair, while both listings still have the content it was found on
        "CREATE OR REPLACE VIEW duplicate_pairs AS SELECT d.product_a, d.product_b, d.image_similarity, d.title_similarity, "
        "d.found_at, a.title AS title_a, b.title AS title_b, d.run_id FROM ("
        "  SELECT *, row_number() OVER (PARTITION BY product_a, product_b ORDER BY found_at DESC, run_id DESC) AS rn"
        "  FROM duplicate_pairs_history) d"
        " JOIN products a ON a.product_id = d.product_a AND a.content_hash = d.a_content_hash"
        " JOIN products b ON b.product_id = d.product_b AND b.content_hash = d.b_content_hash"
        " WHERE d.rn = 1 ORDER BY d.image_similarity + d.title_similarity DESC, d.product_a, d.product_b",
        "CREATE OR REPLACE VIEW product_groups_history AS " + _files_sql(
            wh.product_groups_dir,
            "SELECT NULL::VARCHAR AS product_id, NULL::INTEGER AS group_id, NULL::FLOAT AS distance, NULL::VARCHAR AS run_id, "
            "NULL::VARCHAR AS content_hash, NULL::INTEGER AS k, NULL::VARCHAR AS encoders, NULL::TIMESTAMPTZ AS grouped_at WHERE false"),
        # the latest `vitrine groups` run, over the products still listed
        "CREATE OR REPLACE VIEW product_groups AS SELECT g.product_id, g.group_id, g.distance, g.run_id, g.k, g.encoders, g.grouped_at "
        "FROM product_groups_history g JOIN products p USING (product_id) "
        "WHERE g.run_id = (SELECT run_id FROM product_groups_history ORDER BY grouped_at DESC, run_id DESC LIMIT 1)",
    ]
    modes = "".join(
        f", mode(p.\"{c}\") AS \"{c}\", round(list_max(map_values(histogram(p.\"{c}\"))) / count(*), 3) AS \"{c}_share\""
        for c in label_columns
    )
    ddl.append(
        "CREATE OR REPLACE VIEW product_group_summary AS SELECT g.group_id, count(*) AS size, round(avg(g.distance), 4) AS mean_distance"
        f"{modes}, list(p.title ORDER BY g.distance)[1:3] AS example_titles "
        "FROM product_groups g JOIN products p USING (product_id) GROUP BY g.group_id ORDER BY g.group_id"
    )
    macros = []
    if similar is not None:
        usable = {n: (eid, kind) for n, (eid, kind) in similar.encoders.items() if eid in views and kind in HASH_COLUMN}
        for n, (eid, kind) in usable.items():
            cur = _current(*views[eid], kind)
            s = macro_suffix(n)
            ddl.append(
                f"CREATE OR REPLACE MACRO similarity_{s}(pid) AS TABLE SELECT c.product_id, "
                f"array_cosine_similarity(c.vector, q.vector) AS similarity FROM ({cur}) c, "
                f"({cur} WHERE e.product_id = pid LIMIT 1) q WHERE c.product_id <> pid"
            )
            ddl.append(
                f"CREATE OR REPLACE MACRO similar_products_{s}(pid, k) AS TABLE SELECT s.product_id, s.similarity, p.title "
                f"FROM similarity_{s}(pid) s JOIN products p USING (product_id) ORDER BY s.similarity DESC, s.product_id LIMIT k"
            )
            macros.append((n, eid, kind, f"similar_products_{s}", similar.weights.get(n)))
        combined = [n for n in similar.weights if n in usable]
        if combined:
            parts = " UNION ALL ".join(
                f"SELECT {sql_literal(n)} AS enc, product_id, similarity FROM similarity_{macro_suffix(n)}(pid)" for n in combined)
            weights = ", ".join(f"({sql_literal(n)}, {float(similar.weights[n])!r})" for n in combined)
            ddl.append(
                f"CREATE OR REPLACE MACRO similar_products(pid, k) AS TABLE WITH parts AS ({parts}), "
                f"w(enc, weight) AS (VALUES {weights}) "
                "SELECT x.product_id, sum(x.similarity * w.weight) / (SELECT sum(weight) FROM w WHERE enc IN (SELECT enc FROM parts)) "
                "AS similarity, p.title FROM parts x JOIN w USING (enc) JOIN products p USING (product_id) "
                "GROUP BY x.product_id, p.title ORDER BY similarity DESC, x.product_id LIMIT k"
            )
    rows = " UNION ALL ".join(
        f"SELECT {sql_literal(n)} AS encoder, {sql_literal(eid)} AS encoder_id, {sql_literal(kind)} AS input, "
        f"{sql_literal(m)} AS macro, {('NULL' if w is None else repr(float(w)))}::DOUBLE AS weight"
        for n, eid, kind, m, w in macros
    )
    ddl.append("CREATE OR REPLACE VIEW similar_macros AS " + (rows or (
        "SELECT NULL::VARCHAR AS encoder, NULL::VARCHAR AS encoder_id, NULL::VARCHAR AS input, NULL::VARCHAR AS macro, "
        "NULL::DOUBLE AS weight WHERE false")))
    return ddl
