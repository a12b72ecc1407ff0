"""Atomic writes (Parquet files, the DuckDB catalog): a reader sees the old file or the new one, never half of one.

Files are written under a hidden temporary name in the same directory and renamed into place;
readers only ever glob names that do not start with '.', so a killed writer leaves nothing visible.
"""
from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
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


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success it is fsynced and renamed onto `path`.

    On any error the temporary is removed and `path` keeps its previous content.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f"{TMP_PREFIX}{uuid.uuid4().hex}-{path.name}"
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_parquet_atomic(
    table: pa.Table, path: Path, metadata: Mapping[str, str] | None = None
) -> Path:
    """Write `table` to `path` atomically, merging `metadata` into the schema metadata."""
    if metadata:
        merged = dict(table.schema.metadata or {})
        merged.update({k.encode(): v.encode() for k, v in metadata.items()})
        table = table.replace_schema_metadata(merged)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")
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
