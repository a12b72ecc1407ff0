"""How sure is a macro-F1 gap against the TF-IDF baseline on one test split?

The rare-class goal of `benchmarks/quality.py` compares the current model's macro-F1 over the true
classes with the TF-IDF + logistic regression baseline's, target by target, on one split's test
rows. On a target with a few rare classes (gender: Boys, Girls, Unisex beside Men and Women) one
test row moves macro-F1 by a few ten-thousandths. This resamples the test rows with replacement
(paired: the same rows for the model and the baseline) and gives each target's gap an interval.

    python benchmarks/quality.py --skip myntra --configs fusion --heads blend --work /tmp/vqf
    python benchmarks/class_gap.py --work /tmp/vqf --write
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
from sklearn.metrics import f1_score  # noqa: E402

from heads.features import read_features  # noqa: E402
from heads.predict import LoadedModel, load_model, split_products  # noqa: E402
from heads.registry import current_models  # noqa: E402
from heads.targets import label_strings  # noqa: E402
from warehouse.layout import Warehouse, open_warehouse  # noqa: E402
import quality  # noqa: E402
from report import command_line, publish, stamp  # noqa: E402


def macro_f1_true(true: np.ndarray, pred: np.ndarray) -> float:
    """Over the classes the rows have, as heads.metrics counts it (`__other__` predicted is a miss)."""
    return float(f1_score(true, pred, labels=sorted(set(true.tolist())), average="macro", zero_division=0))


def fashion_run(work: Path) -> tuple[Warehouse, LoadedModel, pa.Table, np.ndarray, dict]:
    """What a Fashion quality run left in `work`: its warehouse, the current model of every Fashion
    target (the one the run registered), that model's split (products, part) and the TF-IDF
    baseline's predicted test classes per target, refitted on the same train rows."""
    wh = open_warehouse(work / "wh-fashion")
    models = [m for m in current_models(wh) if set(quality.FASHION_TARGETS) <= set(m["targets"])]
    if not models:
        raise SystemExit(f"no current model of {quality.FASHION_TARGETS} in {work / 'wh-fashion'}: run benchmarks/quality.py first")
    model = load_model(wh, models[0]["model_id"])
    products, part = split_products(wh, model)
    base: dict = {}
    quality.tfidf_baseline(wh, model.model_id, base)
    return wh, model, products, part, base


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("/tmp/vitrine-quality"), help="a Fashion quality run's scratch folder")
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--write", action="store_true", help="write into BENCHMARKS.md")
    ap.add_argument("--section", default="Quality: macro-F1 gaps to the TF-IDF baseline, resampled")
    args = ap.parse_args(argv)
    wh, model, products, part, base = fashion_run(args.work)
    test = np.flatnonzero(part == "test")
    raw = model.predict_features(read_features(wh, products.take(test), model.blocks))
    lines = [stamp(command_line(__file__, argv)),
             f"Model `{model.model_id}` ({model.head}) against the TF-IDF + logistic regression baseline of "
             f"`benchmarks/quality.py`, on the {len(test)} test rows of its split. Gap: macro-F1 over the true "
             f"classes, model − baseline; interval: 2.5–97.5% of {args.resamples} paired bootstrap draws of the test rows.", "",
             "| target | model | TF-IDF | gap | 95% interval | draws with model ≥ TF-IDF |", "|---|---|---|---|---|---|"]
    for spec in model.targets:
        if spec.kind != "classification" or spec.name not in raw or spec.name not in base:
            continue
        true = np.asarray(label_strings(products.take(test)[spec.name]), dtype=object)
        mine = np.asarray(spec.classes, dtype=object)[raw[spec.name].argmax(axis=1)]
        theirs = np.asarray(base[spec.name], dtype=object)
        ok = np.array([t is not None for t in true])
        true, mine, theirs = true[ok].astype(str), mine[ok].astype(str), theirs[ok].astype(str)
        rng = np.random.default_rng(0)
        draws = (rng.integers(0, len(true), len(true)) for _ in range(args.resamples))
        gap = np.array([macro_f1_true(true[d], mine[d]) - macro_f1_true(true[d], theirs[d]) for d in draws])
        a, b = macro_f1_true(true, mine), macro_f1_true(true, theirs)
        lo, hi = np.quantile(gap, [0.025, 0.975])
        lines.append(f"| {spec.name} | {a:.4f} | {b:.4f} | {a - b:+.4f} | {lo:+.4f} to {hi:+.4f} | {np.mean(gap >= 0):.0%} |")
        print(lines[-1], flush=True)
    publish(lines, args.section, args.write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
