"""A long tail: the logit-adjusted MLP recovers rare classes that plain cross-entropy gives up on."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import recall_score

from heads.features import Block, from_arrays
from heads.metrics import rare_class_recall
from heads.mlp_head import MLPHead
from heads.settings import MLPSettings, TrainSettings
from heads.targets import TargetSpec

COUNTS = [1500, 800, 400, 60, 25, 12]  # train rows per class: three frequent, three rare
D = 6


def long_tail(seed: int = 0):
    """Overlapping Gaussian classes (so the prior decides close calls); test set balanced."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 1.1, (len(COUNTS), D))
    y_tr = np.repeat(np.arange(len(COUNTS)), COUNTS)
    y_te = np.repeat(np.arange(len(COUNTS)), 200)
    y = np.concatenate([y_tr, y_te])
    x = (centers[y] + rng.normal(0, 1, (len(y), D))).astype(np.float32)
    return x, y, len(y_tr)


def fit(tau: float):
    x, y, n_tr = long_tail()
    n = len(y)
    block = Block("title", "synthetic:title", "title", D)
    feats = from_arrays([f"p{i}" for i in range(n)], [block], {"synthetic:title": (x, np.ones(n, dtype=bool))})
    spec = TargetSpec("t", "classification", classes=[f"c{i}" for i in range(len(COUNTS))])
    settings = TrainSettings(features=["title"], classification_targets=["t"], regression_targets=[],
                             mlp=MLPSettings(hidden=32, max_epochs=30, patience=5, ensemble=1, threads=1, wide=False,
                                             logit_adjust=tau))
    rng = np.random.default_rng(1)
    tr = rng.permutation(n_tr)
    val, train = np.sort(tr[: n_tr // 8]), np.sort(tr[n_tr // 8:])
    head = MLPHead(settings, [spec]).fit(feats, {"t": y}, train, val, log=lambda _m: None)
    test = np.arange(n_tr, n)
    pred = head.predict(feats.take(test))["t"].argmax(axis=1)
    return y[test], pred, spec


def test_logit_adjusted_head_recovers_rare_classes_plain_one_misses():
    y, plain, spec = fit(0.0)
    _, balanced, _ = fit(1.0)
    rare = [3, 4, 5]
    r_plain = recall_score(y, plain, labels=rare, average=None)
    r_bal = recall_score(y, balanced, labels=rare, average=None)
    print("rare recall plain", r_plain, "balanced", r_bal)
    assert r_bal.mean() > r_plain.mean() + 0.2
    assert (r_bal > r_plain).all()
    # on a balanced test set, mean recall over all classes rises too
    assert recall_score(y, balanced, average="macro") > recall_score(y, plain, average="macro")
    # the report's table lists the rarest classes first, with the recall each really gets
    names = [spec.classes[i] for i in y]
    rows = rare_class_recall(names, [spec.classes[i] for i in balanced], {f"c{i}": c for i, c in enumerate(COUNTS)}, 3)
    assert [r["class"] for r in rows] == ["c5", "c4", "c3"]
    assert [r["recall"] for r in rows] == pytest.approx(r_bal[::-1].tolist())
    assert all(r["test_rows"] == 200 for r in rows)
