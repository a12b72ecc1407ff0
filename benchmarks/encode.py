"""Encoding benchmark: end-to-end `features.encode.encode()` against the bare forward pass.

For each family on its real architecture (random weights where none are cached: CLIP ViT-B-32,
ResNet-50; the real cached MiniLM and tf_efficientnet_lite0), on the Fashion Product Images
catalog (a subset of its images, all its titles):

* images: end-to-end items/s (decode + forward + Parquet commits) against the forward pass alone
  on the same preprocessed tensors and batch size (goal ≥ 0.9×), once per `encode.num_workers`
  setting given (default: `auto`, the shipped default, and 1 worker beside the model);
* titles: dynamic padding (as encode() does) against padding to the model's max length
  (goal ≥ 3×), both forward-only on the same titles and batch size;
* incremental: after changing 1% of titles, a re-run costs ≤ 3% of the full run; measured at 8000
  titles and at the whole catalog, since the re-run's fixed part (model load, the anti-join that
  finds what changed) weighs more the smaller the catalog;
* precision: every image and title row once per `encode.precision` given (default fp32 and bf16),
  bf16 rows with their speed-up over fp32 end to end (goal for images ≥ 1.6×); whether the heads
  stay as accurate on bf16 vectors is `benchmarks/precision_quality.py`.

Writes a markdown table into BENCHMARKS.md under "## Encoding".

    HF_HOME=$PWD/.hf-cache HF_HUB_OFFLINE=1 python benchmarks/encode.py
"""
from __future__ import annotations

import argparse
import csv
import gc
import hashlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import pyarrow as pa
import torch
from PIL import Image

from features.allocator import retained_heap
from features.encode import encode
from features.encoders import clear_cache, load_encoder
from features.identity import encoder_id
from features.precision import autocast
from features.image_transforms import split_for_batching
from features.reader import decode_workers, text_batches
from features.settings import EncodeSettings, EncoderSpec
from warehouse import schemas
from warehouse.atomic import write_parquet_atomic
from warehouse.layout import Warehouse, open_warehouse
from warehouse.tables import now_utc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import command_line, stamp, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "datasets" / "fashion-product-images"

IMAGE_SPECS = {
    "clip ViT-B-32 (random)": EncoderSpec(family="clip", model="ViT-B-32", pretrained="random", input="image"),
    "resnet50 (random)": EncoderSpec(family="resnet", model="resnet50", pretrained="random", input="image"),
    "timm tf_efficientnet_lite0": EncoderSpec(family="timm", model="hf-hub:timm/tf_efficientnet_lite0.in1k", input="image"),
}
TEXT_SPECS = {
    "clip ViT-B-32 text (random)": EncoderSpec(family="clip", model="ViT-B-32", pretrained="random", input="title"),
    "bert all-MiniLM-L6-v2": EncoderSpec(family="bert", model="sentence-transformers/all-MiniLM-L6-v2", input="title"),
}


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def read_catalog(n: int | None) -> list[dict]:
    """First `n` (None: all) styles.csv rows that parse and have an image (the benchmark's own tiny reader)."""
    rows = []
    with open(DATA / "styles.csv", newline="", encoding="utf-8", errors="replace") as fh:
        for rec in csv.reader(fh):
            if len(rec) < 10 or not rec[0].isdigit():
                continue
            img = DATA / "images" / f"{rec[0]}.jpg"
            if img.exists():
                rows.append({"product_id": rec[0], "title": ",".join(rec[9:]).strip() or None, "image_path": str(img)})
            if n is not None and len(rows) >= n:
                break
    return rows


def write_products(wh: Warehouse, rows: list[dict]) -> None:
    """A warehouse.tables-compatible products table (what ingestion would leave)."""
    now = now_utc()
    cols: dict[str, list] = {f.name: [] for f in schemas.PRODUCT_FIXED}
    for r in rows:
        img_sha = r.get("image_sha256") or _sha(Path(r["image_path"]).read_bytes())
        r["image_sha256"] = img_sha
        t_sha = _sha(r["title"].encode()) if r["title"] else None
        for k, v in [("product_id", r["product_id"]), ("source", "fashion"), ("title", r["title"]),
                     ("image_path", r["image_path"]), ("image_status", "ok"), ("image_sha256", img_sha),
                     ("title_sha256", t_sha), ("content_hash", _sha(f"{img_sha}|{t_sha}".encode())),
                     ("first_seen_at", now), ("updated_at", now)]:
            cols[k].append(v)
    write_parquet_atomic(pa.table(cols, schema=schemas.PRODUCT_FIXED), wh.products_path)


def model_ready_batches(enc, imgs: list[Image.Image], batch_size: int) -> list[torch.Tensor]:
    """The batches the reader hands the model (its per-image and per-batch steps), made up front."""
    per_image, per_batch = split_for_batching(enc.preprocess, enc.channels_last)
    crops = torch.stack([per_image(im) for im in imgs])
    return [per_batch(b) if per_batch else b for b in torch.split(crops, batch_size)]


def bare_forward(enc, batches: list, retain: bool = True, precision: str = "fp32") -> float:
    """Items/s of the forward pass alone over ready-made batches (one warm-up batch untimed).

    Under the same heap setting as encode() (`retain`), unless asked for glibc's defaults, and in
    the same precision (bf16: CPU autocast, as features.mapper runs it).
    """
    with retained_heap() if retain else nullcontext(), torch.inference_mode(), autocast(precision):
        enc.forward(enc.prepare(batches[0]))
        t = time.perf_counter()
        n = 0
        for b in batches:
            enc.forward(enc.prepare(b))
            n += len(b) if isinstance(b, torch.Tensor) else b["input_ids"].shape[0]
    return n / (time.perf_counter() - t)


def decode_label(setting: str, threads: int) -> str:
    n = decode_workers(setting if setting == "auto" else int(setting), threads)
    mode = f"{n} worker{'s' if n != 1 else ''}" if n else "inline"
    return f"{mode} (num_workers {setting})"


def rerun_row(wh: Warehouse, label: str, spec: EncoderSpec, st: EncodeSettings, rows: list[dict], reps: int) -> str:
    """A full run over `rows`, then `reps` re-runs that each follow a change to a different 1% of titles.

    Every run loads its own model, as a `vitrine encode` process does; the row gives the median
    re-run against the full run, and the model load apart, since it is the part no catalog size
    amortises.
    """
    shutil.rmtree(wh.embeddings_dir(encoder_id(spec)), ignore_errors=True)
    write_products(wh, rows)
    clear_cache()
    (first,) = encode(wh, {"title": spec}, st, progress=False)
    step = 100  # 1% of titles change, a different 1% each time
    agains = []
    for k in range(reps):
        changed = [dict(r, title=f"{r['title']} (new season {k})") if i % step == k else r for i, r in enumerate(rows)]
        write_products(wh, changed)
        clear_cache()
        (again,) = encode(wh, {"title": spec}, st, progress=False)
        agains.append(again)
    med = sorted(agains, key=lambda a: a.seconds)[len(agains) // 2]
    shares = sorted(a.seconds / first.seconds for a in agains)
    return (
        f"| {label}: re-run after 1% of {len(rows)} titles changed | title | {med.encoded} of {med.candidates} | | "
        f"{med.precision} | "
        f"{med.seconds:.2f}s (model load {med.load_seconds:.2f}s) vs full run {first.seconds:.2f}s "
        f"(model load {first.load_seconds:.2f}s) | | **{med.seconds / first.seconds:.2%}** of the full run, median of "
        f"{reps} ({shares[0]:.2%}–{shares[-1]:.2%}; goal ≤ 3%); "
        f"{(med.seconds - med.load_seconds) / (first.seconds - first.load_seconds):.2%} without model load | |"
    )


def run(args: argparse.Namespace) -> str:
    torch.set_num_threads(args.threads)
    worker_settings = args.num_workers.split(",")
    precisions = args.precision.split(",")
    runs = {w: EncodeSettings(batch_size=args.batch_size, num_workers=w, threads=args.threads, chunk_rows=args.chunk_rows)
            for w in worker_settings}
    st = runs[worker_settings[0]]  # title rows and re-runs: the shipped precision (auto)
    rows = read_catalog(max(args.images, args.titles) if args.titles else None)
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        wh = open_warehouse(Path(tmp) / "wh")
        img_rows = rows[: args.images]
        write_products(wh, img_rows)
        imgs = [Image.open(r["image_path"]).convert("RGB") for r in img_rows]
        for label, spec in IMAGE_SPECS.items():
            if args.only and args.only not in label:
                continue
            enc = load_encoder(spec, threads=args.threads)
            x = model_ready_batches(enc, imgs, args.batch_size)
            # bare and end-to-end interleaved, medians taken: this damps drift of a shared VM
            defaults = [bare_forward(enc, x, retain=False)]  # what the heap setting is worth to the model alone
            bares = {p: [bare_forward(enc, x, precision=p)] for p in precisions}
            e2es: dict[tuple[str, str], list[float]] = {(w, p): [] for w in runs for p in precisions}
            reps: dict[tuple[str, str], object] = {}
            for _ in range(args.reps):
                for (w, p) in e2es:
                    shutil.rmtree(wh.embeddings_dir(encoder_id(spec)), ignore_errors=True)
                    (reps[w, p],) = encode(wh, {"image": spec}, runs[w].model_copy(update={"precision": p}), progress=False)
                    e2es[w, p].append(reps[w, p].encoded / (reps[w, p].seconds - reps[w, p].load_seconds))
                for p in precisions:
                    bares[p].append(bare_forward(enc, x, precision=p))
            defaults.append(bare_forward(enc, x, retain=False))
            print(f"{label}: bare items/s in order " + "; ".join(f"{p}: {[round(b, 1) for b in bs]}" for p, bs in bares.items())
                  + "; end-to-end " + "; ".join(f"{w} {p}: {[round(e, 1) for e in es]}" for (w, p), es in e2es.items()), flush=True)
            for (w, p), rep in reps.items():
                # each end-to-end run against the bare runs just before and after its repetition: a
                # slow spell of the shared VM then weighs on both sides of one ratio, not on one only
                ratios = sorted(e / ((b0 + b1) / 2) for e, b0, b1 in zip(e2es[w, p], bares[p], bares[p][1:]))
                fp32 = e2es.get((w, "fp32"))
                speedup = sorted(e / f for e, f in zip(e2es[w, p], fp32)) if fp32 and p != "fp32" else None
                checked = f" (checked: cosine to fp32 mean {rep.bf16_cosine[0]:.4f}, lowest {rep.bf16_cosine[1]:.4f})" if rep.bf16_cosine else ""
                lines.append(
                    f"| {label} | image | {rep.encoded} | {decode_label(w, args.threads)} | {rep.precision}{checked} | "
                    f"{statistics.median(e2es[w, p]):.1f}"
                    + (f" (**{statistics.median(speedup):.2f}×** fp32, {speedup[0]:.2f}–{speedup[-1]:.2f}; goal ≥ 1.6×)" if speedup else "")
                    + f" | {statistics.median(bares[p]):.1f}"
                    + (f" ({statistics.mean(defaults):.1f} with glibc's default heap)" if p == "fp32" else "")
                    + f" | **{statistics.median(ratios):.3f}×** ({ratios[0]:.2f}–{ratios[-1]:.2f}; goal ≥ 0.9×) | "
                    f"read {rep.read_seconds:.1f}s / infer {rep.inference_seconds:.1f}s / write {rep.write_seconds:.2f}s |"
                )
                print(lines[-1], flush=True)
            del x, enc
            clear_cache()  # the next encoder starts from a process without this one's model
            gc.collect()

        text_rows = [r for r in (rows[: args.titles] if args.titles else rows) if r["title"]]
        write_products(wh, text_rows)
        titles = [r["title"] for r in text_rows]
        for label, spec in TEXT_SPECS.items():
            if args.only and args.only not in label:
                continue
            enc = load_encoder(spec, threads=args.threads)
            sample = titles[: args.pad_sample]
            ids = [str(i) for i in range(len(sample))]  # dynamic: the runner's own length-sorted batches
            dynamic = [b.inputs for b in text_batches(ids, ids, sample, enc.tokenize, args.batch_size)]
            padded = [enc.tokenize(sample[i : i + args.batch_size], pad_to_max=True) for i in range(0, len(sample), args.batch_size)]
            speeds = {p: (bare_forward(enc, dynamic, precision=p), bare_forward(enc, padded, precision=p)) for p in precisions}
            del enc
            e2e = {}
            for p in precisions:
                clear_cache()  # the run loads its own model, as `vitrine encode` does
                shutil.rmtree(wh.embeddings_dir(encoder_id(spec)), ignore_errors=True)
                (rep,) = encode(wh, {"title": spec}, st.model_copy(update={"precision": p}), progress=False)
                e2e[p] = rep.encoded / (rep.seconds - rep.load_seconds)
                dyn, full = speeds[p]
                checked = f" (checked: cosine to fp32 mean {rep.bf16_cosine[0]:.5f}, lowest {rep.bf16_cosine[1]:.5f})" if rep.bf16_cosine else ""
                lines.append(
                    f"| {label} | title | {rep.encoded} | | {rep.precision}{checked} | {e2e[p]:.1f}"
                    + (f" ({e2e[p] / e2e['fp32']:.2f}× fp32)" if p != "fp32" and "fp32" in e2e else "")
                    + f" | {dyn:.1f} dynamic vs {full:.1f} max-length "
                    f"({len(sample)} titles) | **{dyn / full:.1f}×** dynamic padding (goal ≥ 3×) | "
                    f"read {rep.read_seconds:.1f}s / infer {rep.inference_seconds:.1f}s / write {rep.write_seconds:.2f}s |"
                )
                print(lines[-1], flush=True)
            if spec.family == "bert":
                sizes = {len(text_rows) if n == "all" else min(int(n), len(text_rows)) for n in args.rerun_sizes.split(",")}
                for size in sorted(sizes):
                    lines.append(rerun_row(wh, label, spec, st, text_rows[:size], args.rerun_reps))
                    print(lines[-1], flush=True)
                write_products(wh, text_rows)
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=1024, help="catalog images encoded per image encoder")
    ap.add_argument("--titles", type=int, default=0, help="catalog rows whose titles are encoded per text encoder (0: all)")
    ap.add_argument("--rerun-sizes", default="8000,all",
                    help="catalog sizes (in titles, or 'all') of the 1%%-changed re-run experiment, comma-separated")
    ap.add_argument("--rerun-reps", type=int, default=3, help="re-runs per size, each after a different 1%% changed")
    ap.add_argument("--pad-sample", type=int, default=128, help="titles used for dynamic vs max-length padding")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--precision", default="fp32,bf16", help="comma-separated encode.precision settings, a row each")
    ap.add_argument("--num-workers", default="auto",
                    help="comma-separated encode.num_workers settings, each an end-to-end row per image encoder; "
                         "the first one also runs the title encoders")
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--chunk-rows", type=int, default=2048)
    ap.add_argument("--reps", type=int, default=5, help="end-to-end runs per image encoder, interleaved with bare ones")
    ap.add_argument("--only", default=None, help="run only encoders whose label contains this")
    ap.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = ap.parse_args()
    t0 = time.perf_counter()
    table = run(args)
    cmd = command_line(__file__, prefix="HF_HOME=$PWD/.hf-cache HF_HUB_OFFLINE=1 ")
    body = (
        stamp(cmd.strip())
        + f"\nWall time {time.perf_counter() - t0:.0f}s. On a shared 2-core VM the image ratios of one run move by "
        "as much as the bare forward pass itself, which changes between runs minutes apart; the "
        "lowest–highest column shows one run's spread. Re-run before drawing conclusions from a single row.\n\n"
        f"Settings: batch {args.batch_size}, {args.threads} torch threads, decoding as each row says "
        f"(`encode.num_workers` {args.num_workers.replace(',', ' and ')}; `auto` decodes inline when the torch threads "
        "take every core), "
        f"chunk {args.chunk_rows} rows. Data: the first {args.images} images and "
        f"{f'the first {args.titles}' if args.titles else 'all'} titles of Fashion Product Images "
        f"(60×80 JPEGs). Image rows: {args.reps} end-to-end runs interleaved with {args.reps + 1} bare ones; items/s are "
        "medians, the ratio is the median (lowest–highest) of each end-to-end run over the mean of the bare runs "
        "on either side of it. End-to-end = `encode()` items/s excluding the one-off model load (read + inference + "
        "Parquet commits); bare = forward pass only on the same preprocessed tensors / titles and batch size, with "
        "the heap setting `encode()` uses (`features.allocator.retained_heap`), and in brackets the mean of two bare "
        "runs (first and last) with glibc's default heap. "
        f"Re-run rows: a full run, then {args.rerun_reps} re-runs, each after a different 1% of titles changed; every "
        "run loads its own model, as a `vitrine encode` process does, in the shipped precision (`auto`). "
        "Precision: bf16 = CPU autocast (`encode.precision: bf16`); its end-to-end speed-up is the median of "
        "each bf16 run over the fp32 run of the same repetition; `checked` is the run's own check of its first "
        "batch against fp32.\n\n"
        "| encoder | input | rows | decoding | precision | end-to-end items/s | bare forward items/s | ratio | time split |\n"
        "|---|---|---|---|---|---|---|---|---|\n" + table
    )
    print(body)
    if not args.no_write:
        # a partial run (--only) gets a section of its own instead of replacing the whole table
        write_section("Encoding" if not args.only else f"Encoding: {args.only} only", body)


if __name__ == "__main__":
    main()
