"""Conformalised quantile regression (CQR): price intervals that cover what they say.

Quantile outputs trained with a pinball loss cover less than their nominal share on new products
(measured on Myntra: 72% for a 10–90% interval), because the loss is minimised on rows the model
has fitted. CQR (Romano, Patterson and Candès, 2019) measures on held-out calibration rows how
far the true value falls outside the predicted interval, E = max(lower - y, y - upper), and widens
(or narrows, if E is mostly negative) both ends by the finite-sample quantile of E at the nominal
coverage. Hand-rolled: it is a quantile of one array; MAPIE would wrap the estimator instead.
Works in log space, where the heads predict.

The interval a head outputs always holds its own point prediction v (apply_calibration moves the
ends by q but never past v). So the score is the one of that interval: a price below v is covered
when y >= lower - q, one above v when y <= upper + q, whatever the other end does. With the
textbook score max(lower - y, y - upper), an interval that is too wide (q < 0) and lopsided around v
(a blend of members' intervals is both) would be narrowed by a q that the clamp at v then partly
undoes, and cover more than it says (tests/test_heads_conformal.py plants such an interval).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def conformal_offset(y: np.ndarray, lower: np.ndarray, upper: np.ndarray, coverage: float,
                     value: np.ndarray | None = None) -> float | None:
    """The CQR widening for `coverage` from calibration rows (finite y); None with under 10 rows.

    With `value` (the point predictions), the score is that of the interval apply_calibration
    outputs, whose ends never cross the value (see the module docstring)."""
    keep = np.isfinite(y)
    n = int(keep.sum())
    if n < 10:
        return None
    y, lower, upper = y[keep], lower[keep], upper[keep]
    if value is None:
        e = np.maximum(lower - y, y - upper)
    else:
        v = value[keep]
        # a price equal to the value is covered whatever q is: its textbook score only ever asks for less
        e = np.where(y < v, lower - y, np.where(y > v, y - upper, np.minimum(lower - y, y - upper)))
    level = min(1.0, np.ceil((n + 1) * coverage) / n)
    return float(np.quantile(e, level, method="higher"))


def calibrate(specs: Sequence, y: Mapping[str, np.ndarray], raw: Mapping[str, np.ndarray], rows: np.ndarray,
              coverage: float) -> dict[str, float]:
    """{regression target: offset} from the calibration rows' raw log [value, lower, upper] outputs."""
    out = {}
    for s in specs:
        if s.kind != "regression" or s.name not in raw or len(rows) == 0:
            continue
        r = raw[s.name][rows]
        q = conformal_offset(y[s.name][rows], r[:, 1], r[:, 2], coverage, value=r[:, 0])
        if q is not None:
            out[s.name] = q
    return out


def apply_calibration(raw: Mapping[str, np.ndarray], offsets: Mapping[str, float]) -> dict[str, np.ndarray]:
    """Raw outputs with each calibrated target's interval moved out by its offset (value kept inside)."""
    out = dict(raw)
    for name, q in offsets.items():
        if name not in out:
            continue
        r = np.array(out[name], dtype=np.float64, copy=True)
        r[:, 1] = np.minimum(r[:, 1] - q, r[:, 0])
        r[:, 2] = np.maximum(r[:, 2] + q, r[:, 0])
        out[name] = r
    return out
