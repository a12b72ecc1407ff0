"""Conformalised price intervals cover the share they claim, on data whose noise is known."""
from __future__ import annotations

import numpy as np

from heads.conformal import apply_calibration, calibrate, conformal_offset
from heads.cross_conformal import out_of_fold_intervals
from heads.features import Block, from_arrays
from heads.metrics import regression_metrics
from heads.mlp_head import MLPHead
from heads.settings import MLPSettings, TrainSettings
from heads.targets import TargetSpec

N, D = 6000, 8


def noisy_prices(seed: int = 0):
    """log price = linear in x plus noise whose spread grows with x[:, 1] (so one width fits nobody)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (N, D)).astype(np.float32)
    sigma = 0.2 + 0.3 * (x[:, 1] > 0)
    y = 6.0 + 0.5 * x[:, 0] + 0.3 * x[:, 2] + rng.normal(0, 1, N) * sigma
    return x, y


def test_offset_widens_a_too_narrow_interval_to_its_nominal_coverage():
    rng = np.random.default_rng(1)
    y = rng.normal(0, 1, 40000)
    pred = np.zeros_like(y)
    lo, hi = pred - 0.5, pred + 0.5  # covers 38%, claims 80%
    q = conformal_offset(y[:20000], lo[:20000], hi[:20000], 0.8)
    assert q > 0
    inside = (y[20000:] >= lo[20000:] - q) & (y[20000:] <= hi[20000:] + q)
    assert abs(inside.mean() - 0.8) < 0.01
    assert conformal_offset(y[:5], lo[:5], hi[:5], 0.8) is None  # too few rows: no calibration


def test_a_lopsided_too_wide_interval_is_narrowed_to_its_nominal_coverage_around_the_value():
    """Prices mostly above the point prediction v, an interval [v - 0.5, v + 6] that covers 99%:
    narrowing both ends by the textbook offset would push the lower end past v, where it stays
    (an interval holds its value), and cover about 97%; the score of the clamped interval gives 80%."""
    rng = np.random.default_rng(2)
    v = rng.normal(5, 1, 40000)
    y = v + rng.normal(2, 1, 40000)
    lo, hi = v - 0.5, v + 6.0
    raw = {"price": np.column_stack([v, lo, hi])}
    spec = TargetSpec("price", "regression", transform="log")
    cal, test = np.arange(20000), np.arange(20000, 40000)
    out = apply_calibration(raw, calibrate([spec], {"price": y}, raw, cal, 0.8))["price"][test]
    covered = (y[test] >= out[:, 1]) & (y[test] <= out[:, 2])
    assert abs(covered.mean() - 0.8) < 0.01, covered.mean()
    assert np.all(out[:, 1] <= out[:, 0]) and np.all(out[:, 0] <= out[:, 2])
    textbook = conformal_offset(y[cal], lo[cal], hi[cal], 0.8)  # the score that ignores the clamp
    over = (y[test] >= np.minimum(lo[test] - textbook, v[test])) & (y[test] <= np.maximum(hi[test] + textbook, v[test]))
    assert over.mean() > 0.9


def test_mlp_interval_calibrated_on_held_out_rows_covers_80_percent():
    x, y = noisy_prices()
    block = Block("title", "synthetic:title", "title", D)
    feats = from_arrays([f"p{i}" for i in range(N)], [block], {"synthetic:title": (x, np.ones(N, dtype=bool))})
    spec = TargetSpec("price", "regression", transform="log")
    settings = TrainSettings(features=["title"], classification_targets=[], regression_targets=["price"],
                             mlp=MLPSettings(hidden=32, max_epochs=15, patience=3, ensemble=1, threads=1, wide=False))
    idx = np.arange(N)
    train, val, cal, test = idx[:3000], idx[3000:3500], idx[3500:4500], idx[4500:]
    head = MLPHead(settings, [spec]).fit(feats, {"price": y}, train, val, log=lambda _m: None)
    raw = head.predict(feats)
    offsets = calibrate([spec], {"price": y}, raw, cal, 0.8)
    calibrated = apply_calibration(raw, offsets)["price"]
    m = regression_metrics(y[test], calibrated[test, 0], calibrated[test, 1], calibrated[test, 2])
    assert abs(m["interval_coverage"] - 0.8) <= 0.03, m
    assert np.all(calibrated[:, 1] <= calibrated[:, 0]) and np.all(calibrated[:, 0] <= calibrated[:, 2])
    before = regression_metrics(y[test], raw["price"][test, 0], raw["price"][test, 1], raw["price"][test, 2])
    print("coverage before", before["interval_coverage"], "after", m["interval_coverage"], "offset", offsets)


def test_out_of_fold_calibration_covers_80_percent_without_a_calibration_split():
    """Every training row calibrates (5 fold fits predict the rows they left out), the evaluation fit
    trains on all of them, and its calibrated interval covers 80% of new prices."""
    x, y = noisy_prices(1)
    block = Block("title", "synthetic:title", "title", D)
    feats = from_arrays([f"p{i}" for i in range(N)], [block], {"synthetic:title": (x, np.ones(N, dtype=bool))})
    spec = TargetSpec("price", "regression", transform="log")
    settings = TrainSettings(features=["title"], classification_targets=[], regression_targets=["price"],
                             calibration_folds=5,
                             mlp=MLPSettings(hidden=32, max_epochs=15, patience=3, ensemble=1, threads=1, wide=False))
    idx = np.arange(N)
    train, val, test = idx[:4000], idx[4000:4500], idx[4500:]
    oof = out_of_fold_intervals(MLPHead, settings, [spec], feats, {"price": y}, train, val, None, log=lambda _m: None)
    assert np.isfinite(oof["price"][train]).all() and np.isnan(oof["price"][np.r_[val, test]]).all()
    offsets = calibrate([spec], {"price": y}, oof, train, 0.8)
    head = MLPHead(settings, [spec]).fit(feats, {"price": y}, train, val, log=lambda _m: None)
    raw = head.predict(feats)
    calibrated = apply_calibration(raw, offsets)["price"]
    m = regression_metrics(y[test], calibrated[test, 0], calibrated[test, 1], calibrated[test, 2])
    before = regression_metrics(y[test], raw["price"][test, 0], raw["price"][test, 1], raw["price"][test, 2])
    print("coverage before", before["interval_coverage"], "after", m["interval_coverage"], "offset", offsets)
    assert abs(before["interval_coverage"] - 0.8) > 0.02  # the raw interval is off: there is something to calibrate
    assert abs(m["interval_coverage"] - 0.8) <= 0.02, m
