"""Linear head: a logistic regression per classification target, a ridge on log price.

What a notebook baseline does (title TF-IDF + logistic regression, ridge with one-hot brand and
gender), on the heads' own feature blocks (heads.sparse_inputs: hashed title n-grams re-weighted
by IDF, one-hot catalog columns, standardised embeddings), so it sits in the registry, the
scoring batch and the blend head like any other head. Measured on Myntra and Fashion, such a model
beats the fusion MLP on log price and on the macro-F1 of some targets: its weights on rare title
words are not pulled down by the classes and prices the net fits first.

`linear.features` names the blocks it reads (default: every block of the model);
`linear.optional_features` those a target's model may do without: each target is fitted with and
without them and keeps the design with the better validation score. A block that carries one
target is noise to another, and a weakly penalised model fits that noise: on the whole Fashion
catalog the photo colour histogram makes the base_colour model and costs the gender model
(validation log-loss 0.0141 on the title n-grams alone, 0.0157 with it). The regularisation (`linear.C` for classification, `linear.alpha` for ridge) is picked per target
among the configured candidates on the validation rows (log-loss / R² on log); the test rows are
never seen. Each C is fitted from scratch: warm-started from the last C's solution, lbfgs found
its gradient already within tolerance and stopped after 0 iterations, so every C above the second
was the second again (on the whole Fashion catalog gender's validation log-loss was 0.0158 at C 10,
30 and 100 warm-started, 0.0143 at C 30 from scratch). The price interval is the prediction plus the 10% and 90% quantiles of the
validation residuals (out of sample, unlike training residuals), which heads.conformal then
calibrates on its own rows like any head's.
"""
from __future__ import annotations

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
        self.narrow: SparseInputs | None = None  # the blocks without linear.optional_features
        self.reads: dict[str, str] = {}  # target → "all" or "narrow": the design its model was fitted on

    def _classifier(self, c: float) -> LogisticRegression:
        ls = self.settings.linear
        return LogisticRegression(C=c, max_iter=ls.max_iter, class_weight=ls.class_weight, random_state=self.settings.seed)

    def _fit_classifier(self, spec: TargetSpec, x, yy: np.ndarray, tr: np.ndarray, va: np.ndarray) -> tuple[float, float, object]:
        """(validation log-loss, C, model) of the C candidate with the best validation log-loss
        (0.0 and the first C when there is nothing to choose on)."""
        best = None
        for c in sorted(self.settings.linear.C):
            model = self._classifier(c)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model.fit(x[tr], yy[tr])
            if len(self.settings.linear.C) == 1 or len(va) == 0:
                best = (0.0, c, model)
                break
            p = np.clip(full_proba(model.predict_proba(x[va]), model.classes_, len(spec.classes)), 1e-12, 1.0)
            loss = log_loss(yy[va], p / p.sum(axis=1, keepdims=True), labels=np.arange(len(spec.classes)))
            if best is None or loss < best[0]:
                best = (loss, c, model)
        _contiguous(best[2])
        return best

    def _fit_regressor(self, spec: TargetSpec, x, yy: np.ndarray, tr: np.ndarray, va: np.ndarray) -> tuple[float, float, object]:
        """(minus validation R² on log, alpha, model) of the alpha candidate with the best validation R²."""
        best = None
        for a in self.settings.linear.alpha:
            model = Ridge(alpha=a).fit(x[tr], yy[tr])
            if len(self.settings.linear.alpha) == 1 or len(va) == 0:
                best = (0.0, a, model)
                break
            loss = -r2_score(yy[va], model.predict(x[va]))
            if best is None or loss < best[0]:
                best = (loss, a, model)
        _contiguous(best[2])
        return best

    def fit(self, feats: Features, y: dict[str, np.ndarray], train: np.ndarray, val: np.ndarray, log=print) -> "LinearHead":
        ls = self.settings.linear
        have = [b.name for b in feats.blocks]
        names = [n for n in ls.features if n in have] or None
        self.inputs = SparseInputs.fit(feats, train, names)
        designs = {"all": self.inputs.transform(feats)}
        read = [b.name for b in feats.blocks if b.encoder_id in self.inputs.encoder_ids]
        narrow = [n for n in read if n not in ls.optional_features]
        self.narrow = None
        if narrow and len(narrow) < len(read) and len(val):
            self.narrow = SparseInputs.fit(feats, train, narrow)
            designs["narrow"] = self.narrow.transform(feats)
        dropped = ", ".join(n for n in read if n not in narrow)
        self.reads = {}
        for spec in self.specs:
            yy = y[spec.name]
            tr, va = train[labelled(spec, yy[train])], val[labelled(spec, yy[val])]
            if len(tr) < 2:
                log(f"  linear {spec.name}: fewer than 2 labelled training rows, skipped")
                continue
            if spec.kind == "classification" and len(np.unique(yy[tr])) < 2:
                log(f"  linear {spec.name}: fewer than 2 classes in the training rows, skipped")
                continue
            fit_one = self._fit_classifier if spec.kind == "classification" else self._fit_regressor
            tried = {k: fit_one(spec, x, yy, tr, va) for k, x in designs.items()}
            reads = min(tried, key=lambda k: tried[k][0])  # ties: every block ("all" comes first)
            loss, chosen, model = tried[reads]
            self.models[spec.name], self.chosen[spec.name], self.reads[spec.name] = model, chosen, reads
            if spec.kind == "regression":
                rows = va if len(va) >= 10 else tr
                q = np.quantile(yy[rows] - model.predict(designs[reads][rows]), list(ls.quantiles))
                self.residual_quantiles[spec.name] = (float(q[0]), float(q[1]))
            what = "C" if spec.kind == "classification" else "alpha"
            metric = "log-loss" if spec.kind == "classification" else "R²"
            picked = len(ls.C if spec.kind == "classification" else ls.alpha) > 1 and len(va)
            note = ""
            if len(tried) > 1:
                other = tried["all" if reads == "narrow" else "narrow"][0]
                shown = (lambda v: v) if spec.kind == "classification" else (lambda v: -v)
                note = (f"; without {dropped}" if reads == "narrow" else f"; with {dropped}") + f" ({shown(other):.4f} the other way)"
            log(f"  linear {spec.name}: {len(tr)} train rows, {what} {chosen}"
                + (f" (validation {metric} {loss if spec.kind == 'classification' else -loss:.4f})" if picked else "") + note)
        return self

    def predict(self, feats: Features) -> dict[str, np.ndarray]:
        """Per target: class probabilities (n, C), or log [value, lower, upper] (n, 3)."""
        designs = {"all": self.inputs.transform(feats)}
        if self.narrow is not None and "narrow" in self.reads.values():
            designs["narrow"] = self.narrow.transform(feats)
        out: dict[str, np.ndarray] = {}
        for spec in self.specs:
            model = self.models.get(spec.name)
            if model is None:
                continue
            x = designs[self.reads.get(spec.name, "all")]
            if spec.kind == "classification":
                out[spec.name] = full_proba(model.predict_proba(x), model.classes_, len(spec.classes))
            else:
                v = np.asarray(model.predict(x), dtype=np.float64)
                lo, hi = self.residual_quantiles[spec.name]
                out[spec.name] = np.column_stack([v, v + min(lo, 0.0), v + max(hi, 0.0)])
        return out

    def save(self, directory: Path) -> dict:
        directory.mkdir(parents=True, exist_ok=True)
        joblib.dump({"inputs": self.inputs, "narrow": self.narrow, "models": self.models}, directory / PREPROCESS)
        return {"file": PREPROCESS, "chosen": self.chosen, "reads": self.reads, "residual_quantiles": self.residual_quantiles,
                "linear_settings": json.loads(self.settings.linear.model_dump_json())}

    @classmethod
    def load(cls, directory: Path, settings: TrainSettings, specs: list[TargetSpec], part: dict) -> "LinearHead":
        head = cls(settings, specs)
        saved = joblib.load(directory / part["file"])
        head.inputs, head.models = saved["inputs"], saved["models"]
        head.narrow = saved.get("narrow")  # None in a model saved before optional features
        head.reads = dict(part.get("reads", {}))
        head.chosen = dict(part.get("chosen", {}))
        head.residual_quantiles = {t: tuple(q) for t, q in part.get("residual_quantiles", {}).items()}
        return head
