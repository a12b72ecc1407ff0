"""Ingest a catalog snapshot: validate, hash, merge into `products`, record rejects.

Every source row ends up in `products` or in `rejects`. Content hashes (title and image bytes)
are what later steps key on, so a product is re-encoded only when what it shows changed.
The products file is replaced atomically at the end: a killed ingest leaves the old state.
"""
from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from warehouse import schemas
from warehouse.atomic import remove_stale_temporaries, write_parquet_atomic
from warehouse.images import MISSING, NONE, UNREADABLE, inspect_images
from warehouse.layout import Warehouse
from warehouse.settings import IngestSettings
from warehouse.sources import read_source
from warehouse.tables import now_utc, read_products, read_rejects, replace_rejects


@dataclass
class IngestSummary:
    source: str
    preset: str
    rows: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    repaired: int = 0
    rejected: int = 0
    deleted: int = 0  # products of this source a full snapshot no longer lists
    images_missing: int = 0
    images_unreadable: int = 0
    seconds: float = 0.0
    reject_reasons: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def sha256_text(text: str | None) -> str | None:
    return None if text is None else hashlib.sha256(text.encode("utf-8")).hexdigest()


def content_hash(title_sha: str | None, image_sha: str | None) -> str:
    """One hash over everything an encoder can see of a product."""
    return hashlib.sha256(f"{title_sha or ''}|{image_sha or ''}".encode()).hexdigest()


def _row_fingerprint(rec: dict, columns: list[str]) -> str:
    return hashlib.sha256(json.dumps([rec.get(c) for c in columns], default=str).encode()).hexdigest()


def _label_type(numeric: type | None) -> pa.DataType:
    if numeric is int:
        return pa.int64()
    if numeric is float:
        return pa.float64()
    return pa.string()


def _dedupe(parsed) -> None:
    """A product id listed twice in one snapshot: the later line wins, the earlier is rejected."""
    last: dict[str, int] = {}
    for i, rec in enumerate(parsed.records):
        last[rec["product_id"]] = i
    if len(last) == len(parsed.records):
        return
    keep = set(last.values())
    records, lines, raws = [], [], []
    for i, rec in enumerate(parsed.records):
        if i in keep:
            records.append(rec), lines.append(parsed.lines[i]), raws.append(parsed.raws[i])
        else:
            winner = parsed.lines[last[rec["product_id"]]]
            parsed.rejects.append((parsed.lines[i], parsed.raws[i], f"duplicate product_id {rec['product_id']!r}: superseded by line {winner}"))
    parsed.records, parsed.lines, parsed.raws = records, lines, raws


def ingest(
    wh: Warehouse,
    path: str | Path,
    settings: IngestSettings | None = None,
    preset: str | None = None,
    on_progress: Callable[[str, int, int | None], None] | None = None,
    full_snapshot: bool | None = None,
) -> IngestSummary:
    """Read `path`, merge it into products and rejects; the caller holds the writer lock.

    `on_progress(stage, advance, total)` lets the CLI draw a progress bar without this module
    knowing about terminals. `full_snapshot` (default: the setting) says the file lists its
    source's whole catalog, so the products of that source it lacks are deleted.
    """
    t0 = time.perf_counter()
    settings = settings or IngestSettings()
    preset = preset or settings.preset
    remove_stale_temporaries(wh.products_path.parent)
    remove_stale_temporaries(wh.rejects_dir)
    parsed = read_source(Path(path), preset, settings.generic)
    _dedupe(parsed)
    summary = IngestSummary(source=parsed.source, preset=parsed.source.split(":", 1)[0], rows=len(parsed.records) + len(parsed.rejects))
    summary.repaired = parsed.repaired
    now = now_utc()

    def progress(n: int) -> None:
        if on_progress:
            on_progress("images", n, len(parsed.records))

    if on_progress:
        on_progress("images", 0, len(parsed.records))
    infos = inspect_images(wh, [r["image_path"] for r in parsed.records], settings.check_images, settings.workers, progress)

    label_cols: list[str] = []
    for rec in parsed.records:
        for k in rec:
            if k not in label_cols and k not in ("product_id", "title", "image_path"):
                label_cols.append(k)

    old = read_products(wh)
    if settings.full_snapshot if full_snapshot is None else full_snapshot:
        old, gone = _split_unlisted(old, parsed)
        summary.deleted = gone.num_rows
    else:
        gone = None
    relisted = _relisted(wh, parsed)
    old_by_id = {pid: i for i, pid in enumerate(old["product_id"].to_pylist())} if old.num_rows else {}
    old_cols = {c: old[c].to_pylist() for c in old.column_names} if old.num_rows else {}
    fp_cols = ["title", "image_path", "image_status", "image_sha256", *label_cols]

    new_rows: dict[str, list] = {c: [] for c in [*schemas.PRODUCT_FIXED.names, *label_cols]}
    changed_ids: set[str] = set()
    for rec, info in zip(parsed.records, infos):
        image_status = info.status
        if image_status == MISSING:
            summary.images_missing += 1
        elif image_status == UNREADABLE:
            summary.images_unreadable += 1
        row = dict(rec)
        row["image_status"] = image_status
        row["image_sha256"] = info.sha256 if image_status not in (MISSING, NONE) else None
        if image_status == MISSING:
            row["image_path"] = None
        row["title_sha256"] = sha256_text(row["title"])
        row["content_hash"] = content_hash(row["title_sha256"], row["image_sha256"])
        row["source"] = parsed.source
        i = old_by_id.get(row["product_id"])
        if i is None:
            summary.new += 1
            row["first_seen_at"] = row["updated_at"] = now
            changed_ids.add(row["product_id"])
        else:
            before = {c: old_cols[c][i] for c in fp_cols if c in old_cols}
            if _row_fingerprint(before, fp_cols) == _row_fingerprint(row, fp_cols):
                summary.unchanged += 1
                continue
            summary.updated += 1
            row["first_seen_at"] = old_cols["first_seen_at"][i]
            row["updated_at"] = now
            changed_ids.add(row["product_id"])
        for c in new_rows:
            new_rows[c].append(row.get(c))

    rejects = pa.table(
        {
            "source": [parsed.source] * len(parsed.rejects),
            "line": [r[0] for r in parsed.rejects],
            "raw": [r[1] for r in parsed.rejects],
            "reason": [r[2] for r in parsed.rejects],
            "seen_at": [now] * len(parsed.rejects),
        },
        schema=schemas.REJECTS,
    )
    summary.rejected = rejects.num_rows
    for r in parsed.rejects:
        key = r[2].split(":")[0] if r[2].startswith("duplicate") else r[2]
        summary.reject_reasons[key] = summary.reject_reasons.get(key, 0) + 1
    _write_rejects(wh, parsed.source, rejects)

    if gone is not None and gone.num_rows or relisted:
        _record_deleted(wh, gone, relisted, now)
    if changed_ids or summary.deleted:
        fields = list(schemas.PRODUCT_FIXED) + [
            pa.field(c, _label_type(parsed.numeric.get(c))) for c in label_cols
        ]
        fresh = pa.table(new_rows, schema=pa.schema(fields))
        if old.num_rows:
            mask = pa.array([pid not in changed_ids for pid in old_cols["product_id"]])
            kept = old.filter(mask)
            merged = pa.concat_tables([kept, fresh], promote_options="permissive")
        else:
            merged = fresh
        write_parquet_atomic(merged.sort_by("product_id"), wh.products_path)
    summary.seconds = round(time.perf_counter() - t0, 3)
    return summary


def _split_unlisted(old: pa.Table, parsed) -> tuple[pa.Table, pa.Table]:
    """(products kept, products of this source the snapshot no longer lists).

    A product whose line was rejected is still listed, only malformed: it is kept if its id
    occurs anywhere in a rejected line (a conservative test: it may keep a product it could
    have deleted, never the reverse).
    """
    if not old.num_rows:
        return old, old.slice(0, 0)
    listed = {r["product_id"] for r in parsed.records}
    rejected_text = "\n".join(r[1] for r in parsed.rejects)
    ids, sources = old["product_id"].to_pylist(), old["source"].to_pylist()
    gone = [s == parsed.source and pid not in listed and pid not in rejected_text for pid, s in zip(ids, sources)]
    mask = pa.array(gone)
    return old.filter(pc.invert(mask)), old.filter(mask)


def _relisted(wh: Warehouse, parsed) -> set[str]:
    """Deleted products this file lists again: they come back as new products."""
    if not wh.deleted_products_path.exists():
        return set()
    deleted = set(pq.read_table(wh.deleted_products_path, columns=["product_id"])["product_id"].to_pylist())
    return deleted & {r["product_id"] for r in parsed.records}


def _record_deleted(wh: Warehouse, gone: pa.Table | None, relisted: set[str], now) -> None:
    """Tombstones: the last row of every deleted product with its `deleted_at`; re-listed ones leave."""
    parts = []
    if wh.deleted_products_path.exists():
        prev = pq.read_table(wh.deleted_products_path)
        parts.append(prev.filter(pc.invert(pc.is_in(prev["product_id"], pa.array(sorted(relisted), pa.string())))))
    if gone is not None and gone.num_rows:
        parts.append(gone.append_column(pa.field("deleted_at", schemas.TS), pa.array([now] * gone.num_rows, schemas.TS)))
    table = pa.concat_tables(parts, promote_options="permissive") if parts else None
    if table is None or table.num_rows == 0:
        wh.deleted_products_path.unlink(missing_ok=True)
        return
    write_parquet_atomic(table.sort_by("product_id"), wh.deleted_products_path)


def _write_rejects(wh: Warehouse, source: str, rejects: pa.Table) -> None:
    """Keep the first `seen_at` of a reject seen before, so re-ingesting changes nothing."""
    prev = read_rejects(wh)
    if prev.num_rows:
        prev = prev.filter(pc.equal(prev["source"], source))
    seen = {(l, r, why): at for l, r, why, at in zip(*(prev[c].to_pylist() for c in ("line", "raw", "reason", "seen_at")))}
    now_keys = list(zip(*(rejects[c].to_pylist() for c in ("line", "raw", "reason"))))
    if set(now_keys) == set(seen) and len(now_keys) == len(seen):
        return
    if seen:
        at = [seen.get(k, t) for k, t in zip(now_keys, rejects["seen_at"].to_pylist())]
        rejects = rejects.set_column(4, "seen_at", pa.array(at, schemas.TS))
    replace_rejects(wh, source, rejects)
