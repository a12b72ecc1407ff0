"""Nearest-neighbour head: the labels and prices of the most similar training titles.

A class with five examples is learnt by no weight of a linear model or a net that is not pulled
toward the frequent classes, but its five titles are still there to be found: a product whose
title is nearly one of them gets its label. Likewise a product listed again under another ID gets
its twin's price. The rows are the IDF-weighted hashed n-grams of heads.sparse_inputs (the blocks
named by `knn.features`, default the character n-grams), compared by cosine (scikit-learn's brute
force NearestNeighbors, which takes CSR). Votes and the price mean are weighted by 1 / (distance +
0.001); `knn.k` is picked per target among the candidates on the validation rows (log-loss / R²
on log). The price interval is the validation residuals' quantiles, calibrated later like any
head's. Useful alone as a check, and mainly as a member of the blend head.
"""
from __future__ import annotations

import json
from pathlib import Path

import joblib
import numpy as np
from sklearn.metrics import log_loss, r2_score
from sklearn.neighbors import NearestNeighbors

from heads.features import Features
from heads.settings import TrainSettings
from heads.sparse_inputs import SparseInputs
from heads.targets import TargetSpec

INDEX_FILE = "knn.joblib"
DISTANCE_FLOOR = 1e-3
SMOOTHING = 1e-3  # share of prior mixed into the votes, so no class has probability 0


class KNNHead:
    kind = "knn"

    def __init__(self, settings: TrainSettings, specs: list[TargetSpec]) -> None:
        self.settings = settings
        self.specs = specs
        self.inputs: SparseInputs | None = None
        self.index: NearestNeighbors | None = None
        self.labels: dict[str, np.ndarray] = {}  # per target, the training rows' labels
        self.prior: dict[str, np.ndarray] = {}
        self.chosen: dict[str, int] = {}
        self.residual_quantiles: dict[str, tuple[float, float]] = {}

    def _neighbours(self, feats: Features, k: int) -> tuple[np.ndarray, np.ndarray]:
        x = self.inputs.transform(feats, missing=False)
        k = min(k, self.index.n_samples_fit_)
        dist, idx = self.index.kneighbors(x, n_neighbors=k)
        return dist, idx

    def _vote(self, spec: TargetSpec, dist: np.ndarray, idx: np.ndarray, k: int) -> np.ndarray:
        d, i = dist[:, :k], idx[:, :k]
        lab = self.labels[spec.name][i]
        w = 1.0 / (d + DISTANCE_FLOOR)
        if spec.kind == "classification":
            w = np.where(lab >= 0, w, 0.0)
            votes = np.zeros((len(d), len(spec.classes)))
            np.add.at(votes, (np.repeat(np.arange(len(d)), k), np.clip(lab, 0, None).ravel()), w.ravel())
            total = votes.sum(axis=1, keepdims=True)
            p = votes / np.where(total > 0, total, 1.0)
            p[total[:, 0] == 0] = self.prior[spec.name]
            return (1 - SMOOTHING) * p + SMOOTHING * self.prior[spec.name]
        ok = np.isfinite(lab)
        w = np.where(ok, w, 0.0)
        total = w.sum(axis=1)
        mean = float(np.nanmean(self.labels[spec.name])) if np.isfinite(self.labels[spec.name]).any() else 0.0
        v = np.where(total > 0, (w * np.where(ok, lab, 0.0)).sum(axis=1) / np.where(total > 0, total, 1.0), mean)
        return v

    def fit(self, feats: Features, y: dict[str, np.ndarray], train: np.ndarray, val: np.ndarray, log=print) -> "KNNHead":
        ks = self.settings.knn
        have = [b.name for b in feats.blocks]
        names = [n for n in ks.features if n in have] or None
        self.inputs = SparseInputs.fit(feats, train, names)
        self.index = NearestNeighbors(metric="cosine", algorithm="brute").fit(self.inputs.transform(feats.take(train), missing=False))
        for s in self.specs:
            v = y[s.name][train]
            self.labels[s.name] = v
            if s.kind == "classification":
                c = np.bincount(v[v >= 0], minlength=len(s.classes)).astype(np.float64) + 1.0
                self.prior[s.name] = c / c.sum()
        dist, idx = self._neighbours(feats.take(val), max(ks.k)) if len(val) else (None, None)
        for s in self.specs:
            yy = y[s.name][val]
            keep = (yy >= 0) if s.kind == "classification" else np.isfinite(yy)
            scores = {}
            for k in ks.k:
                if dist is None or not keep.any():
                    break
                r = self._vote(s, dist[keep], idx[keep], k)
                scores[k] = (-log_loss(yy[keep], r, labels=np.arange(len(s.classes))) if s.kind == "classification"
                             else r2_score(yy[keep], r) if keep.sum() > 1 else 0.0)
            self.chosen[s.name] = max(scores, key=scores.get) if scores else ks.k[0]
            if s.kind == "regression":
                lo, hi = ks.quantiles
                if keep.sum() >= 10:
                    resid = yy[keep] - self._vote(s, dist[keep], idx[keep], self.chosen[s.name])
                    q = np.quantile(resid, [lo, hi])
                else:
                    q = np.quantile(self.labels[s.name][np.isfinite(self.labels[s.name])] - np.nanmean(self.labels[s.name]), [lo, hi])
                self.residual_quantiles[s.name] = (float(q[0]), float(q[1]))
            log(f"  knn {s.name}: {len(train)} neighbours to choose from, k {self.chosen[s.name]}")
        return self

    def predict(self, feats: Features) -> dict[str, np.ndarray]:
        """Per target: class probabilities (n, C), or log [value, lower, upper] (n, 3)."""
        dist, idx = self._neighbours(feats, max(self.chosen.values()))
        out = {}
        for s in self.specs:
            r = self._vote(s, dist, idx, self.chosen[s.name])
            if s.kind == "classification":
                out[s.name] = r
            else:
                lo, hi = self.residual_quantiles[s.name]
                out[s.name] = np.column_stack([r, r + min(lo, 0.0), r + max(hi, 0.0)])
        return out

    def save(self, directory: Path) -> dict:
        directory.mkdir(parents=True, exist_ok=True)
        joblib.dump({"inputs": self.inputs, "index": self.index, "labels": self.labels, "prior": self.prior},
                    directory / INDEX_FILE)
        return {"file": INDEX_FILE, "chosen": self.chosen, "residual_quantiles": self.residual_quantiles,
                "knn_settings": json.loads(self.settings.knn.model_dump_json())}

    @classmethod
    def load(cls, directory: Path, settings: TrainSettings, specs: list[TargetSpec], part: dict) -> "KNNHead":
        head = cls(settings, specs)
        saved = joblib.load(directory / part["file"])
        head.inputs, head.index, head.labels, head.prior = saved["inputs"], saved["index"], saved["labels"], saved["prior"]
        head.chosen = {t: int(k) for t, k in part["chosen"].items()}
        head.residual_quantiles = {t: tuple(q) for t, q in part.get("residual_quantiles", {}).items()}
        return head
