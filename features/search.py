"""One similarity query end to end: which encoders, exact or through the index, filtered by --where.

Exact search is the default. The index answers only when the config asks for it (`similar.index.mode`
on, or auto at `auto_rows` vectors) and its manifest covers the current catalog exactly; otherwise
the answer comes from exact search and `messages` says why, so a stale or missing index never
returns wrong products.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from features.identity import encoder_id as make_encoder_id
from features.settings import EncoderSpec, SimilarSettings
from features.similar import (
    PRODUCT_COLUMNS, Catalog, Hit, QueryError, check_names, encode_query, exact_search, fitting_names,
    product_query, read_vector_set,
)
from features.store import EmbeddingStore
from warehouse.layout import Warehouse
from warehouse.tables import read_products


@dataclass
class SearchResult:
    hits: list[Hit]
    mode: str  # exact | index
    encoders: list[str]
    messages: list[str] = field(default_factory=list)


def where_ids(wh: Warehouse, where: str) -> set[str]:
    """Product ids passing a SQL condition over the `products` view (DuckDB)."""
    from warehouse.views import connect

    con = connect(wh)
    try:
        rows = con.execute(f"SELECT product_id FROM products WHERE ({where})").fetchall()
    except duckdb.Error as e:
        raise QueryError(f"--where {where!r} is not a valid condition on products: {e}") from None
    finally:
        con.close()
    return {r[0] for r in rows}


def weights_of(similar: SimilarSettings, names: Sequence[str]) -> dict[str, float]:
    """Configured weights; an encoder named on the command line but not configured weighs 1."""
    return {n: float(similar.encoders.get(n, 1.0)) for n in names}


def wants_index(wh: Warehouse, encoders: Mapping[str, EncoderSpec], similar: SimilarSettings, names: Sequence[str]) -> bool:
    mode = similar.index.mode
    if mode == "off":
        return False
    if mode == "on":
        return True
    return all(EmbeddingStore(wh, make_encoder_id(encoders[n])).count() >= similar.index.auto_rows for n in names)


def search(
    wh: Warehouse,
    encoders: Mapping[str, EncoderSpec],
    similar: SimilarSettings,
    *,
    product: str | None = None,
    image: Path | None = None,
    title: str | None = None,
    names: Sequence[str] | None = None,
    k: int | None = None,
    where: str | None = None,
) -> SearchResult:
    """The k products nearest to a stored product, a new photo or a text."""
    if sum(x is not None for x in (product, image, title)) != 1:
        raise QueryError("give exactly one of --product, --image or --title")
    explicit = bool(names)
    names = list(names) if names else list(similar.encoders)
    check_names(encoders, names)
    k = k or similar.k
    if image is not None:
        names = fitting_names(encoders, names, "image", explicit)
    elif title is not None:
        names = fitting_names(encoders, names, "title", explicit)
    allowed_ids = where_ids(wh, where) if where else None
    products = read_products(wh, PRODUCT_COLUMNS)
    if product is not None and product not in set(products["product_id"].to_pylist()):
        raise QueryError(f"product {product!r} is not in the catalog (deleted, or never ingested)")
    messages: list[str] = []

    if wants_index(wh, encoders, similar, names):
        result = _index_search(wh, encoders, similar, products, names, explicit, product, image, title, k, allowed_ids, messages)
        if result is not None:
            return result

    catalog = Catalog(products, {n: read_vector_set(wh, n, encoders[n], products) for n in names})
    if product is not None:
        query = product_query(catalog, product, names, explicit)
        skipped = [n for n in names if n not in query]
        if skipped:
            messages.append(f"product {product} has no current {', '.join(skipped)} vector: ranked by {', '.join(query)} only")
    else:
        query = {n: encode_query(encoders[n], image=image, text=title) for n in names}
    allowed = None
    if allowed_ids is not None:
        allowed = np.fromiter((p in allowed_ids for p in catalog.product_ids), dtype=bool, count=catalog.n)
    hits = exact_search(catalog, query, weights_of(similar, list(query)), k, allowed, exclude=product)
    return SearchResult(hits, "exact", list(query), messages)


def _index_search(wh, encoders, similar, products: pa.Table, names, explicit, product, image, title, k, allowed_ids, messages):
    from features.vector_index import current_keys, index_search, load_index, staleness

    indexes = {}
    for n in names:
        eid = make_encoder_id(encoders[n])
        loaded = load_index(wh, eid)
        why = staleness(loaded, current_keys(wh, encoders[n], products), EmbeddingStore(wh, eid).dim)
        if why is not None:
            messages.append(f"{n}: {why}; searching exactly")
            return None
        indexes[n] = loaded
    if product is not None:
        query = {}
        for n in names:
            vec, have = indexes[n].vectors(indexes[n].keys_of([product]))
            if have[0]:
                query[n] = vec[0]
        lacking = [n for n in names if n not in query]
        if lacking and (explicit or not query):
            raise QueryError(f"product {product!r} has no current vector of encoder {', '.join(map(repr, lacking))} "
                             "(no such input, or not encoded since it changed: run `vitrine encode`)")
        if lacking:
            messages.append(f"product {product} has no current {', '.join(lacking)} vector: ranked by {', '.join(query)} only")
    else:
        query = {n: encode_query(encoders[n], image=image, text=title) for n in names}
    hits = index_search(indexes, query, weights_of(similar, list(query)), k, similar.index, allowed_ids, exclude=product)
    if hits is None:
        messages.append(f"the index found fewer than {k} candidates passing --where; searching exactly")
        return None
    return SearchResult(hits, "index", list(query), messages)
