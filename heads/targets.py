"""Targets: which label columns exist, how their labels are encoded, and the rare-class rule.

Rare-class rule (the only one): a class with fewer than `min_class_count` labelled rows in the
catalog at training time is merged into the class `__other__`; the merged names are kept in the
model's spec and report, so nothing disappears silently. If fewer than two classes remain, the
target is skipped with a message. At prediction or evaluation, a label the model never saw maps
to `__other__` when the model has it, and is otherwise left out of the metrics (never a crash).

Regression targets (price) are learned on the natural log; NULL, non-numeric and non-positive
values count as missing labels.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from warehouse.schemas import OTHER_LABEL

OTHER = OTHER_LABEL


@dataclass
class TargetSpec:
    name: str
    kind: str  # classification | regression
    classes: list[str] = field(default_factory=list)
    merged: list[str] = field(default_factory=list)
    transform: str | None = None  # 'log' for regression

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TargetSpec":
        return cls(**d)


def label_strings(column: pa.ChunkedArray | pa.Array) -> list[str | None]:
    """Labels as stripped strings (years and codes too); empty strings are NULL."""
    if not pa.types.is_string(column.type) and not pa.types.is_large_string(column.type):
        column = pc.cast(column, pa.string())
    out = []
    for v in column.to_pylist():
        if v is None:
            out.append(None)
            continue
        v = v.strip()
        out.append(v or None)
    return out


def log_values(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Natural log of a numeric column; NaN where missing or not positive."""
    try:
        x = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        x = np.array([_to_float(v) for v in column.to_pylist()], dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    out = np.full(x.shape, np.nan)
    ok = np.isfinite(x) & (x > 0)
    out[ok] = np.log(x[ok])
    return out


def _to_float(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return np.nan


def build_classification(name: str, labels: Sequence[str | None], min_class_count: int) -> TargetSpec:
    """Class list after the rare-class rule (sorted, `__other__` last if any class was merged)."""
    counts = Counter(v for v in labels if v is not None)
    keep = sorted(c for c, n in counts.items() if n >= min_class_count and c != OTHER)
    merged = sorted(c for c in counts if c not in keep)
    classes = keep + ([OTHER] if merged else [])
    return TargetSpec(name=name, kind="classification", classes=classes, merged=merged)


def encode_labels(labels: Sequence[str | None], spec: TargetSpec) -> np.ndarray:
    """Class indices; unseen labels go to `__other__` if the model has it, else -1; NULL is -1."""
    index = {c: i for i, c in enumerate(spec.classes)}
    other = index.get(OTHER, -1)
    return np.array([-1 if v is None else index.get(v, other) for v in labels], dtype=np.int64)


def prepare_targets(
    products: pa.Table,
    classification: Sequence[str],
    regression: Sequence[str],
    min_class_count: int,
) -> tuple[list[TargetSpec], dict[str, np.ndarray], dict[str, str]]:
    """Specs and encoded labels (-1 / NaN = no label) of every usable target; why others were skipped."""
    specs: list[TargetSpec] = []
    encoded: dict[str, np.ndarray] = {}
    skipped: dict[str, str] = {}
    cols = set(products.column_names)
    for name in classification:
        if name not in cols:
            skipped[name] = f"target {name!r} skipped: the catalog has no column {name!r}"
            continue
        labels = label_strings(products[name])
        spec = build_classification(name, labels, min_class_count)
        if len(spec.classes) < 2:
            n = sum(v is not None for v in labels)
            skipped[name] = (
                f"target {name!r} skipped: {n} labelled rows give fewer than 2 classes "
                f"with at least {min_class_count} rows"
            )
            continue
        specs.append(spec)
        encoded[name] = encode_labels(labels, spec)
    for name in regression:
        if name not in cols:
            skipped[name] = f"target {name!r} skipped: the catalog has no column {name!r}"
            continue
        y = log_values(products[name])
        if np.isfinite(y).sum() < 10:
            skipped[name] = f"target {name!r} skipped: fewer than 10 positive numeric values"
            continue
        specs.append(TargetSpec(name=name, kind="regression", transform="log"))
        encoded[name] = y
    return specs, encoded, skipped


def labelled(spec: TargetSpec, y: np.ndarray) -> np.ndarray:
    """Boolean mask of rows that carry a label for this target."""
    return np.isfinite(y) if spec.kind == "regression" else y >= 0


def full_proba(p: np.ndarray, present: np.ndarray, n_classes: int) -> np.ndarray:
    """Probabilities over every class of the target when a model saw only the `present` ones."""
    out = np.zeros((p.shape[0], n_classes), dtype=np.float64)
    out[:, present] = p
    return out
