"""Out-of-fold label scores: every training label judged by a model that never saw it.

A model grading the labels it learnt mostly repeats them back, so a wrong seller label goes
unflagged. Cross-fitting gives each labelled product class probabilities from a model fitted on
the other folds (same head, same settings as the registered model), and confident learning
(cleanlab's `find_label_issues`, which sets one threshold per class from the out-of-fold
probabilities, pruning by the estimated noise rate) flags the labels those probabilities
contradict. `label_quality` is cleanlab's self-confidence: the out-of-fold probability of the
given label (lower = more likely wrong).
"""
from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np
import pyarrow as pa

from heads.features import Features
from heads.splits import fold_indices, split_two
from heads.targets import TargetSpec, label_strings
from warehouse import schemas


def cross_fit(head_cls, settings, specs: Sequence[TargetSpec], feats: Features, y: dict[str, np.ndarray],
              strata: np.ndarray | None, log: Callable[[str], None] = print) -> dict[str, np.ndarray]:
    """Out-of-fold class probabilities (n, C) per classification target; NaN rows never held out.

    Each fold's head has the registered model's settings, except `label_fold_ensemble` MLP nets.
    """
    cls = [s for s in specs if s.kind == "classification"]
    if settings.label_fold_ensemble is not None:  # a cheaper fold head (fewer nets), if configured
        settings = settings.model_copy(update={"mlp": settings.mlp.model_copy(update={"ensemble": settings.label_fold_ensemble})})
    folds = fold_indices(feats.n, strata, settings.label_folds, settings.seed)
    oof = {s.name: np.full((feats.n, len(s.classes)), np.nan) for s in cls}
    for k, held in enumerate(folds):
        rest = np.setdiff1d(np.arange(feats.n), held)
        tr, va, _ = split_two(rest, strata, settings.val_size, settings.seed + 100 + k)
        impl = head_cls(settings, cls).fit(feats, y, np.sort(tr), np.sort(va), log=lambda _m: None)
        raw = impl.predict(feats.take(held))
        for s in cls:
            oof[s.name][held] = raw[s.name]
        log(f"label folds: {k + 1}/{len(folds)} done ({len(held)} products judged)")
    return oof


def label_scores(products: pa.Table, specs: Sequence[TargetSpec], y: dict[str, np.ndarray],
                 oof: dict[str, np.ndarray], model_id: str, top_k: int = 5, max_quality: float = 1.0) -> pa.Table:
    """The `label_scores` table: one row per labelled (product, classification target).

    `is_issue`: flagged by confident learning and `label_quality` ≤ `max_quality`.
    """
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    parts = []
    for s in specs:
        if s.name not in oof:
            continue
        rows = np.flatnonzero((y[s.name] >= 0) & np.isfinite(oof[s.name]).all(axis=1))
        if len(rows) == 0:
            continue
        labels = y[s.name][rows]
        probs = oof[s.name][rows]
        probs = probs / probs.sum(axis=1, keepdims=True)
        with warnings.catch_warnings():  # cleanlab warns about classes it sees few of; the flags stand
            warnings.simplefilter("ignore")
            quality = get_label_quality_scores(labels, probs, method="self_confidence")
            # n_jobs=1: cleanlab's process pool forks, and a fork of this threaded process (Prefect's
            # task threads, torch's) can hang for good
            issues = find_label_issues(labels, probs, filter_by="prune_by_noise_rate", n_jobs=1) & (quality <= max_quality)
        classes = np.array(s.classes, dtype=object)
        order = np.argsort(-probs, axis=1)[:, :top_k]
        best = order[:, 0]
        given = np.array(label_strings(products[s.name]), dtype=object)[rows]
        parts.append(pa.table({
            "product_id": products["product_id"].take(pa.array(rows)),
            "target": pa.array([s.name] * len(rows), pa.string()),
            "given_label": pa.array(given.tolist(), pa.string()),
            "given_label_probability": probs[np.arange(len(rows)), labels],
            "suggested_label": pa.array(classes[best].tolist(), pa.string()),
            "suggested_probability": probs[np.arange(len(rows)), best],
            "label_quality": np.asarray(quality, dtype=np.float64),
            "is_issue": pa.array(np.asarray(issues, dtype=bool)),
            "top_k": pa.array([[{"label": classes[j], "probability": float(p[j])} for j in o] for o, p in zip(order, probs)],
                              schemas.TOP_K),
            "content_hash": products["content_hash"].take(pa.array(rows)),
            "model_id": pa.array([model_id] * len(rows), pa.string()),
        }, schema=schemas.LABEL_SCORES))
    return pa.concat_tables(parts) if parts else schemas.LABEL_SCORES.empty_table()
