"""Blend head: several heads fitted on the same rows, their outputs mixed per target.

The fusion MLP is the most accurate head on frequent classes; a linear model on IDF-weighted title
n-grams and one-hot catalog columns keeps more of the rare classes and, on Myntra, predicts log
price better; nearest neighbours find the twin of a product listed before. Their errors differ,
so a mix beats each (measured: BENCHMARKS.md). The blend fits every member of `blend.members` on
the training rows (each early-stops / tunes on the validation rows as it would alone), then, per
target, picks the member weights on a grid over the simplex (step `blend.step`) that score best on
the VALIDATION rows: log-loss of the mixed class probabilities, or R² on log price of the mixed
value (its interval is the same mix of the members' interval ends, and heads.conformal calibrates
it afterwards on its own rows like any head's). The test rows are never seen. A member that is
best alone gets weight 1, so on validation the blend is never worse than its best member.

Log-loss rewards the class prior; macro-F1 rewards the rare classes. With `blend.prior_tau`
candidates, the mixed probabilities of a classification target are then logit-adjusted post hoc
(divided by the training prior to the power tau, Menon et al. 2021) with the tau whose validation
macro-F1 is best among those that keep validation accuracy at least that of no adjustment.

Saved as one sub-folder per member (each member saves and loads itself) plus the weights.
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
from sklearn.metrics import log_loss, r2_score

from heads.features import Features
from heads.knn_head import KNNHead
from heads.lightgbm_head import LightGBMHead
from heads.linear_head import LinearHead
from heads.mlp_head import MLPHead
from heads.settings import TrainSettings
from heads.targets import TargetSpec, labelled

MEMBERS = {"lightgbm": LightGBMHead, "mlp": MLPHead, "linear": LinearHead, "knn": KNNHead}
PROBA_FLOOR = 1e-12


def simplex_grid(n: int, step: float) -> np.ndarray:
    """Every weight vector of n members, each a multiple of `step`, summing to 1 (rows)."""
    m = max(int(round(1.0 / step)), 1)
    rows = [c for c in itertools.product(range(m + 1), repeat=n) if sum(c) == m]
    return np.array(rows, dtype=np.float64) / m


def mix(outputs: list[np.ndarray], w: np.ndarray) -> np.ndarray:
    """The weighted sum of the members' outputs (probabilities, or log [value, lower, upper])."""
    return sum(wi * o for wi, o in zip(w, outputs) if wi > 0)


def score(spec: TargetSpec, y: np.ndarray, r: np.ndarray) -> float:
    """Higher is better: minus the log-loss, or R² on log."""
    if spec.kind == "classification":
        p = np.clip(r, PROBA_FLOOR, 1.0)
        return -log_loss(y, p / p.sum(axis=1, keepdims=True), labels=np.arange(r.shape[1]))
    return r2_score(y, r[:, 0]) if len(y) > 1 else 0.0


def adjust(p: np.ndarray, log_prior: np.ndarray, tau: float) -> np.ndarray:
    """Post-hoc logit adjustment: probabilities divided by prior**tau and renormalised (tau 0: unchanged)."""
    if tau == 0:
        return p
    z = np.log(np.clip(p, PROBA_FLOOR, 1.0)) - tau * log_prior
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def choose_tau(y: np.ndarray, p: np.ndarray, log_prior: np.ndarray, taus) -> tuple[float, float, float]:
    """The tau with the best validation macro-F1 among those that keep validation accuracy at least
    tau 0's (ties: the smaller tau); returns (tau, its macro-F1, its accuracy)."""
    from sklearn.metrics import f1_score

    best = None
    base_acc = None
    for tau in sorted(set([0.0, *taus])):
        pred = adjust(p, log_prior, tau).argmax(axis=1)
        acc = float(np.mean(pred == y))
        f1 = float(f1_score(y, pred, average="macro"))
        if base_acc is None:
            base_acc = acc
        if acc >= base_acc and (best is None or f1 > best[1] + 1e-12):
            best = (tau, f1, acc)
    return best


def choose_weights(spec: TargetSpec, y: np.ndarray, outputs: list[np.ndarray], step: float) -> tuple[np.ndarray, float]:
    """The grid weights with the best validation score, and that score (ties: the first, i.e. later members)."""
    best_w, best_s = None, -np.inf
    for w in simplex_grid(len(outputs), step):
        s = score(spec, y, mix(outputs, w))
        if s > best_s + 1e-12:
            best_w, best_s = w, s
    return best_w, float(best_s)


class BlendHead:
    kind = "blend"

    def __init__(self, settings: TrainSettings, specs: list[TargetSpec]) -> None:
        self.settings = settings
        self.specs = specs
        self.members: list[tuple[str, object]] = []
        self.weights: dict[str, list[float]] = {}  # target → one weight per member (0 where it has no output)
        self.tau: dict[str, float] = {}  # classification target → post-hoc logit adjustment
        self.log_prior: dict[str, np.ndarray] = {}

    def fit(self, feats: Features, y: dict[str, np.ndarray], train: np.ndarray, val: np.ndarray, log=print) -> "BlendHead":
        bs = self.settings.blend
        self.members = []
        for name in bs.members:
            log(f"  blend member {name}")
            self.members.append((name, MEMBERS[name](self.settings, self.specs).fit(feats, y, train, val, log=log)))
        val_feats = feats.take(val)
        outs = [m.predict(val_feats) for _, m in self.members]
        for s in self.specs:
            have = [i for i, o in enumerate(outs) if s.name in o]
            if not have:
                continue
            w = np.zeros(len(self.members))
            keep = labelled(s, y[s.name][val])
            if keep.sum() == 0:
                w[have] = 1.0 / len(have)
                self.weights[s.name] = w.tolist()
                continue
            yy = y[s.name][val][keep]
            chosen, best = choose_weights(s, yy, [outs[i][s.name][keep] for i in have], bs.step)
            w[have] = chosen
            self.weights[s.name] = w.tolist()
            note = ""
            if s.kind == "classification" and any(t > 0 for t in bs.prior_tau):
                v = y[s.name][train]
                counts = np.bincount(v[v >= 0], minlength=len(s.classes)).astype(np.float64) + 1.0
                self.log_prior[s.name] = np.log(counts / counts.sum())
                p = mix([outs[i][s.name][keep] for i in have], chosen)
                tau, f1, acc = choose_tau(yy, p, self.log_prior[s.name], bs.prior_tau)
                self.tau[s.name] = tau
                note = f"; prior tau {tau} (validation macro-F1 {f1:.4f}, accuracy {acc:.4f})"
            alone = ", ".join(f"{self.members[i][0]} {score(s, yy, outs[i][s.name][keep]):.4f}" for i in have)
            log(f"  blend {s.name}: weights " + ", ".join(f"{n} {wi:.2f}" for (n, _), wi in zip(self.members, w))
                + f" (validation {'R² log' if s.kind == 'regression' else '-log-loss'} {best:.4f}; alone: {alone}){note}")
        return self

    def predict(self, feats: Features) -> dict[str, np.ndarray]:
        """Per target: the mixed class probabilities (n, C), or mixed log [value, lower, upper] (n, 3)."""
        need = [i for i in range(len(self.members)) if any(w[i] > 0 for w in self.weights.values())]
        outs = {i: self.members[i][1].predict(feats) for i in need}
        res: dict[str, np.ndarray] = {}
        for s in self.specs:
            w = self.weights.get(s.name)
            if w is None:
                continue
            used = [i for i in need if w[i] > 0]
            r = mix([outs[i][s.name] for i in used], np.array([w[i] for i in used]))
            if self.tau.get(s.name):
                r = adjust(r, self.log_prior[s.name], self.tau[s.name])
            if s.kind == "regression":
                r = np.column_stack([r[:, 0], np.minimum(r[:, 1], r[:, 0]), np.maximum(r[:, 2], r[:, 0])])
            res[s.name] = np.asarray(r, dtype=np.float64)
        return res

    def save(self, directory: Path) -> dict:
        directory.mkdir(parents=True, exist_ok=True)
        parts = []
        for i, (name, m) in enumerate(self.members):
            sub = f"blend-{i}-{name}"
            parts.append({"head": name, "dir": sub, "part": m.save(directory / sub)})
        return {"members": parts, "weights": self.weights, "tau": self.tau,
                "log_prior": {t: v.tolist() for t, v in self.log_prior.items()},
                "blend_settings": json.loads(self.settings.blend.model_dump_json())}

    @classmethod
    def load(cls, directory: Path, settings: TrainSettings, specs: list[TargetSpec], part: dict) -> "BlendHead":
        head = cls(settings, specs)
        head.members = [(p["head"], MEMBERS[p["head"]].load(directory / p["dir"], settings, specs, p["part"]))
                        for p in part["members"]]
        head.weights = {t: list(w) for t, w in part["weights"].items()}
        head.tau = {t: float(v) for t, v in part.get("tau", {}).items()}
        head.log_prior = {t: np.asarray(v, dtype=np.float64) for t, v in part.get("log_prior", {}).items()}
        return head
