"""Training at a million products: peak memory with sparse hashed blocks, against dense ones.

Runs on the warehouse `benchmarks/scale.py` leaves in `--work` (a million products made from
Fashion Product Images, titles encoded by MiniLM and hashed words). It adds the rest of the demo
encoders (EfficientNet-Lite0 on the photos, which the catalog reuses, so each photo is encoded
once and copied by content hash; hashed character n-grams), then trains the MLP on the demo
encoders three times, each `vitrine train` in a child process with its wall time and peak RSS:

1. a seeded sample of `--sample-rows` labelled products, hashed blocks sparse (the default);
2. the same sample with `train.sparse_features: false` (every block dense, as before);
3. every product, sparse.

The model is the demo's MLP with one net and `--epochs` epochs, no refit and no label folds:
memory is what is measured, and an epoch's time is reported. Sparse and dense blocks train the
same model (tests/test_heads_sparse.py checks it to the bit), so the validation scores of runs 1
and 2 agree: the memory saved costs no accuracy.

    HF_HOME=$PWD/.hf-cache HF_HUB_OFFLINE=1 python benchmarks/train_memory.py --work /tmp/vscale
"""
from __future__ import annotations

import argparse
import re
import shlex
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import stamp, write_section  # noqa: E402
from scale import step  # noqa: E402

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
    ap.add_argument("--work", type=Path, required=True, help="the --work folder of a finished benchmarks/scale.py run")
    ap.add_argument("--sample-rows", type=int, default=100_000)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    if not (args.work / "scale.yaml").exists():
        raise SystemExit(f"{args.work} has no scale.yaml: run benchmarks/scale.py --work {args.work} first")
    full = variant(args.work, "full", args.epochs, sparse_features=True, max_rows=None)
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
    cmd = "HF_HOME=$PWD/.hf-cache HF_HUB_OFFLINE=1 python benchmarks/train_memory.py " + shlex.join(sys.argv[1:])
    body = (
        stamp(cmd)
        + f"\nThe warehouse of the One night at scale run ({n_full:,} products). `vitrine encode` of the rest of the "
        f"demo encoders took {enc['seconds']:.0f} s (peak {enc['peak_rss_mb'] / 1024:.1f} GB; the catalog reuses "
        f"Fashion's photos, each encoded once and copied by content hash). Features: {dense_w:,} dense dimensions "
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
