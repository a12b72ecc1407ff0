"""Where every table lives inside one warehouse directory.

One place names the paths so that writers, readers and the DuckDB views can never disagree.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_SAFE = re.compile(r"[^A-Za-z0-9._=-]+")


def safe_name(name: str) -> str:
    """A file-system safe form of an id (encoder ids contain '/' and ':')."""
    return _SAFE.sub("_", name).strip("_")


@dataclass(frozen=True)
class Warehouse:
    root: Path

    @property
    def db_path(self) -> Path:
        return self.root / "vitrine.duckdb"

    @property
    def lock_dir(self) -> Path:
        return self.root / "_locks"

    @property
    def products_path(self) -> Path:
        return self.root / "products" / "products.parquet"

    @property
    def deleted_products_path(self) -> Path:
        """Products a full snapshot no longer listed: their last row and when it stopped listing them."""
        return self.root / "products" / "deleted.parquet"

    @property
    def image_cache_path(self) -> Path:
        """stat → hash cache that lets an unchanged re-ingest skip reading images."""
        return self.root / "products" / "_image_stat_cache.parquet"

    @property
    def rejects_dir(self) -> Path:
        return self.root / "rejects"

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def embeddings_root(self) -> Path:
        return self.root / "embeddings"

    def embeddings_dir(self, encoder_id: str) -> Path:
        return self.embeddings_root / safe_name(encoder_id)

    @property
    def models_root(self) -> Path:
        return self.root / "models"

    def model_dir(self, model_id: str) -> Path:
        return self.models_root / safe_name(model_id)

    @property
    def models_registry_path(self) -> Path:
        return self.models_root / "registry.parquet"

    @property
    def predictions_dir(self) -> Path:
        return self.root / "predictions"

    @property
    def predictions_current_path(self) -> Path:
        """The compacted current predictions (warehouse.compaction writes it); `predictions` keeps the history."""
        return self.root / "predictions_current" / "current.parquet"

    @property
    def decisions_dir(self) -> Path:
        """label_decisions: one file per write, unique names, so writers never wait or collide."""
        return self.root / "label_decisions"

    def label_scores_path(self, model_id: str) -> Path:
        """A model's out-of-fold label scores live with the model."""
        return self.model_dir(model_id) / "label_scores.parquet"

    @property
    def index_root(self) -> Path:
        """Approximate-search indexes, one directory per encoder id (a cache: rebuilt from embeddings)."""
        return self.root / "similar_index"

    def index_dir(self, encoder_id: str) -> Path:
        return self.index_root / safe_name(encoder_id)

    @property
    def duplicate_pairs_dir(self) -> Path:
        """duplicate_pairs: one append-only file per `vitrine duplicates` run."""
        return self.root / "duplicate_pairs"

    @property
    def duplicates_compared_dir(self) -> Path:
        """Which (product, image hash, title hash) a duplicates run has compared, one file per run."""
        return self.root / "duplicates_compared"

    @property
    def product_groups_dir(self) -> Path:
        """product_groups: one file per `vitrine groups` run."""
        return self.root / "product_groups"

    def table_dirs(self) -> list[Path]:
        return [
            self.products_path.parent,
            self.rejects_dir,
            self.runs_dir,
            self.embeddings_root,
            self.models_root,
            self.predictions_dir,
            self.predictions_current_path.parent,
            self.decisions_dir,
            self.lock_dir,
        ]


def open_warehouse(root: str | Path) -> Warehouse:
    """Open (and on first use create) a warehouse directory."""
    wh = Warehouse(Path(root).expanduser().resolve())
    for d in wh.table_dirs():
        d.mkdir(parents=True, exist_ok=True)
    return wh
