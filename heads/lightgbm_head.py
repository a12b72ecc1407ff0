"""LightGBM head: one booster per target over a few dozen dense inputs per encoder.

Trees on raw 1,000+-d embeddings are slow and weak (measured: 0.23 accuracy where a linear model
reaches 0.94). So each encoder block is reduced by a PCA fitted on the training rows that have
that encoder's vector (missing rows become 0 = the mean, plus a missing-indicator column; a hashed
n-gram block stored as slots, tens of thousands of inputs wide, by a truncated SVD of its sparse
rows, which never densifies them), and
for each target an out-of-fold linear model (logistic regression / ridge on the wider PCA) adds
its class probabilities (or log-price) as stacked inputs. Boosting starts from that linear model
(its log-probabilities or log-price are the booster's init score), so the trees learn only the
corrections and the interactions with the missing indicators: started from the class priors
instead, a multiclass booster with a hundred classes stopped early after a few rounds, below its
own linear input. Regression targets get two more quantile boosters (alpha =
settings.quantiles) for the prediction interval; they start from the linear prediction shifted by
that quantile of its out-of-fold residuals.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import joblib
import lightgbm as lgb
import numpy as np
from scipy import sparse as sp
from sklearn.decomposition import PCA, TruncatedSVD
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from heads.features import Features, dense_rows, row_chunks
from heads.settings import TrainSettings
from heads.targets import TargetSpec, full_proba, labelled
from warehouse.layout import safe_name


def _linear(spec: TargetSpec, seed: int):
    if spec.kind == "classification":
        return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=300, random_state=seed))
    return make_pipeline(StandardScaler(), Ridge(alpha=10.0))


PROBA_FLOOR = 1e-6  # a class the linear model gives no mass starts at log(1e-6), not at -inf


def _init_score(spec: TargetSpec, stacked: np.ndarray) -> np.ndarray | None:
    """The booster's starting raw score from the stacked linear output (None: no linear model)."""
    if stacked.shape[1] == 0:
        return None
    if spec.kind == "classification":
        return np.log(np.clip(stacked, PROBA_FLOOR, 1.0))
    return stacked[:, 0].copy()


def components(projection) -> int:
    """Scores a block's fitted projection gives (PCA or, for n-gram slots, truncated SVD; None: 0)."""
    return 0 if projection is None else int(projection.components_.shape[0])


def _softmax(raw: np.ndarray) -> np.ndarray:
    z = np.exp(raw - raw.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


class LightGBMHead:
    kind = "lightgbm"

    def __init__(self, settings: TrainSettings, specs: list[TargetSpec]) -> None:
        self.settings = settings
        self.specs = specs
        self.pcas: dict[str, PCA | None] = {}
        self.linear: dict[str, object] = {}
        self.boosters: dict[str, dict[str, lgb.Booster]] = {}
        self.block_order: list[str] = []
        self.boost_from_linear = True  # models saved before this existed started from the priors
        self.residual_quantiles: dict[str, dict[str, float]] = {}  # target → role → start offset

    # ----- inputs -------------------------------------------------------------------------------
    def _fit_pca(self, feats: Features) -> None:
        s = self.settings.lightgbm
        want = max(s.reduce_dim, s.stack_dim)
        rng = np.random.default_rng(self.settings.seed)
        for b in feats.blocks:
            rows = np.flatnonzero(feats.found[b.encoder_id])
            if len(rows) > s.pca_fit_rows:  # a seeded sample fits the projection; every row is projected
                rows = np.sort(rng.choice(rows, s.pca_fit_rows, replace=False))
            if b.stores_slots:
                # tens of thousands of n-gram inputs: densified, 200,000 fit rows would be tens of GB, so
                # a truncated SVD fits on the sparse rows themselves (uncentred; trees do not mind)
                x = feats.matrices[b.encoder_id][rows]
                k = min(want, x.shape[1] - 1, max(x.shape[0] - 1, 0))
                if k < 1:
                    self.pcas[b.encoder_id] = None
                    continue
                svd = TruncatedSVD(n_components=k, algorithm="randomized", random_state=self.settings.seed)
                svd.fit(sp.csr_matrix(x, dtype=np.float64))
                svd.components_ = np.ascontiguousarray(svd.components_)
                self.pcas[b.encoder_id] = svd
                continue
            x = dense_rows(feats.matrices[b.encoder_id], rows)
            k = min(want, x.shape[1], max(x.shape[0] - 1, 0))
            if k < 1:
                self.pcas[b.encoder_id] = None
                continue
            pca = PCA(n_components=k, svd_solver="randomized", random_state=self.settings.seed)
            pca.fit(x.astype(np.float64))
            # the fitted projection is a strided view, a reloaded one is contiguous: BLAS would take
            # another kernel and round differently, and a reloaded model would not predict identically
            pca.components_ = np.ascontiguousarray(pca.components_)
            self.pcas[b.encoder_id] = pca
        self.block_order = [b.encoder_id for b in feats.blocks]

    def _reduced(self, feats: Features) -> tuple[list[np.ndarray], np.ndarray]:
        """Per-block PCA scores (zeros where missing) and the missing indicators."""
        blocks, missing = [], []
        for eid in self.block_order:
            m, f = feats.matrices[eid], feats.found[eid]
            pca = self.pcas[eid]
            z = np.zeros((feats.n, components(pca)), dtype=np.float64)
            if pca is not None and f.any():
                idx = np.flatnonzero(f)
                for part in row_chunks(len(idx), 8192):  # a chunk densified at a time (sparse blocks)
                    if isinstance(pca, TruncatedSVD):
                        z[idx[part]] = pca.transform(sp.csr_matrix(m[idx[part]], dtype=np.float64))
                    else:
                        z[idx[part]] = pca.transform(dense_rows(m, idx[part]).astype(np.float64))
            blocks.append(z)
            missing.append((~f).astype(np.float64))
        return blocks, np.column_stack(missing) if missing else np.zeros((feats.n, 0))

    def _inputs(self, feats: Features) -> tuple[np.ndarray, np.ndarray]:
        """(tree inputs without stacked scores, linear-model inputs)."""
        s = self.settings.lightgbm
        blocks, missing = self._reduced(feats)
        tree = [z if s.reduce_dim == 0 else z[:, : s.reduce_dim] for z in blocks]
        if s.reduce_dim == 0:  # raw vectors, as asked
            tree = [dense_rows(feats.matrices[eid]).astype(np.float64) for eid in self.block_order]
        lin = [z[:, : s.stack_dim] for z in blocks]
        return np.hstack(tree + [missing]), np.hstack(lin + [missing])

    def _stack(self, spec: TargetSpec, lin: np.ndarray) -> np.ndarray:
        model = self.linear.get(spec.name)
        if model is None:
            return np.zeros((lin.shape[0], 0))
        if spec.kind == "classification":
            return full_proba(model.predict_proba(lin), model.classes_, len(spec.classes))
        return model.predict(lin)[:, None]

    # ----- training -----------------------------------------------------------------------------
    def _params(self, spec: TargetSpec, objective: str, alpha: float | None = None) -> dict:
        s = self.settings.lightgbm
        p = {
            "objective": objective,
            "learning_rate": s.learning_rate,
            "num_leaves": s.num_leaves,
            "min_data_in_leaf": s.min_data_in_leaf,
            "lambda_l2": s.lambda_l2,
            "num_threads": s.num_threads,
            "seed": self.settings.seed,
            "deterministic": True,
            "force_row_wise": True,
            "feature_fraction": 0.8,
            "feature_fraction_seed": self.settings.seed,
            "verbose": -1,
        }
        if objective == "multiclass":
            p["num_class"] = len(spec.classes)
        if alpha is not None:
            p["alpha"] = alpha
        return p

    def _boost(self, params: dict, xtr, ytr, xva, yva, init_tr=None, init_va=None) -> lgb.Booster:
        s = self.settings.lightgbm
        dtr = lgb.Dataset(xtr, ytr, init_score=init_tr, free_raw_data=True)
        if len(yva):
            dva = lgb.Dataset(xva, yva, init_score=init_va, reference=dtr)
            return lgb.train(
                params, dtr, num_boost_round=s.num_boost_round, valid_sets=[dva],
                callbacks=[lgb.early_stopping(s.early_stopping_rounds, verbose=False)],
            )
        return lgb.train(params, dtr, num_boost_round=s.num_boost_round)

    def fit(self, feats: Features, y: dict[str, np.ndarray], train: np.ndarray, val: np.ndarray, log=print) -> "LightGBMHead":
        s = self.settings.lightgbm
        self._fit_pca(feats.take(train))
        tree_all, lin_all = self._inputs(feats)
        for spec in self.specs:
            yy = y[spec.name]
            tr = train[labelled(spec, yy[train])]
            va = val[labelled(spec, yy[val])]
            if len(tr) < 2:
                log(f"  lightgbm {spec.name}: fewer than 2 labelled training rows, skipped")
                continue
            ytr = yy[tr]
            stack_tr = np.zeros((len(tr), 0))
            if s.stack_linear:
                model = _linear(spec, self.settings.seed)
                if spec.kind == "classification":
                    present = np.unique(ytr)
                    folds = min(s.stack_folds, int(np.bincount(ytr).max()))
                    if len(present) >= 2 and folds >= 2:
                        cv = StratifiedKFold(folds, shuffle=True, random_state=self.settings.seed)
                        with warnings.catch_warnings():
                            # Classes with fewer rows than folds are expected (the rare-class rule
                            # keeps them); _full_proba fills the columns a fold did not see.
                            warnings.filterwarnings("ignore", message="The least populated class")
                            warnings.filterwarnings("ignore", message="Number of classes in training fold")
                            oof = cross_val_predict(model, lin_all[tr], ytr, cv=cv, method="predict_proba")
                        stack_tr = full_proba(oof, present, len(spec.classes))
                        self.linear[spec.name] = model.fit(lin_all[tr], ytr)
                else:
                    cv = KFold(min(s.stack_folds, len(tr)), shuffle=True, random_state=self.settings.seed)
                    stack_tr = cross_val_predict(model, lin_all[tr], ytr, cv=cv)[:, None]
                    self.linear[spec.name] = model.fit(lin_all[tr], ytr)
            stack_va = self._stack(spec, lin_all[va])
            xtr, xva = np.hstack([tree_all[tr], stack_tr]), np.hstack([tree_all[va], stack_va])
            init_tr, init_va = _init_score(spec, stack_tr), _init_score(spec, stack_va)
            if spec.kind == "classification":
                self.boosters[spec.name] = {
                    "main": self._boost(self._params(spec, "multiclass"), xtr, ytr, xva, yy[va], init_tr, init_va)
                }
            else:
                lo, hi = self.settings.lightgbm.quantiles
                shift = {"main": 0.0}
                if init_tr is not None:
                    q = np.quantile(ytr - init_tr, [lo, hi])
                    shift.update(lower=float(q[0]), upper=float(q[1]))
                    self.residual_quantiles[spec.name] = shift
                params = {"main": self._params(spec, "regression"), "lower": self._params(spec, "quantile", lo),
                          "upper": self._params(spec, "quantile", hi)}
                self.boosters[spec.name] = {
                    role: self._boost(p, xtr, ytr, xva, yy[va],
                                      None if init_tr is None else init_tr + shift.get(role, 0.0),
                                      None if init_va is None else init_va + shift.get(role, 0.0))
                    for role, p in params.items()
                }
            log(f"  lightgbm {spec.name}: {len(tr)} train rows, "
                f"{self.boosters[spec.name]['main'].best_iteration or s.num_boost_round} rounds")
        return self

    # ----- prediction ---------------------------------------------------------------------------
    def predict(self, feats: Features) -> dict[str, np.ndarray]:
        """Per target: class probabilities (n, C), or log [value, lower, upper] (n, 3)."""
        tree_all, lin_all = self._inputs(feats)
        out: dict[str, np.ndarray] = {}
        for spec in self.specs:
            bs = self.boosters.get(spec.name)
            if bs is None:
                continue
            stacked = self._stack(spec, lin_all)
            x = np.hstack([tree_all, stacked])
            init = _init_score(spec, stacked) if self.boost_from_linear else None
            shift = self.residual_quantiles.get(spec.name, {})

            def raw(role: str) -> np.ndarray:
                """The booster's raw score, plus the linear start it was trained from."""
                b = bs[role]
                r = np.asarray(b.predict(x, num_iteration=b.best_iteration or None, raw_score=True), dtype=np.float64)
                return r if init is None else r.reshape(init.shape) + init + shift.get(role, 0.0)

            if spec.kind == "classification":
                out[spec.name] = _softmax(raw("main").reshape(feats.n, len(spec.classes)))
            else:
                v, lo, hi = raw("main"), raw("lower"), raw("upper")
                out[spec.name] = np.column_stack([v, np.minimum(lo, v), np.maximum(hi, v)])
        return out

    # ----- artifacts ----------------------------------------------------------------------------
    def save(self, directory: Path) -> dict:
        """Booster text per target and quantile, sklearn pieces by joblib; returns the spec part."""
        directory.mkdir(parents=True, exist_ok=True)
        files: dict[str, dict[str, str]] = {}
        for t, bs in self.boosters.items():
            files[t] = {}
            for role, b in bs.items():
                name = f"lightgbm-{safe_name(t)}-{role}.txt"
                b.save_model(str(directory / name), num_iteration=b.best_iteration or None)
                files[t][role] = name
        joblib.dump({"pcas": self.pcas, "linear": self.linear, "block_order": self.block_order},
                    directory / "lightgbm-preprocess.joblib")
        pca_dims = {eid: components(p) for eid, p in self.pcas.items()}
        return {"boosters": files, "preprocess": "lightgbm-preprocess.joblib", "pca_dims": pca_dims,
                "boost_from_linear": self.boost_from_linear, "residual_quantiles": self.residual_quantiles,
                "lightgbm_settings": json.loads(self.settings.lightgbm.model_dump_json())}

    @classmethod
    def load(cls, directory: Path, settings: TrainSettings, specs: list[TargetSpec], part: dict) -> "LightGBMHead":
        head = cls(settings, specs)
        pre = joblib.load(directory / part["preprocess"])
        head.pcas, head.linear, head.block_order = pre["pcas"], pre["linear"], pre["block_order"]
        head.boost_from_linear = bool(part.get("boost_from_linear", False))
        head.residual_quantiles = {t: dict(q) for t, q in part.get("residual_quantiles", {}).items()}
        for t, roles in part["boosters"].items():
            head.boosters[t] = {r: lgb.Booster(model_file=str(directory / f)) for r, f in roles.items()}
        return head
