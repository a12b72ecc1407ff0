"""encode(): the runner that ties reader → mapper → writer together for each named encoder.

Like clip-retrieval's runner, it times every batch's read (decode / tokenise, waiting on the
DataLoader), inference and write apart, so the report shows where the time goes. It encodes only
the (product_id, content_hash) pairs the store lacks for that encoder, decides that before any
model is loaded (a run with nothing to do takes seconds), and commits chunk by chunk so a killed
run resumes where its last committed chunk ended. The caller holds the warehouse writer lock.

Vectors are keyed by content: a product whose photo bytes or title text the store already holds
under another product gets a copy of that vector, and products sharing a content in one run share
one forward pass (`report.reused`). Re-listings and catalogs that reuse photos pay once per photo.
"""
from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from features.allocator import retained_heap
from features.encoders import Encoder, load_encoder
from features.identity import encoder_id as make_encoder_id
from features.mapper import Mapper
from features.precision import PrecisionMismatch, resolve as resolve_precision
from features.reader import Batch, decode_workers, image_batches, text_batches
from features.settings import EncoderSpec, EncodeSettings
from features.store import EmbeddingStore, EncoderMismatch
from features.writer import ChunkWriter
from warehouse.atomic import remove_stale_temporaries
from warehouse.layout import Warehouse
from warehouse.tables import read_products

log = logging.getLogger(__name__)

PRODUCT_COLUMNS = ["product_id", "title", "image_path", "image_status", "image_sha256", "title_sha256"]


@dataclass
class EncodeReport:
    name: str
    encoder_id: str
    dim: int | None
    candidates: int  # products with this encoder's input (in this shard)
    already_stored: int  # of which the store already had a vector for the current content
    encoded: int  # vectors written: inferred, or copied from the same content (`reused`)
    skipped_no_input: int  # products without an image / title: no vector, ever a zero one
    failed: list[tuple[str, str]] = field(default_factory=list)  # (product_id, reason)
    seconds: float = 0.0
    load_seconds: float = 0.0
    read_seconds: float = 0.0
    inference_seconds: float = 0.0
    write_seconds: float = 0.0
    chunks_written: int = 0
    shard: tuple[int, int] | None = None
    precision: str | None = None  # what the forward pass ran in (after the fp32 check of the first batch)
    bf16_cosine: tuple[float, float] | None = None  # (mean, lowest) cosine of the first batch's bf16 vectors to fp32
    reused: int = 0  # of `encoded`, vectors copied from another product with the same content

    def as_dict(self) -> dict:
        d = asdict(self)
        d["failed"] = [list(f) for f in self.failed]
        return d


def product_columns(wh: Warehouse, specs: list[EncoderSpec]) -> list[str]:
    """The products columns the encoders read: the fixed ones, and those a columns encoder names."""
    from features.encoders import columns
    from warehouse.tables import product_column_names

    have = set(product_column_names(wh))
    extra = [c for s in specs if s.input == "columns" for c in columns.parse_model(s.model).columns]
    return [c for c in dict.fromkeys(PRODUCT_COLUMNS + extra) if c in have or c in PRODUCT_COLUMNS]


def shard_of(product_ids: list[str], n: int) -> np.ndarray:
    """Stable shard number of each product id (blake2b, not Python's salted hash())."""
    return np.fromiter(
        (int.from_bytes(hashlib.blake2b(p.encode(), digest_size=8).digest(), "big") % n for p in product_ids),
        dtype=np.int64,
        count=len(product_ids),
    )


def candidates(products: pa.Table, input_kind: str, spec: EncoderSpec | None = None) -> tuple[pa.Table, int]:
    """(product_id, content_hash, source) of products that have this input; and how many lack it.

    Images: image_status 'ok' keyed by image_sha256; titles: non-null title keyed by title_sha256,
    so a changed title re-encodes only title encoders; columns: every product, keyed by a hash of
    its values of the encoder's columns, so a changed column re-encodes only that product.
    """
    if input_kind == "columns":
        from features.encoders import columns

        srcs = columns.sources(products, columns.parse_model(spec.model))
        return pa.table({"product_id": products["product_id"], "content_hash": pa.array(columns.content_hashes(srcs)),
                         "source": pa.array(srcs, pa.string())}), 0
    if input_kind == "image":
        has = pc.and_(pc.equal(products["image_status"], "ok"), pc.is_valid(products["image_path"]))
        src, key = "image_path", "image_sha256"
    else:
        has = pc.and_(pc.is_valid(products["title"]), pc.not_equal(products["title"], ""))
        src, key = "title", "title_sha256"
    has = pc.fill_null(has, False)
    kept = products.filter(has)
    table = pa.table({"product_id": kept["product_id"], "content_hash": kept[key], "source": kept[src]})
    return table, products.num_rows - kept.num_rows


def _batches(enc: Encoder, todo: pa.Table, batch_size: int, settings: EncodeSettings) -> Iterator[Batch]:
    ids = todo["product_id"].to_pylist()
    hashes = todo["content_hash"].to_pylist()
    sources = todo["source"].to_pylist()
    if enc.input == "image":
        return image_batches(ids, hashes, sources, enc.preprocess, batch_size,
                             decode_workers(settings.num_workers, settings.threads),
                             idle_workers=settings.decode_priority == "idle", channels_last=enc.channels_last)
    return text_batches(ids, hashes, sources, enc.tokenize, batch_size)


def encode_one(
    wh: Warehouse,
    name: str,
    spec: EncoderSpec,
    settings: EncodeSettings,
    products: pa.Table,
    shard: tuple[int, int] | None = None,
    progress: bool = True,
) -> EncodeReport:
    """Encode the missing vectors of one named encoder; see `encode`."""
    t0 = time.perf_counter()
    eid = make_encoder_id(spec)
    if shard is None:  # sharded runs write side by side; their caller cleans up before they start
        remove_stale_temporaries(wh.embeddings_dir(eid))
    keys, no_input = candidates(products, spec.input, spec)
    if shard is not None:
        i, n = shard
        if not 0 <= i < n:
            raise ValueError(f"shard {i} of {n} does not exist")
        in_shard = pa.array(shard_of(keys["product_id"].to_pylist(), n) == i)
        keys = keys.filter(in_shard)
        if products.num_rows:
            no_input = int((shard_of(products["product_id"].to_pylist(), n) == i).sum()) - keys.num_rows
    store = EmbeddingStore(wh, eid)
    todo = store.missing(keys)
    report = EncodeReport(
        name=name, encoder_id=eid, dim=store.dim, candidates=keys.num_rows,
        already_stored=keys.num_rows - todo.num_rows, encoded=0, skipped_no_input=no_input, shard=shard,
    )
    todo = copy_stored_contents(store, todo, settings.chunk_rows, report)
    if todo.num_rows == 0:
        report.seconds = time.perf_counter() - t0
        return report
    todo, sharing = first_of_each_content(todo)

    tl = time.perf_counter()
    enc = load_encoder(spec, threads=settings.threads, encoder_id=eid)
    report.load_seconds = time.perf_counter() - tl
    if store.dim is not None and store.dim != enc.dim:
        raise EncoderMismatch(f"store of {eid!r} holds {store.dim}-d vectors but the encoder makes {enc.dim}-d ones")
    store.dim = report.dim = enc.dim
    mapper = Mapper(enc, resolve_precision(settings.precision, spec.input))
    writer = ChunkWriter(store, settings.chunk_rows)
    batch_size = spec.batch_size or settings.batch_size

    columns = [TextColumn(f"[bold]{name}[/] {spec.input}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
    with Progress(*columns, disable=not progress, transient=False) as bar:
        task = bar.add_task(name, total=todo.num_rows)
        batches = _batches(enc, todo, batch_size, settings)
        while True:
            tr = time.perf_counter()
            batch = next(batches, None)
            report.read_seconds += time.perf_counter() - tr
            if batch is None:
                break
            report.failed.extend(batch.failed)
            report.failed.extend((pid, reason) for first, reason in batch.failed for pid, _ in sharing.get(first, ()))
            if len(batch):
                ti = time.perf_counter()
                if report.precision is None:
                    vectors = _checked_first_batch(mapper, batch.inputs, name, settings, report)
                    writer.metadata = {"vitrine.precision": report.precision}
                else:
                    vectors = mapper(batch.inputs)
                report.inference_seconds += time.perf_counter() - ti
                tw = time.perf_counter()
                writer.add(batch.product_ids, batch.content_hashes, vectors)
                fan = [(pid, h, i) for i, first in enumerate(batch.product_ids) for pid, h in sharing.get(first, ())]
                if fan:
                    writer.add([f[0] for f in fan], [f[1] for f in fan], vectors[[f[2] for f in fan]])
                    report.reused += len(fan)
                report.write_seconds += time.perf_counter() - tw
            bar.advance(task, len(batch) + len(batch.failed))
        tw = time.perf_counter()
        writer.flush()
        report.write_seconds += time.perf_counter() - tw
    for pid, reason in report.failed:
        log.warning("encoder %s: product %s not encoded: %s", name, pid, reason)
    report.encoded += writer.rows_written
    report.chunks_written += len(writer.files)
    report.seconds = time.perf_counter() - t0
    return report


def copy_stored_contents(store: EmbeddingStore, todo: pa.Table, chunk_rows: int, report: EncodeReport) -> pa.Table:
    """Write, for the products of `todo` whose content the store holds under another product, a
    copy of that vector; return the rest of `todo`. Counted in report.encoded and report.reused."""
    if todo.num_rows == 0 or store.dim is None:
        return todo
    hashes = todo["content_hash"].to_pylist()
    rows_of: dict[str, list[int]] = {}
    for i, h in enumerate(hashes):
        rows_of.setdefault(h, []).append(i)
    ids = todo["product_id"].to_pylist()
    writer = ChunkWriter(store, chunk_rows)
    writer.metadata = {"vitrine.copied": "same content hash"}
    done = np.zeros(todo.num_rows, dtype=bool)
    for got, vectors in store.vectors_for_hashes(list(rows_of)):
        rows = [(i, k) for k, h in enumerate(got) for i in rows_of[h]]
        take = np.array([r[0] for r in rows], dtype=np.int64)
        writer.add([ids[i] for i in take], [hashes[i] for i in take], vectors[[r[1] for r in rows]])
        done[take] = True
    writer.flush()
    report.encoded += writer.rows_written
    report.reused += writer.rows_written
    report.chunks_written += len(writer.files)
    return todo.filter(pa.array(~done)) if done.any() else todo


def first_of_each_content(todo: pa.Table) -> tuple[pa.Table, dict[str, list[tuple[str, str]]]]:
    """The first product of each content hash, and for each such product the (product_id, hash)
    of the others with the same content: they get its vector, not a forward pass of their own."""
    hashes = todo["content_hash"].to_pylist()
    ids = todo["product_id"].to_pylist()
    first: dict[str, str] = {}
    keep = np.zeros(len(hashes), dtype=bool)
    sharing: dict[str, list[tuple[str, str]]] = {}
    for i, (pid, h) in enumerate(zip(ids, hashes)):
        if h in first:
            sharing.setdefault(first[h], []).append((pid, h))
        else:
            first[h] = pid
            keep[i] = True
    return (todo if keep.all() else todo.filter(pa.array(keep))), sharing


def _checked_first_batch(mapper: Mapper, inputs, name: str, settings: EncodeSettings, report: EncodeReport):
    """The first batch's vectors; in bf16, checked against fp32 first (see features.precision)."""
    vectors, cos = mapper.agreement(inputs)
    if mapper.precision == "bf16":
        report.bf16_cosine = (round(float(cos.mean()), 6), round(float(cos.min()), 6))
        if cos.mean() < settings.bf16_mean_cosine or cos.min() < settings.bf16_min_cosine:
            why = (f"encoder {name!r}: bf16 vectors differ from fp32 ones (cosine mean {cos.mean():.5f}, lowest "
                   f"{cos.min():.5f}; encode.bf16_mean_cosine {settings.bf16_mean_cosine}, "
                   f"bf16_min_cosine {settings.bf16_min_cosine})")
            if settings.precision == "bf16":
                raise PrecisionMismatch(f"{why}; set encode.precision to fp32 or auto for this encoder")
            log.warning("%s: encoding this run in fp32", why)
            mapper.precision = "fp32"
            vectors = mapper(inputs)
    report.precision = mapper.precision
    return vectors


def encode(
    wh: Warehouse,
    encoders: dict[str, EncoderSpec],
    settings: EncodeSettings,
    names: list[str] | None = None,
    shard: tuple[int, int] | None = None,
    progress: bool = True,
) -> list[EncodeReport]:
    """Encode, for each named encoder, the products whose current content has no vector yet.

    `names` picks encoders of the config (default: all); `shard=(i, n)` restricts to products
    whose stable hash % n == i, so n shards write disjoint chunks. Products are read once.
    """
    chosen = list(encoders) if names is None else list(names)
    unknown = [n for n in chosen if n not in encoders]
    if unknown:
        raise KeyError(f"no encoder named {unknown} in the config (known: {sorted(encoders)})")
    products = read_products(wh, columns=product_columns(wh, [encoders[n] for n in chosen]))
    with retained_heap():  # activations reused batch to batch, not page-faulted in again (features.allocator)
        return [encode_one(wh, n, encoders[n], settings, products, shard, progress) for n in chosen]
