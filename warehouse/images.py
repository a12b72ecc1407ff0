"""Image bytes → SHA-256 and a decode check, skipping files whose stat has not changed.

The stat cache (path, size, mtime_ns → hash, status) is what lets an unchanged re-ingest of a
35k-image folder finish in seconds: only new or touched files are read and decoded.
"""
from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from warehouse.atomic import write_parquet_atomic
from warehouse.layout import Warehouse

OK, MISSING, UNREADABLE, NONE = "ok", "missing", "unreadable", "none"

CACHE_SCHEMA = pa.schema(
    [("path", pa.string()), ("size", pa.int64()), ("mtime_ns", pa.int64()), ("sha256", pa.string()), ("status", pa.string())]
)


@dataclass(frozen=True)
class ImageInfo:
    status: str
    sha256: str | None
    size: int = -1
    mtime_ns: int = -1


def _check(path: str, decode: bool) -> ImageInfo:
    """Hash a file's bytes and (optionally) prove it decodes. Runs in worker processes."""
    try:
        st = os.stat(path)
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError:
        return ImageInfo(MISSING, None)
    digest = hashlib.sha256(data).hexdigest()
    status = OK
    if decode:
        try:
            with Image.open(io.BytesIO(data)) as im:
                im.load()
        except Exception:  # PIL raises many types for broken files; all mean "unreadable"
            status = UNREADABLE
    return ImageInfo(status, digest, st.st_size, st.st_mtime_ns)


def _check_many(paths: Sequence[str], decode: bool) -> list[ImageInfo]:
    return [_check(p, decode) for p in paths]


def load_cache(wh: Warehouse) -> dict[str, tuple[int, int, str, str]]:
    if not wh.image_cache_path.exists():
        return {}
    t = pq.read_table(wh.image_cache_path).to_pydict()
    return {p: (s, m, h, st) for p, s, m, h, st in zip(t["path"], t["size"], t["mtime_ns"], t["sha256"], t["status"])}


def save_cache(wh: Warehouse, infos: dict[str, ImageInfo]) -> None:
    kept = {p: i for p, i in infos.items() if i.sha256 is not None}
    table = pa.table(
        {
            "path": list(kept),
            "size": [i.size for i in kept.values()],
            "mtime_ns": [i.mtime_ns for i in kept.values()],
            "sha256": [i.sha256 for i in kept.values()],
            "status": [i.status for i in kept.values()],
        },
        schema=CACHE_SCHEMA,
    )
    write_parquet_atomic(table, wh.image_cache_path)


def inspect_images(
    wh: Warehouse,
    paths: Sequence[str | None],
    decode: bool = True,
    workers: int = 2,
    on_progress: Callable[[int], None] | None = None,
) -> list[ImageInfo]:
    """ImageInfo for each path (NONE for a product without an image location), in order."""
    cache = load_cache(wh)
    result: dict[str, ImageInfo] = {}
    todo: list[str] = []
    for p in dict.fromkeys(x for x in paths if x):
        if "://" in p:
            result[p] = ImageInfo(MISSING, None)  # remote URIs are not fetched by ingest
            continue
        try:
            st = os.stat(p)
        except OSError:
            result[p] = ImageInfo(MISSING, None)
            continue
        hit = cache.get(p)
        if hit and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
            result[p] = ImageInfo(hit[3], hit[2], hit[0], hit[1])
        else:
            todo.append(p)
    if on_progress:
        on_progress(len(paths) - len(todo))
    step = 512
    batches = [todo[i : i + step] for i in range(0, len(todo), step)]
    if workers > 1 and len(todo) > 2 * step:
        with ProcessPoolExecutor(workers) as pool:
            for batch, infos in zip(batches, pool.map(_check_many, batches, [decode] * len(batches))):
                result.update(zip(batch, infos))
                if on_progress:
                    on_progress(len(batch))
    else:
        for batch in batches:
            result.update(zip(batch, _check_many(batch, decode)))
            if on_progress:
                on_progress(len(batch))
    if todo:
        save_cache(wh, {**{p: ImageInfo(v[3], v[2], v[0], v[1]) for p, v in cache.items()}, **result})
    return [result[p] if p else ImageInfo(NONE, None) for p in paths]
