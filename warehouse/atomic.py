"""Atomic Parquet writes: a reader sees the old file or the new one, never half of one.

Files are written under a hidden temporary name in the same directory and renamed into place;
readers only ever glob names that do not start with '.', so a killed writer leaves nothing visible.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Mapping

import pyarrow as pa
import pyarrow.parquet as pq

TMP_PREFIX = ".tmp-"


def fsync_dir(path: Path) -> None:
    """Make a rename inside `path` durable."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_parquet_atomic(
    table: pa.Table, path: Path, metadata: Mapping[str, str] | None = None
) -> Path:
    """Write `table` to `path` atomically, merging `metadata` into the schema metadata."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if metadata:
        merged = dict(table.schema.metadata or {})
        merged.update({k.encode(): v.encode() for k, v in metadata.items()})
        table = table.replace_schema_metadata(merged)
    tmp = path.parent / f"{TMP_PREFIX}{uuid.uuid4().hex}-{path.name}"
    try:
        with open(tmp, "wb") as fh:
            pq.write_table(table, fh, compression="zstd")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def remove_stale_temporaries(directory: Path) -> int:
    """Delete temporaries left by killed writers; call only while holding the writer lock."""
    if not directory.exists():
        return 0
    n = 0
    for p in directory.rglob(f"{TMP_PREFIX}*"):
        p.unlink(missing_ok=True)
        n += 1
    return n


def visible_parquet_files(directory: Path) -> list[Path]:
    """Committed Parquet files of a dataset directory, in name order."""
    if not directory.exists():
        return []
    return sorted(
        p for p in directory.rglob("*.parquet") if not any(part.startswith(".") for part in p.relative_to(directory).parts)
    )


def read_metadata(path: Path) -> dict[str, str]:
    md = pq.read_schema(path).metadata or {}
    return {k.decode(): v.decode() for k, v in md.items()}
