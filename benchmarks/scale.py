"""One night at a million products: a first full run, then the nightly after 1% churn.

The catalog is made from Fashion Product Images: its real products first, then recombined ones
(a real title with another product's first word, the real labels, the real photo reused), as a
generic CSV that names the photo by absolute path. The model is trained on the first
`--train-rows` products (title encoders only: the first full run encodes titles, not a million
photos), then:

1. first full run: `vitrine ingest` (a full snapshot), `vitrine encode`, `vitrine predict`;
2. 1% churn: a third of it deleted, a third with a changed title, a third new products;
3. the nightly: `vitrine run nightly` (ingest, encode the changed titles, score, compaction when
   due, views), then `SELECT count(*) FROM latest_predictions`.

Every step is the real command in a child process, with its wall time and peak RSS. Goal: the
nightly under 10 minutes on 2 cores.

    HF_HOME=$PWD/.hf-cache HF_HUB_OFFLINE=1 python benchmarks/scale.py --work /tmp/vscale
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import command_line, stamp, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "datasets" / "fashion-product-images"
LABELS = ["gender", "master_category", "sub_category", "article_type", "base_colour", "season", "usage"]
# The step as a grandchild, so that RUSAGE_CHILDREN is that one command's peak.
MEASURE = """
import resource, subprocess, sys, json, time
t = time.perf_counter()
p = subprocess.run([sys.executable, "-m", "flows.cli", *sys.argv[1:]], capture_output=True, text=True)
if p.returncode:
    sys.stderr.write(p.stdout + p.stderr); sys.exit(p.returncode)
print(json.dumps({"seconds": time.perf_counter() - t, "peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, "stdout": p.stdout}))
"""


def real_products() -> list[dict]:
    from warehouse.sources import read_source

    return [r for r in read_source(DATA, "fashion-product-images", None).records if r.get("title")]


def catalog(real: list[dict], n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """n products: the real ones, then recombinations of them (columns as arrays).

    A recombined title is a real title whose first word (mostly the brand) is another product's,
    drawn at random: with a few thousand first words and 44k title tails, nearly every one of a
    million titles is distinct, so title encoding is measured on a million texts, not on copies.
    Photos are reused (about 35k distinct ones): copies of a photo share its vector.
    """
    r = len(real)
    idx = np.arange(n) % r
    other = np.random.default_rng(seed).integers(0, r, n)
    titles = np.array([p["title"] for p in real], dtype=object)
    first = np.array([t.split(" ", 1)[0] for t in titles], dtype=object)
    rest = np.array([t.split(" ", 1)[1] if " " in t else "" for t in titles], dtype=object)
    synth = first[other] + " " + rest[idx]
    cols = {
        "id": np.char.add("s", np.arange(n).astype(str)).astype(object),
        "title": np.where(np.arange(n) < r, titles[idx], synth),
        "image": np.array([p["image_path"] for p in real], dtype=object)[idx],
    }
    for c in LABELS:
        cols[c] = np.array([p.get(c) for p in real], dtype=object)[idx]
    return cols


def churn(cols: dict[str, np.ndarray], share: float, seed: int = 1) -> tuple[dict[str, np.ndarray], dict]:
    """A third of `share` deleted, a third retitled, a third new (others' photos and labels under new
    ids, with a title of their own: a new listing brings a new text)."""
    n = len(cols["id"])
    k = int(n * share / 3)
    rng = np.random.default_rng(seed)
    pick = rng.choice(n, 2 * k, replace=False)
    gone, changed = pick[:k], pick[k:]
    keep = np.ones(n, dtype=bool)
    keep[gone] = False
    out = {c: v.copy() for c, v in cols.items()}
    out["title"][changed] = out["title"][changed] + " (new season)"
    new_from = rng.choice(n, k, replace=False)
    for c in out:
        out[c] = np.concatenate([out[c][keep], out[c][new_from]])
    out["id"][-k:] = np.char.add("n", np.arange(k).astype(str)).astype(object)
    out["title"][-k:] = out["title"][-k:] + np.char.add(" lot ", np.arange(k).astype(str)).astype(object)
    return out, {"deleted": k, "changed": k, "new": k}


def write_catalog(cols: dict[str, np.ndarray], path: Path, rows: int | None = None) -> None:
    table = pa.table({c: pa.array(v[:rows].tolist(), pa.string()) for c, v in cols.items()})
    tmp = path.with_suffix(".tmp")
    pacsv.write_csv(table, tmp)
    os.replace(tmp, path)


def config(work: Path, source: Path) -> Path:
    cfg = {
        "warehouse": {"path": str(work / "wh"), "lock_timeout_s": -1},
        "ingest": {"preset": "generic", "full_snapshot": True, "generic": {
            "format": "csv", "id_column": "id", "title_column": "title", "image_column": "image",
            "columns": {c: c for c in LABELS}}},
        "encoders": {
            "title": {"family": "bert", "model": "sentence-transformers/all-MiniLM-L6-v2", "input": "title"},
            "title_words": {"family": "hashing", "model": "word:1-2:4096", "input": "title"},
        },
        "train": {"features": ["title", "title_words"], "classification_targets": LABELS, "regression_targets": [],
                  "heads": ["mlp"], "min_class_count": 5, "mlp": {"ensemble": 1},
                  # the model only has to exist for scoring: no refit, no label folds
                  "refit_all": False, "label_folds": 0},
        "schedule": {"source": str(source)},
    }
    path = work / "scale.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def step(cfg: Path, *args: str) -> dict:
    p = subprocess.run([sys.executable, "-c", MEASURE, "--config", str(cfg), *args], capture_output=True, text=True, cwd=ROOT)
    if p.returncode:
        raise SystemExit(f"vitrine {' '.join(args)} failed:\n{p.stderr[-4000:]}")
    out = json.loads(p.stdout.strip().splitlines()[-1])
    print(f"vitrine {' '.join(args)}: {out['seconds']:.0f}s, peak RSS {out['peak_rss_mb']:.0f} MB", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--products", type=int, default=1_000_000)
    ap.add_argument("--train-rows", type=int, default=20_000)
    ap.add_argument("--churn", type=float, default=0.01)
    ap.add_argument("--titles", choices=["recombined", "real"], default="recombined",
                    help="real: the real titles repeated (a first run of minutes: repeated titles are copied by "
                    "content hash, not encoded); the nightly's new and changed titles are new texts either way")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    cmd = command_line(__file__, prefix="HF_HOME=$PWD/.hf-cache HF_HUB_OFFLINE=1 ")
    started = stamp(cmd)  # the load average when the run starts
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    src = args.work / "catalog.csv"
    cfg = config(args.work, src)
    t0 = time.perf_counter()
    real = real_products()
    cols = catalog(real, args.products)
    if args.titles == "real":
        cols["title"] = cols["title"][np.arange(args.products) % len(real)]
    distinct = {k: len(set(cols[k].tolist())) for k in ("title", "image")}
    write_catalog(cols, src, args.train_rows)
    for s in (["ingest", str(src)], ["encode"], ["train"]):
        step(cfg, *s)
    write_catalog(cols, src)
    first = {s[0]: step(cfg, *s) for s in (["ingest", str(src)], ["encode"], ["predict"])}
    changed, counts = churn(cols, args.churn)
    write_catalog(changed, src)
    night = step(cfg, "run", "nightly")
    summary = json.loads(night["stdout"][night["stdout"].index("{"):])
    t = time.perf_counter()
    n_latest = subprocess.run([sys.executable, "-m", "flows.cli", "--config", str(cfg), "sql",
                               "SELECT count(*) FROM latest_predictions", "--format", "csv"],
                              capture_output=True, text=True, cwd=ROOT, check=True).stdout.splitlines()[1]
    count_s = time.perf_counter() - t
    secs = summary["seconds"]
    rows = "\n".join(
        f"| first full run | `vitrine {k}` | {v['seconds']:.0f} | {v['peak_rss_mb']:.0f} |" for k, v in first.items()
    ) + (
        f"\n| nightly | `vitrine run nightly` in all | **{night['seconds']:.0f}** (goal < 600) | {night['peak_rss_mb']:.0f} |\n"
        + "\n".join(f"| nightly | {k} | {v} | |" for k, v in secs.items())
        + f"\n| after | `vitrine sql \"SELECT count(*) FROM latest_predictions\"` ({int(n_latest):,} rows), start-up included | {count_s:.1f} | |"
    )
    ing, enc = summary["ingest"], summary["encode"]
    title_note = ("real titles repeated, so the first run copies most title vectors by content hash"
                  if args.titles == "real" else "real titles recombined")
    body = (
        started + f"\nWall time {time.perf_counter() - t0:.0f}s. {args.products:,} products made from Fashion "
        f"Product Images ({title_note}: {distinct['title']:,} distinct titles; real photos reused: "
        f"{distinct['image']:,} distinct photo files; a generic CSV, a full snapshot); encoders "
        f"MiniLM and hashed title words; MLP on {LABELS.__len__()} targets trained on the first {args.train_rows:,}. "
        f"Churn {args.churn:.0%}: {counts['deleted']:,} deleted, {counts['changed']:,} retitled, {counts['new']:,} new; "
        f"the nightly's ingest saw new {ing['new']:,}, updated {ing['updated']:,}, deleted {ing.get('deleted', 0):,}; "
        "encoded " + ", ".join(f"{k} {v['encoded']:,}" for k, v in enc.items())
        + f"; scored {summary['score']['scored']:,}. Photos are carried, not encoded (no image encoder in this config).\n\n"
        "| run | step | seconds | peak RSS (MB) |\n|---|---|---|---|\n" + rows
    )
    print(body)
    if not args.no_write:
        write_section("One night at scale", body)


if __name__ == "__main__":
    main()
