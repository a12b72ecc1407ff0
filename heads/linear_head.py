"""Linear head: a logistic regression per classification target, a ridge on log price.

What a notebook baseline does (title TF-IDF + logistic regression, ridge with one-hot brand and
gender), on the heads' own feature blocks (heads.sparse_inputs: hashed title n-grams re-weighted
by IDF, one-hot catalog columns, standardised embeddings), so it sits in the registry, the
scoring batch and the blend head like any other head. Measured on Myntra and Fashion, such a model
beats the fusion MLP on log price and on the macro-F1 of some targets: its weights on rare title
words are not pulled down by the classes and prices the net fits first.

`linear.features` names the blocks it reads (default: every block of the model). The regularisation (`linear.C` for classification, `linear.alpha` for ridge) is picked per target
among the configured candidates on the validation rows (log-loss / R² on log); the test rows are
never seen. The logistic regressions run from the smallest C up, each warm-started from the last
solution (on the whole Fashion catalog the 140-class article_type fit is the slow one). The price interval is the prediction plus the 10% and 90% quantiles of the
validation residuals (out of sample, unlike training residuals), which heads.conformal then
calibrates on its own rows like any head's.
"""
from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path

import joblib
import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import log_loss, r2_score

from heads.features import Features
from heads.settings import TrainSettings
from heads.sparse_inputs import SparseInputs
from heads.targets import TargetSpec, full_proba, labelled

PREPROCESS = "linear.joblib"


def _contiguous(model) -> None:
    """A fitted coef_ may be a strided view, a reloaded one is contiguous: BLAS would take another
    kernel and round differently, so a reloaded model would not predict identically."""
    model.coef_ = np.ascontiguousarray(model.coef_)
    model.intercept_ = np.ascontiguousarray(model.intercept_) if np.ndim(model.intercept_) else model.intercept_


class LinearHead:
    kind = "linear"

    def __init__(self, settings: TrainSettings, specs: list[TargetSpec]) -> None:
        self.settings = settings
        self.specs = specs
        self.inputs: SparseInputs | None = None
        self.models: dict[str, object] = {}
        self.chosen: dict[str, float] = {}  # target → the C or alpha picked on validation
        self.residual_quantiles: dict[str, tuple[float, float]] = {}

    def _classifier(self, c: float) -> LogisticRegression:
        ls = self.settings.linear
        return LogisticRegression(C=c, max_iter=ls.max_iter, class_weight=ls.class_weight, random_state=self.settings.seed)

    def _fit_classifier(self, spec: TargetSpec, x, yy: np.ndarray, tr: np.ndarray, va: np.ndarray, log) -> None:
        present = np.unique(yy[tr])
        if len(present) < 2:
            log(f"  linear {spec.name}: fewer than 2 classes in the training rows, skipped")
            return
        best = None
        model = self._classifier(min(self.settings.linear.C))
        model.warm_start = True  # each larger C starts from the last solution: far fewer iterations
        for c in sorted(self.settings.linear.C):
            model.set_params(C=c)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model.fit(x[tr], yy[tr])
            if len(self.settings.linear.C) == 1 or len(va) == 0:
                best = (0.0, c, model)
                break
            p = np.clip(full_proba(model.predict_proba(x[va]), model.classes_, len(spec.classes)), 1e-12, 1.0)
            loss = log_loss(yy[va], p / p.sum(axis=1, keepdims=True), labels=np.arange(len(spec.classes)))
            if best is None or loss < best[0]:
                best = (loss, c, copy.deepcopy(model))
        _contiguous(best[2])
        self.models[spec.name], self.chosen[spec.name] = best[2], best[1]
        log(f"  linear {spec.name}: {len(tr)} train rows, C {best[1]}"
            + (f" (validation log-loss {best[0]:.4f})" if len(self.settings.linear.C) > 1 and len(va) else ""))

    def _fit_regressor(self, spec: TargetSpec, x, yy: np.ndarray, tr: np.ndarray, va: np.ndarray, log) -> None:
        best = None
        for a in self.settings.linear.alpha:
            model = Ridge(alpha=a).fit(x[tr], yy[tr])
            if len(self.settings.linear.alpha) == 1 or len(va) == 0:
                best = (0.0, a, model)
                break
            r2 = r2_score(yy[va], model.predict(x[va]))
            if best is None or r2 > best[0]:
                best = (r2, a, model)
        model = best[2]
        _contiguous(model)
        rows = va if len(va) >= 10 else tr
        lo, hi = self.settings.linear.quantiles
        q = np.quantile(yy[rows] - model.predict(x[rows]), [lo, hi])
        self.models[spec.name], self.chosen[spec.name] = model, best[1]
        self.residual_quantiles[spec.name] = (float(q[0]), float(q[1]))
        log(f"  linear {spec.name}: {len(tr)} train rows, alpha {best[1]}"
            + (f" (validation R² {best[0]:.4f})" if len(self.settings.linear.alpha) > 1 and len(va) else ""))

    def fit(self, feats: Features, y: dict[str, np.ndarray], train: np.ndarray, val: np.ndarray, log=print) -> "LinearHead":
        have = [b.name for b in feats.blocks]
        names = [n for n in self.settings.linear.features if n in have] or None
        self.inputs = SparseInputs.fit(feats, train, names)
        x = self.inputs.transform(feats)
        for spec in self.specs:
            yy = y[spec.name]
            tr, va = train[labelled(spec, yy[train])], val[labelled(spec, yy[val])]
            if len(tr) < 2:
                log(f"  linear {spec.name}: fewer than 2 labelled training rows, skipped")
                continue
            if spec.kind == "classification":
                self._fit_classifier(spec, x, yy, tr, va, log)
            else:
                self._fit_regressor(spec, x, yy, tr, va, log)
        return self

    def predict(self, feats: Features) -> dict[str, np.ndarray]:
        """Per target: class probabilities (n, C), or log [value, lower, upper] (n, 3)."""
        x = self.inputs.transform(feats)
        out: dict[str, np.ndarray] = {}
        for spec in self.specs:
            model = self.models.get(spec.name)
            if model is None:
                continue
            if spec.kind == "classification":
                out[spec.name] = full_proba(model.predict_proba(x), model.classes_, len(spec.classes))
            else:
                v = np.asarray(model.predict(x), dtype=np.float64)
                lo, hi = self.residual_quantiles[spec.name]
                out[spec.name] = np.column_stack([v, v + min(lo, 0.0), v + max(hi, 0.0)])
        return out

    def save(self, directory: Path) -> dict:
        directory.mkdir(parents=True, exist_ok=True)
        joblib.dump({"inputs": self.inputs, "models": self.models}, directory / PREPROCESS)
        return {"file": PREPROCESS, "chosen": self.chosen, "residual_quantiles": self.residual_quantiles,
                "linear_settings": json.loads(self.settings.linear.model_dump_json())}

    @classmethod
    def load(cls, directory: Path, settings: TrainSettings, specs: list[TargetSpec], part: dict) -> "LinearHead":
        head = cls(settings, specs)
        saved = joblib.load(directory / part["file"])
        head.inputs, head.models = saved["inputs"], saved["models"]
        head.chosen = dict(part.get("chosen", {}))
        head.residual_quantiles = {t: tuple(q) for t, q in part.get("residual_quantiles", {}).items()}
        return head
