"""Train / validation / test split: stratified, seeded, one split shared by every target and head.

One split for the whole target set keeps the multi-target MLP and the per-target LightGBM models
comparable (the same test rows), and makes `--head both` a fair comparison. Stratification is on
the first classification target (NULL labels are their own stratum), or on deciles of the first
regression target. Strata too small to be split are pooled; if scikit-learn still refuses, the
split falls back to a plain shuffled one and says so (`stratified_on` is None).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

from heads.targets import TargetSpec


@dataclass
class Split:
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    stratified_on: str | None
    cal: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def sizes(self) -> dict[str, int]:
        out = {"train": len(self.train), "val": len(self.val), "test": len(self.test)}
        if len(self.cal):
            out["calibration"] = len(self.cal)
        return out

    def labels(self, n: int) -> list[str]:
        """Each row's part: train, val, calibration or test."""
        out = np.full(n, "train", dtype=object)
        out[self.val], out[self.cal], out[self.test] = "val", "calibration", "test"
        return out.tolist()


def strata_for(specs: list[TargetSpec], encoded: dict[str, np.ndarray]) -> tuple[str | None, np.ndarray | None]:
    """Stratum per row: the first classification target's class, else a decile of the first regression one."""
    for s in specs:
        if s.kind == "classification":
            return s.name, encoded[s.name].astype(str)
    for s in specs:
        if s.kind == "regression":
            y = encoded[s.name]
            ok = np.isfinite(y)
            out = np.full(len(y), "nan", dtype=object)
            if ok.any():
                edges = np.unique(np.quantile(y[ok], np.linspace(0, 1, 11)[1:-1]))
                out[ok] = np.digitize(y[ok], edges).astype(str)
            return s.name, out.astype(str)
    return None, None


def _pool_small(strata: np.ndarray, minimum: int) -> np.ndarray:
    """Merge strata under `minimum` rows into one; if that is still too small, into the largest."""
    counts = Counter(strata.tolist())
    small = {k for k, n in counts.items() if n < minimum}
    if not small:
        return strata
    pooled_rows = sum(counts[k] for k in small)
    into = "__pooled__" if pooled_rows >= minimum else counts.most_common(1)[0][0]
    return np.where(np.isin(strata, list(small)), into, strata)


def split_two(idx: np.ndarray, strata: np.ndarray | None, size: float, seed: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """`idx` in two parts, stratified where the strata allow it; True if it was."""
    if strata is not None:
        s = _pool_small(strata[idx], 2)
        try:
            a, b = train_test_split(idx, test_size=size, random_state=seed, stratify=s)
            return a, b, True
        except ValueError:
            pass
    a, b = train_test_split(idx, test_size=size, random_state=seed, shuffle=True)
    return a, b, False


def fold_indices(n: int, strata: np.ndarray | None, folds: int, seed: int) -> list[np.ndarray]:
    """Held-out indices of `folds` folds, stratified where every stratum can fill the folds."""
    idx = np.arange(n)
    if strata is not None:
        s = _pool_small(strata, folds)
        try:
            kf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
            return [np.sort(held) for _, held in kf.split(idx, s)]
        except ValueError:
            pass
    return [np.sort(held) for _, held in KFold(n_splits=folds, shuffle=True, random_state=seed).split(idx)]


def make_split(n: int, strata: np.ndarray | None, stratum_name: str | None, test_size: float, val_size: float, seed: int,
               cal_size: float = 0.0) -> Split:
    """Indices of train, val (early stopping only), test (reporting only) and, with `cal_size`, calibration
    rows (conformal price intervals only), each sorted."""
    idx = np.arange(n)
    if n < 3:
        raise ValueError(f"need at least 3 labelled products to split, have {n}")
    rest, test, ok1 = split_two(idx, strata, test_size, seed)
    val_share = min(val_size / (1.0 - test_size), 0.9)
    train, val, ok2 = split_two(rest, strata, val_share, seed + 1)
    cal, ok3 = np.zeros(0, dtype=np.int64), True
    if cal_size > 0 and len(train) >= 4:
        share = min(cal_size / max(1.0 - test_size - val_size, 1e-9), 0.5)
        train, cal, ok3 = split_two(train, strata, share, seed + 2)
    on = stratum_name if (strata is not None and ok1 and ok2 and ok3) else None
    return Split(np.sort(train), np.sort(val), np.sort(test), on, np.sort(cal))
