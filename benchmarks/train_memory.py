"""Training at a million products: peak memory with sparse hashed blocks, against dense ones.

Makes a million-product catalog from Fashion Product Images (`benchmarks/scale.py`'s generic CSV,
but every title and photo a real one, repeated: a training row costs the same memory whether its
title is shared or not, and repeated contents are encoded once and copied by content hash, so the
encode takes minutes, not the hour a million distinct titles take). Ingests it, encodes it with the
demo encoders (EfficientNet-Lite0, MiniLM, hashed words and character n-grams), then trains the
MLP on them three times, each `vitrine train` in a child process with its wall time and peak RSS:

1. a seeded sample of `--sample-rows` labelled products, hashed blocks sparse (the default);
2. the same sample with `train.sparse_features: false` (every block dense);
3. every product, sparse.

The model is the demo's MLP with one net and `--epochs` epochs, no refit and no label folds:
memory is what is measured, and the time is reported. Sparse and dense blocks train the same model
(tests/test_heads_sparse.py checks it to the bit), so the validation scores of runs 1 and 2 agree:
the memory saved costs no accuracy.

    HF_HOME=$PWD/.hf-cache HF_HUB_OFFLINE=1 python benchmarks/train_memory.py --work /tmp/vtrain
"""
from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import command_line, stamp, write_section  # noqa: E402
from scale import catalog, config, real_products, step, write_catalog  # noqa: E402

DEMO = Path(__file__).resolve().parent.parent / "configs" / "demo.yaml"


def variant(work: Path, name: str, epochs: int, **train) -> Path:
    """The scale run's config with the demo's encoders and training features, and `train` on top."""
    cfg = yaml.safe_load((work / "scale.yaml").read_text())
    demo = yaml.safe_load(DEMO.read_text())
    cfg["encoders"] = demo["encoders"]
    cfg["train"].update(features=demo["train"]["features"], mlp={"ensemble": 1, "max_epochs": epochs, "threads": 2},
                        **train)
    path = work / f"train-{name}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def validation_score(stdout: str) -> str:
    m = re.search(r"validation score ([0-9.]+)", stdout)
    return f"{float(m.group(1)):.4f}" if m else "n/a"


def feature_widths(stdout: str) -> tuple[int, int]:
    """(dense width, hashed width) of the features `vitrine train` reported."""
    dense = hashed = 0
    for eid, dim in re.findall(r"features \w+: (\S+) \((\d+)-d\)", stdout):
        if eid.startswith(("hashing:", "columns:")):
            hashed += int(dim)
        else:
            dense += int(dim)
    return dense, hashed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, required=True, help="scratch folder (emptied first)")
    ap.add_argument("--products", type=int, default=1_000_000)
    ap.add_argument("--sample-rows", type=int, default=50_000)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    cmd = command_line(__file__, prefix="HF_HOME=$PWD/.hf-cache HF_HUB_OFFLINE=1 ")
    started = stamp(cmd)  # the load average when the run starts, not an hour later
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    src = args.work / "catalog.csv"
    config(args.work, src)
    real = real_products()
    cols = catalog(real, args.products)
    cols["title"] = cols["title"][np.arange(args.products) % len(real)]  # as scale.py --titles real
    write_catalog(cols, src)
    distinct = {k: len(set(cols[k].tolist())) for k in ("title", "image")}
    full = variant(args.work, "full", args.epochs, sparse_features=True, max_rows=None)
    ing = step(full, "ingest", str(src))
    enc = step(full, "encode")
    runs = [
        ("sample, sparse", step(variant(args.work, "sample-sparse", args.epochs, sparse_features=True,
                                        max_rows=args.sample_rows), "train")),
        ("sample, dense", step(variant(args.work, "sample-dense", args.epochs, sparse_features=False,
                                       max_rows=args.sample_rows), "train")),
        ("every product, sparse", step(full, "train")),
    ]
    dense_w, hashed_w = feature_widths(runs[-1][1]["stdout"])
    rows_full = re.search(r"fresh vectors for [0-9.]+% of (\d+) products", runs[-1][1]["stdout"])
    n_full = int(rows_full.group(1)) if rows_full else 0
    table = "\n".join(
        f"| {name} | {args.sample_rows if 'sample' in name else n_full:,} | {r['seconds']:.0f} | "
        f"**{r['peak_rss_mb'] / 1024:.1f}** | {validation_score(r['stdout'])} |"
        for name, r in runs
    )
    body = (
        started
        + f"\n{args.products:,} products made from Fashion Product Images, every title and photo a real one, repeated "
        f"({distinct['title']:,} distinct titles, {distinct['image']:,} distinct photos: a training row costs the same "
        f"memory either way). `vitrine ingest` {ing['seconds']:.0f} s; `vitrine encode` with the demo encoders "
        f"{enc['seconds']:.0f} s (peak {enc['peak_rss_mb'] / 1024:.1f} GB; each content encoded once, copied by "
        f"content hash to the products that repeat it). Features: {dense_w:,} dense dimensions "
        f"(EfficientNet-Lite0, MiniLM) and {hashed_w:,} hashed ones (two hashing encoders). As dense float32 the "
        f"features alone would take {n_full * (dense_w + hashed_w) * 4 / 2**30:.1f} GiB at {n_full:,} products "
        f"(and the inputs built from them as much again before batches were standardised one at a time); "
        f"held sparse, the hashed part is only its non-zeros. MLP, one net, {args.epochs} epoch(s), no refit, "
        "no label folds; seconds include reading the features and scoring every training row once.\n\n"
        "| run | products | seconds | peak RSS (GB; goal < 16 at a million) | validation score |\n"
        "|---|---|---|---|---|\n" + table
    )
    print(body)
    if not args.no_write:
        write_section("Training memory at a million products", body)


if __name__ == "__main__":
    main()
