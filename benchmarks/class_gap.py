"""How sure is a macro-F1 gap against the TF-IDF baseline on one test split?

The rare-class goal of `benchmarks/quality.py` compares the current model's macro-F1 over the true
classes with the TF-IDF + logistic regression baseline's, target by target, on one split's test
rows. On a target with a few rare classes (gender: Boys, Girls, Unisex beside Men and Women) one
test row moves macro-F1 by a few ten-thousandths. This resamples the test rows with replacement
(paired: the same rows for the model and the baseline) and gives each target's gap an interval.
Several quality runs (split seeds) can be given at once; each target's last row pools their gaps
(each draw: the mean of the runs' gaps), which says whether a shortfall is the model's or one split's.

    python benchmarks/quality.py --skip myntra --configs fusion --heads blend --work /tmp/vqf
    python benchmarks/class_gap.py --work /tmp/vqf --write
    for s in 1 2 3; do python benchmarks/quality.py --skip myntra --configs fusion --heads blend \\
        --from-warehouse /tmp/vqf/wh-fashion --work /tmp/vqf-$s --seed $s; done
    python benchmarks/class_gap.py --work /tmp/vqf /tmp/vqf-1 /tmp/vqf-2 /tmp/vqf-3
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
from report import command_line, publish, stamp, table  # noqa: E402


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


def target_gaps(work: Path, resamples: int, seed: int = 0) -> tuple[str, int, dict[str, tuple[float, float, float, float, np.ndarray]]]:
    """Per classification target of one run: the model's and the baseline's macro-F1 over the true
    classes and accuracy on its test rows, and the macro-F1 gap on `resamples` paired draws of them."""
    wh, model, products, part, base = fashion_run(work)
    test = np.flatnonzero(part == "test")
    raw = model.predict_features(read_features(wh, products.take(test), model.blocks))
    out = {}
    for spec in model.targets:
        if spec.kind != "classification" or spec.name not in raw or spec.name not in base:
            continue
        true = np.asarray(label_strings(products.take(test)[spec.name]), dtype=object)
        mine = np.asarray(spec.classes, dtype=object)[raw[spec.name].argmax(axis=1)]
        theirs = np.asarray(base[spec.name], dtype=object)
        ok = np.array([t is not None for t in true])
        true, mine, theirs = true[ok].astype(str), mine[ok].astype(str), theirs[ok].astype(str)
        rng = np.random.default_rng(seed)  # runs of one call draw apart: their test rows are different products
        draws = (rng.integers(0, len(true), len(true)) for _ in range(resamples))
        gap = np.array([macro_f1_true(true[d], mine[d]) - macro_f1_true(true[d], theirs[d]) for d in draws])
        out[spec.name] = (macro_f1_true(true, mine), macro_f1_true(true, theirs),
                          float(np.mean(mine == true)), float(np.mean(theirs == true)), gap)
        print(work.name, spec.name, f"{out[spec.name][0] - out[spec.name][1]:+.4f}", flush=True)
    return model.model_id, len(test), out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, nargs="+", default=[Path("/tmp/vitrine-quality")],
                    help="scratch folders of Fashion quality runs (one per split seed)")
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--write", action="store_true", help="write into BENCHMARKS.md")
    ap.add_argument("--section", default="Quality: macro-F1 gaps to the TF-IDF baseline, resampled")
    args = ap.parse_args(argv)
    runs = [(work.name, *target_gaps(work, args.resamples, seed=i)) for i, work in enumerate(args.work)]
    models = ", ".join(f"`{mid}` ({name}, {n} test rows)" for name, mid, n, _ in runs)
    lines = [stamp(command_line(__file__, argv)),
             f"Models {models} against the TF-IDF + logistic regression baseline of `benchmarks/quality.py`, "
             "refitted on the same train rows, on the test rows of each model's split. Gap: macro-F1 over the true "
             f"classes, model − baseline; interval: 2.5–97.5% of {args.resamples} paired bootstrap draws of the test rows; "
             "accuracy against the rows' own labels (`__other__` predicted is a miss)"
             + ("; `mean of`: each draw the mean of the runs' gaps." if len(runs) > 1 else "."), ""]
    rows = []
    for target in dict.fromkeys(t for *_, out in runs for t in out):
        have = [(name, out[target]) for name, _, _, out in runs if target in out]
        rows += [(target, name, *v) for name, v in have]
        if len(have) > 1:  # each draw: the mean of the runs' gaps
            a, b, acc_a, acc_b = np.array([v[:4] for _, v in have]).mean(axis=0)
            rows.append((target, f"mean of {len(have)}", a, b, acc_a, acc_b,
                         np.mean(np.column_stack([v[4] for _, v in have]), axis=1)))
    lines += table(
        ["target", "run", "model", "TF-IDF", "gap", "95% interval", "draws with model ≥ TF-IDF", "accuracy: model", "accuracy: TF-IDF"],
        [(t, name, a, b, a - b, "{:+.4f} to {:+.4f}".format(*np.quantile(gap, [0.025, 0.975])), np.mean(gap >= 0), acc_a, acc_b)
         for t, name, a, b, acc_a, acc_b, gap in rows],
        ["{}", "{}", "{:.4f}", "{:.4f}", "{:+.4f}", "{}", "{:.0%}", "{:.4f}", "{:.4f}"])
    publish(lines, args.section, args.write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
