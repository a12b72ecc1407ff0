"""Metrics, computed by scikit-learn so that the numbers mean what everyone expects.

Classification: accuracy, macro-F1, weighted-F1 (over the classes present in truth or prediction,
scikit-learn's default), top-3 accuracy over the model's full class list. Regression (price):
R² on log price and on price, MAE and MAPE in the original unit, and the share of true values
inside the predicted interval.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    mean_absolute_error,
    mean_absolute_percentage_error,
    r2_score,
    top_k_accuracy_score,
)


def top_k(y_true: np.ndarray, proba: np.ndarray, k: int = 3) -> float:
    """Top-k accuracy with every class of the model as a candidate (k >= classes gives 1.0)."""
    n_classes = proba.shape[1]
    if k >= n_classes:
        return 1.0
    score = proba[:, 1] if n_classes == 2 else proba
    return float(top_k_accuracy_score(y_true, score, k=k, labels=np.arange(n_classes)))


def classification_metrics(y_true: np.ndarray, proba: np.ndarray, true_names: Sequence[str | None] | None = None,
                           classes: Sequence[str] | None = None) -> dict:
    """Metrics of rows with a label (y_true >= 0) given class probabilities (n, C).

    With the rows' true label names and the model's class list, also the figures over the true
    classes: a rare class merged into `__other__` keeps its own name, so predicting `__other__`
    for it is a miss (`accuracy_true`), and `macro_f1_true` averages F1 over the classes present in
    the true labels only, so neither a catch-all nor a class no row has flatters the tail.
    """
    keep = y_true >= 0
    y, p = y_true[keep], proba[keep]
    if len(y) == 0:
        return {"n": 0}
    pred = p.argmax(axis=1)
    out = {
        "n": int(len(y)),
        "accuracy": float(accuracy_score(y, pred)),
        "macro_f1": float(f1_score(y, pred, average="macro")),
        "weighted_f1": float(f1_score(y, pred, average="weighted")),
        "top3_accuracy": top_k(y, p, 3),
    }
    if true_names is not None and classes is not None:
        names = np.asarray(true_names, dtype=object)[keep]
        predicted = np.asarray(classes, dtype=object)[pred]
        present = sorted(set(names.tolist()))
        out["accuracy_true"] = float(np.mean(predicted == names))
        out["macro_f1_true"] = float(f1_score(names, predicted, labels=present, average="macro", zero_division=0))
    return out


def rare_class_recall(true_names: Sequence[str | None], predicted: Sequence[str], catalog_counts: dict[str, int],
                      n: int = 20) -> list[dict]:
    """Recall of the `n` classes with the fewest labelled rows in the catalog that the rows have.

    Over true names, so a class merged into `__other__` is listed with the recall it really gets.
    """
    from sklearn.metrics import recall_score

    pairs = [(t, p) for t, p in zip(true_names, predicted) if t is not None]
    if not pairs or n <= 0:
        return []
    t, p = zip(*pairs)
    present = sorted(set(t), key=lambda c: (catalog_counts.get(c, 0), c))[:n]
    rec = recall_score(t, p, labels=present, average=None, zero_division=0)
    test_n = {c: 0 for c in present}
    for c in t:
        if c in test_n:
            test_n[c] += 1
    return [{"class": c, "catalog_rows": int(catalog_counts.get(c, 0)), "test_rows": test_n[c], "recall": float(r)}
            for c, r in zip(present, rec)]


def regression_metrics(y_log: np.ndarray, pred_log: np.ndarray, lower_log: np.ndarray, upper_log: np.ndarray) -> dict:
    """Metrics of rows with a finite log target; predictions in log space, reported in both."""
    keep = np.isfinite(y_log)
    if keep.sum() == 0:
        return {"n": 0}
    yl, pl = y_log[keep], pred_log[keep]
    y, p = np.exp(yl), np.exp(pl)
    lo, hi = np.exp(lower_log[keep]), np.exp(upper_log[keep])
    return {
        "n": int(keep.sum()),
        "r2_log": float(r2_score(yl, pl)),
        "r2": float(r2_score(y, p)),
        "mae": float(mean_absolute_error(y, p)),
        "mape": float(mean_absolute_percentage_error(y, p)),
        "interval_coverage": float(np.mean((y >= lo) & (y <= hi))),
        "interval_median_width": float(np.median(hi - lo)),
    }


def headline(kind: str, m: dict) -> float | None:
    """The one number a head is chosen by on validation: accuracy, or R² on log for regression."""
    return m.get("accuracy") if kind == "classification" else m.get("r2_log")


def confusion_png(
    y_true: np.ndarray, proba: np.ndarray, classes: Sequence[str], path: Path, top_n: int = 20, title: str = ""
) -> Path | None:
    """Row-normalised confusion matrix of the `top_n` most frequent true classes.

    With many classes (article_type has ~140) a full matrix is unreadable; the rest of the classes
    are pooled into one '(rest)' row and column so that no row's mass disappears.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keep = y_true >= 0
    y, pred = y_true[keep], proba[keep].argmax(axis=1)
    if len(y) == 0:
        return None
    counts = np.bincount(y, minlength=len(classes))
    order = [int(i) for i in np.argsort(-counts, kind="stable") if counts[i] > 0][:top_n]
    names = [classes[i] for i in order]
    rest = len(order) < int((counts > 0).sum()) or bool(np.any(~np.isin(pred, order)))
    remap = np.full(len(classes), len(order) if rest else -1)
    remap[order] = np.arange(len(order))
    yt, yp = remap[y], remap[pred]
    if rest:
        names.append("(rest)")
    cm = confusion_matrix(yt, yp, labels=np.arange(len(names)))
    with np.errstate(invalid="ignore", divide="ignore"):
        norm = cm / cm.sum(axis=1, keepdims=True)
    norm = np.nan_to_num(norm)
    size = max(4.0, 0.42 * len(names) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=70, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if len(names) <= 25:
        for i in range(len(names)):
            for j in range(len(names)):
                if cm[i, j]:
                    ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=6,
                            color="white" if norm[i, j] > 0.5 else "black")
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
