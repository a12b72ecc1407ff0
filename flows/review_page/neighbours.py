"""Similar products on the review cards: how the listings nearest to a candidate are labelled.

A reviewer unsure whether "Flats" or "Heels" is right decides faster seeing that the five
nearest listings (by the stored vectors, the same exact search as `vitrine similar`) are heels.
The catalog and its vectors are read once per warehouse state (products file and embedding
chunks unchanged), not once per card. Each neighbour shows the catalog's own label for the
card's target (the seller's), read with the products in the same pass; a reviewer's decision of a
minute ago on a neighbour is not reflected there.
"""
from __future__ import annotations

import threading
from collections.abc import Mapping

import pyarrow.compute as pc

from features.identity import encoder_id
from features.search import weights_of
from features.settings import EncoderSpec, SimilarSettings
from features.similar import Catalog, QueryError, exact_search, product_query, read_vector_set
from warehouse.atomic import visible_parquet_files
from warehouse.layout import Warehouse
from warehouse.review_queue import file_state
from warehouse.tables import read_products
from warehouse.views import label_columns


class Neighbours:
    """`create_app(similar=Neighbours(...))`: (product_id, target) -> the k nearest products."""

    def __init__(self, wh: Warehouse, encoders: Mapping[str, EncoderSpec], similar: SimilarSettings, k: int):
        self.wh, self.k = wh, k
        self.names = [n for n in similar.encoders if n in encoders]
        self.encoders = {n: encoders[n] for n in self.names}
        self.weights = weights_of(similar, self.names)
        self._lock = threading.Lock()
        self._state: tuple | None = None
        self._catalog: Catalog | None = None
        self._labels: dict[str, list] = {}

    def state(self) -> tuple:
        files = [self.wh.products_path]
        for spec in self.encoders.values():
            files += visible_parquet_files(self.wh.embeddings_dir(encoder_id(spec)))
        return tuple(file_state(f) for f in files)

    def catalog(self) -> tuple[Catalog, dict[str, list]]:
        state = self.state()
        with self._lock:
            if self._catalog is None or state != self._state:
                targets = label_columns(self.wh)
                products = read_products(self.wh, ["product_id", "title", "image_sha256", "title_sha256", *targets])
                sets = {n: read_vector_set(self.wh, n, spec, products) for n, spec in self.encoders.items()}
                self._catalog = Catalog(products, sets)
                self._labels = {t: pc.cast(products[t], "string").to_pylist() for t in targets}
                self._state = state
            return self._catalog, self._labels

    def __call__(self, product_id: str, target: str) -> list[dict]:
        if not self.names:
            return []
        catalog, labels = self.catalog()
        try:
            query = product_query(catalog, product_id, self.names, explicit=False)
        except QueryError:  # no current vector of any encoder (e.g. not encoded since it changed)
            return []
        hits = exact_search(catalog, query, {n: self.weights[n] for n in query}, self.k, exclude=product_id)
        titles = catalog.products["title"]
        out = []
        for h in hits:
            pos = catalog.position[h.product_id]
            label = labels[target][pos] if target in labels else None
            out.append({"product_id": h.product_id, "title": titles[pos].as_py(), "label": label,
                        "similarity": h.similarity})
        return out
