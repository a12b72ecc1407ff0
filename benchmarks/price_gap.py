"""Is the price model below the strongest probe, or is that the draw of one test split?

`benchmarks/quality.py --ceiling` compares vitrine's price model with the probes of
`benchmarks/price_ceiling.py` on one split's test rows (about 2,000 products). This puts the
model and the strongest probe (the mean of the ridge with columns, kNN and LightGBM) side by side
on the validation rows too (both chose their settings there) and resamples the test rows with
replacement (paired: the same rows for both) to give the test gap an interval. Several quality
runs (split seeds) can be given at once; the last row pools their gaps. A second table gives each
model's interval: its test coverage with a bootstrap interval (the luck of the test draw), and,
when it was calibrated on a calibration split, its coverage over re-partitions of the calibration
and test rows (what the calibration method gives apart from the luck of one calibration draw).

    for s in 0 1 2 3; do python benchmarks/quality.py --config configs/price.yaml --skip fashion \\
        --myntra-configs text+columns --heads blend --ceiling --work /tmp/vqp-$s --seed $s; done
    python benchmarks/price_gap.py --work /tmp/vqp-0 /tmp/vqp-1 /tmp/vqp-2 /tmp/vqp-3 --write \\
        --section "Price: the shipped price config against the strongest probe"
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402
from sklearn.metrics import r2_score  # noqa: E402

from heads.features import read_features  # noqa: E402
from heads.conformal import apply_calibration  # noqa: E402
from heads.metrics import regression_metrics  # noqa: E402
from heads.predict import load_model, split_products  # noqa: E402
from heads.train import head_quantiles  # noqa: E402
from warehouse.layout import open_warehouse  # noqa: E402
import price_ceiling  # noqa: E402
from quality import coverage_resplit  # noqa: E402
from report import command_line, publish, stamp, table  # noqa: E402


def model_outputs(work: Path, model_id: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, str]:
    """The price model's log [value, lower, upper] for every row of its split in the split's order,
    calibrated (as it predicts) and before calibration, each row's part, the interval's level, and
    what calibrated it."""
    wh = open_warehouse(work / "wh-myntra")
    model = load_model(wh, model_id)
    products, part = split_products(wh, model)
    uncal = model.impl.predict(read_features(wh, products, model.blocks))
    raw = apply_calibration(uncal, model.spec.get("calibration") or {})
    lo, hi = head_quantiles(model.impl.settings, model.head)
    folds = (model.spec.get("fits") or {}).get("calibration")
    how = (f"{folds['folds']} folds over {folds['rows']} training rows" if folds
           else f"{int(np.sum(part == 'calibration'))} calibration rows")
    return raw["price"], uncal["price"], part, hi - lo, how


def coverage_bootstrap(y: np.ndarray, r: np.ndarray, resamples: int, seed: int) -> tuple[float, float]:
    """2.5–97.5% of the interval's coverage over bootstrap draws of the test rows: how far one test
    split's coverage moves by the luck of its rows alone, whatever calibrated the interval."""
    inside = ((y >= r[:, 1]) & (y <= r[:, 2])).astype(float)
    rng = np.random.default_rng(seed)
    draws = inside[rng.integers(0, len(y), (resamples, len(y)))].mean(axis=1)
    lo, hi = np.quantile(draws, [0.025, 0.975])
    return float(lo), float(hi)


def paired_gap(y: np.ndarray, a: np.ndarray, b: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """R²(a) - R²(b) on `resamples` bootstrap draws of the same rows."""
    rng = np.random.default_rng(seed)
    out = np.empty(resamples)
    for i in range(resamples):
        idx = rng.integers(0, len(y), len(y))
        out[i] = r2_score(y[idx], a[idx]) - r2_score(y[idx], b[idx])
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, nargs="+", required=True, help="scratch folders of Myntra quality runs")
    ap.add_argument("--resamples", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=1, help="LightGBM threads of the probe")
    ap.add_argument("--write", action="store_true", help="write into BENCHMARKS.md")
    ap.add_argument("--section", default="Price: the model against the strongest probe, validation and test")
    args = ap.parse_args(argv)
    rows, gaps, intervals = [], [], []
    for k, work in enumerate(args.work):
        titles, cats, y, masks, model_id = price_ceiling.load(work)
        keep: dict = {}
        price_ceiling.probes(titles, cats, y, masks, args.threads, keep)
        raw, uncal, part, level, how = model_outputs(work, model_id)
        mine, probe = raw[:, 0], keep["mean"]
        m = regression_metrics(y[masks["test"]], *raw[masks["test"]].T)
        m.update(coverage_resplit(y, uncal, np.flatnonzero(part == "calibration"), np.flatnonzero(part == "test"), level))
        b_lo, b_hi = coverage_bootstrap(y[masks["test"]], raw[masks["test"]], args.resamples, k)
        resplit = ((f"{m['coverage_resplit_mean']:.1%}", f"{m['coverage_resplit_sd'] * 100:.1f}")
                   if "coverage_resplit_mean" in m else ("–", "–"))
        intervals.append((work.name, f"{m['r2_log']:.3f}", f"{m['mae']:.0f}", f"{m['mape']:.3f}", how, f"{level:.0%}",
                          f"{m['interval_coverage']:.1%}", f"{b_lo:.1%} to {b_hi:.1%}", f"{m['interval_median_width']:.0f}",
                          *resplit))
        va, te = masks["val"], masks["test"]
        gap = paired_gap(y[te], mine[te], probe[te], args.resamples, k)
        gaps.append(gap)
        rows.append((work.name, model_id, r2_score(y[va], mine[va]), r2_score(y[va], probe[va]),
                     r2_score(y[te], mine[te]), r2_score(y[te], probe[te]), gap))
        print(rows[-1][:6], flush=True)
    cmd = command_line(__file__, argv)
    lines = [stamp(cmd),
             "Myntra log price. `model`: the price model of each quality run (its registered evaluation fit); "
             "`probe`: the mean of the ridge with columns, kNN and LightGBM of `benchmarks/price_ceiling.py`, "
             "fitted on the same train rows and tuned on the same validation rows. Test gap: R²(model) − R²(probe) "
             f"on the test rows; its interval: 2.5–97.5% of {args.resamples} paired bootstrap draws of those rows.", "",
             "| run | model | R² val: model | R² val: probe | R² test: model | R² test: probe | test gap | 95% interval | draws with model ≥ probe |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, mid, vm, vp, tm, tp, gap in rows:
        lo, hi = np.quantile(gap, [0.025, 0.975])
        lines.append(f"| {name} | `{mid}` | {vm:.4f} | {vp:.4f} | {tm:.4f} | {tp:.4f} | {tm - tp:+.4f} | "
                     f"{lo:+.4f} to {hi:+.4f} | {np.mean(gap >= 0):.0%} |")
    if len(rows) > 1:
        pooled = np.mean(np.column_stack(gaps), axis=1)  # each draw: the mean of the runs' gaps
        lo, hi = np.quantile(pooled, [0.025, 0.975])
        lines.append(f"| mean of {len(rows)} | | {np.mean([r[2] for r in rows]):.4f} | {np.mean([r[3] for r in rows]):.4f} | "
                     f"{np.mean([r[4] for r in rows]):.4f} | {np.mean([r[5] for r in rows]):.4f} | "
                     f"{np.mean([r[4] - r[5] for r in rows]):+.4f} | {lo:+.4f} to {hi:+.4f} | {np.mean(pooled >= 0):.0%} |")
    lines += ["", "The same models' price intervals on their test rows (the interval as the model outputs it, "
              f"conformalised as `calibrated on` says), the 2.5–97.5% of their test coverage over {args.resamples} "
              "bootstrap draws of the test rows, and, with a calibration split, their coverage over 300 random "
              "re-partitions of the calibration and test rows (same sizes, same fitted model):", "",
              *table(["run", "R² log", "MAE (INR)", "MAPE", "calibrated on", "interval level", "test coverage",
                      "test coverage, 95% bootstrap", "median width (INR)", "coverage, mean of re-partitions",
                      "sd (points)"], intervals)]
    publish(lines, args.section, args.write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
