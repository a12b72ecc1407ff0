"""Out-of-fold price intervals: every training row calibrates the interval, none leaves training.

A calibration split of 1,000 rows fixes the conformal widening with about 1.3 points of luck in
the coverage it gives (measured on Myntra: one split covered 82.8% for a nominal 80%), and its rows
are lost to the evaluation fit. With `train.calibration_folds` K, the training rows are cut into K
folds; a head with the evaluation fit's settings, fitted on the other folds (early-stopping on the
same validation rows), predicts each fold, and heads.conformal takes the widening from those
out-of-fold intervals over all the training rows. The evaluation fit then trains on all of them and
is scored on test with that widening.

This is the "CV" interval of Barber, Candès, Ramdas and Tibshirani (2021), not their CV+: the
widening measured on fold models is applied to the full fit, which saw K/(K-1) times as many rows
and may err a little less, so the interval could cover slightly more than it says; CV+ would keep
all K models to predict. Measured on four Myntra splits with K 5 (BENCHMARKS.md): 78.6–81.9%,
79.6% on average, for a nominal 80%, so no over-coverage shows. Hand-rolled like heads.label_scores'
cross-fitting (MAPIE's CQR is split-conformal only).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from heads.features import Features
from heads.splits import fold_indices
from heads.targets import TargetSpec


def out_of_fold_intervals(head_cls, settings, specs: Sequence[TargetSpec], feats: Features, y: dict[str, np.ndarray],
                          rows: np.ndarray, val: np.ndarray, strata: np.ndarray | None,
                          log: Callable[[str], None] = print) -> dict[str, np.ndarray]:
    """Out-of-fold log [value, lower, upper] (n, 3) per regression target; NaN outside `rows`.

    Each fold's head is fitted on all of `specs` (the same targets as the evaluation fit, so its
    errors are those of the model being calibrated), on `rows` minus the fold, early-stopped on `val`."""
    reg = [s for s in specs if s.kind == "regression"]
    k = settings.calibration_folds
    folds = fold_indices(len(rows), strata[rows] if strata is not None else None, k, settings.seed + 3)
    oof = {s.name: np.full((feats.n, 3), np.nan) for s in reg}
    for i, f in enumerate(folds):
        held = rows[f]
        impl = head_cls(settings, list(specs)).fit(feats, y, np.setdiff1d(rows, held), val, log=lambda _m: None)
        raw = impl.predict(feats.take(held))
        for s in reg:
            if s.name in raw:
                oof[s.name][held] = raw[s.name]
        log(f"interval folds: {i + 1}/{len(folds)} done ({len(held)} products predicted out of fold)")
    return oof
