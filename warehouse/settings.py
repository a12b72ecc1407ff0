"""Settings of the warehouse room: where it lives, how long a writer waits, how sources map."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    """Base for every settings section: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class WarehouseSettings(Strict):
    path: Path = Path("vitrine-warehouse")
    lock_timeout_s: float = Field(
        10.0, description="how long a second writer waits for the lock before it stops (<0: forever)"
    )
    compact_after_runs: int = Field(
        7, ge=0, description="the nightly compacts predictions once this many scoring runs lie outside the "
        "snapshot (0: only `vitrine compact`)",
    )


class GenericSource(Strict):
    """Column mapping for a catalog that is neither preset: CSV or Parquet, any column names."""

    format: Literal["csv", "parquet", "auto"] = "auto"
    id_column: str
    title_column: str | None = None
    image_column: str | None = Field(None, description="file name, relative path or absolute path/URI")
    image_dir: Path | None = Field(None, description="folder that relative image paths are taken from")
    image_pattern: str | None = Field(
        None, description="image file name from the id, e.g. '{id}.jpg', when no image column exists"
    )
    columns: dict[str, str] = Field(
        default_factory=dict, description="source column -> product column (snake_case)"
    )
    numeric_columns: list[str] = Field(default_factory=list, description="product columns parsed as numbers")


class IngestSettings(Strict):
    preset: Literal["auto", "fashion-product-images", "myntra", "generic"] = "auto"
    generic: GenericSource | None = None
    check_images: bool = Field(True, description="decode every new or changed image to flag unreadable ones")
    workers: int = Field(2, ge=1, description="processes that hash and check images")
    full_snapshot: bool = Field(
        False, description="each ingested file lists its source's whole catalog: products of that source it no longer "
        "lists are marked deleted (they leave the views; their history stays). Off: a file is a delta and deletes nothing",
    )
