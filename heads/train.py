"""Train heads on stored embeddings and register them: the `vitrine train` entry point.

Rows: every product with a label for at least one target of the set. Each target trains only on
its labelled rows (NULL labels are left out of that target only). A product missing a modality
is kept: its block is zeros and its missing indicator is 1. One seeded, stratified split is
shared by all targets and heads of a model; targets given other features (`train.target_features`)
are trained as models of their own, one per feature list. With several heads, the one with the
better validation score becomes the current model of the target set. The caller holds the
warehouse writer lock.

Every reported figure comes from the evaluation fit (train split, early-stopped on val, scored on
test); the registered model is then refitted on every labelled row but val (`train.refit_all`), so
the labels of the test split reach the model that scores the catalog too. With a regression
target, a calibration split held out of the evaluation fit conformalises the price interval
(heads.conformal), or, with `train.calibration_folds`, out-of-fold fits over the training rows do
(heads.cross_conformal); its widening is saved with the model.
"""
from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from heads import registry
from heads.conformal import apply_calibration, calibrate
from heads.cross_conformal import out_of_fold_intervals
from heads.label_scores import cross_fit, label_scores
from heads.features import blocks_from_settings, blocks_with_inputs, coverage, read_features, without_targets
from heads.metrics import classification_metrics, confusion_png, headline, rare_class_recall, regression_metrics
from heads.predict import HEADS, save_spec
from heads.report import render
from heads.splits import Split, make_split, strata_for
from heads.targets import TargetSpec, label_strings, labelled, prepare_targets
from warehouse.atomic import write_parquet_atomic
from warehouse.decisions import apply_decisions
from warehouse.layout import Warehouse, safe_name
from warehouse.tables import now_utc, read_products


@dataclass
class TrainedModel:
    model_id: str
    head: str
    targets: list[str]
    metrics: dict
    report_path: str
    val_score: float | None = None
    is_current: bool = False
    skipped: dict[str, str] = field(default_factory=dict)


class TrainResult(list):
    """The trained models (a list), plus `skipped` {target: message} and `messages`."""

    def __init__(self, models=(), skipped: dict[str, str] | None = None, messages: list[str] | None = None):
        super().__init__(models)
        self.skipped = skipped or {}
        self.messages = messages or []


def resolve_targets(train_settings, targets: Sequence[str] | None) -> tuple[list[str], list[str]]:
    """(classification, regression) targets: the config's, or those named (kind from the config)."""
    reg_known = set(train_settings.regression_targets)
    if not targets:
        return list(train_settings.classification_targets), list(train_settings.regression_targets)
    names = list(dict.fromkeys(targets))
    return [t for t in names if t not in reg_known], [t for t in names if t in reg_known]


def feature_groups(train_settings, names: Sequence[str]) -> dict[tuple[str, ...], list[str]]:
    """The targets grouped by the features they train on (`train.target_features`, else
    `train.features`), first-seen order: each group is one model, since a head fits one feature matrix."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for t in names:
        groups.setdefault(tuple(train_settings.target_features.get(t, train_settings.features)), []).append(t)
    return groups


def evaluate_outputs(specs: list[TargetSpec], y: dict[str, np.ndarray], raw: dict[str, np.ndarray], split: Split,
                     names: dict[str, list[str | None]] | None = None, rare_n: int = 20) -> dict:
    """Validation and test metrics per target, and the validation score used to pick a head.

    `names`: each row's true label as the catalog has it (before rare classes are merged), for the
    figures over the true classes.
    """
    per: dict[str, dict] = {}
    heads_val = []
    for s in specs:
        if s.name not in raw:
            continue
        per[s.name] = {}
        for part, idx in (("val", split.val), ("test", split.test)):
            r, t = raw[s.name][idx], y[s.name][idx]
            if s.kind == "classification":
                true = [names[s.name][i] for i in idx] if names and s.name in names else None
                m = classification_metrics(t, r, true, s.classes)
            else:
                m = regression_metrics(t, r[:, 0], r[:, 1], r[:, 2])
            per[s.name][part] = m
        if s.kind == "classification" and names and s.name in names and rare_n:
            counts = Counter(v for v in names[s.name] if v is not None)
            idx = split.test
            pred = np.asarray(s.classes, dtype=object)[raw[s.name][idx].argmax(axis=1)]
            per[s.name]["rare_recall"] = rare_class_recall([names[s.name][i] for i in idx], pred.tolist(), counts, rare_n)
        h = headline(s.kind, per[s.name]["val"])
        if h is not None:
            heads_val.append(h)
    return {"targets": per, "val_score": float(np.mean(heads_val)) if heads_val else None}


def head_quantiles(train_settings, head: str) -> tuple[float, float]:
    """The interval quantiles the head is configured with; their difference is the coverage aimed at."""
    return tuple(getattr(train_settings, head).quantiles)


def _heads(settings, head: str | None) -> list[str]:
    if head is None:
        return list(dict.fromkeys(settings.train.heads))
    if head == "both":
        return ["lightgbm", "mlp"]
    if head not in HEADS:
        raise ValueError(f"unknown head {head!r}: use {', '.join(HEADS)} or both")
    return [head]


def train(
    wh: Warehouse,
    settings,
    head: str | None = None,
    targets: list[str] | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train `head` (a name of heads.predict.HEADS, or 'both' = lightgbm and mlp; None = settings.train.heads)
    and register the models."""
    ts = settings.train
    messages: list[str] = []

    def log(msg: str) -> None:
        messages.append(msg)
        if progress:
            print(msg, flush=True)

    cls_t, reg_t = resolve_targets(ts, targets)
    if ts.target_features:
        result = TrainResult()
        for names, group in feature_groups(ts, cls_t + reg_t).items():
            log(f"targets {', '.join(group)}: features {', '.join(names)} (train.target_features)")
            sub = settings.model_copy(update={"train": ts.model_copy(update={"features": list(names), "target_features": {}})})
            part = train(wh, sub, head, group, progress)
            result.extend(part)
            result.skipped.update(part.skipped)
            messages.extend(part.messages)
        result.messages = messages
        return result
    products, corrected = apply_decisions(wh, read_products(wh))
    if corrected:
        log("labels corrected by reviewers: " + ", ".join(f"{t} {n}" for t, n in sorted(corrected.items())))
    specs, y, skipped = prepare_targets(products, cls_t, reg_t, ts.min_class_count)
    for msg in skipped.values():
        log(msg)
    if not specs:
        log("no target left to train")
        return TrainResult([], skipped, messages)
    rows = np.zeros(products.num_rows, dtype=bool)
    for s in specs:
        rows |= labelled(s, y[s.name])
    take = np.flatnonzero(rows)
    if ts.max_rows is not None and len(take) > ts.max_rows:
        log(f"training on a seeded sample of {ts.max_rows} of {len(take)} labelled products (train.max_rows)")
        take = np.sort(np.random.default_rng(ts.seed).choice(take, ts.max_rows, replace=False))
    products = products.take(pa.array(take))
    y = {k: v[take] for k, v in y.items()}
    blocks, notes = blocks_with_inputs(wh, products, blocks_from_settings(settings))
    blocks, notes2 = without_targets(blocks, [s.name for s in specs])
    for msg in notes + notes2:
        log(msg)
    feats = read_features(wh, products, blocks, sparse=ts.sparse_features, min_df=ts.ngram_min_df,
                          max_codes=ts.ngram_max_codes)
    true_names = {s.name: label_strings(products[s.name]) for s in specs if s.kind == "classification"}
    cov = coverage(feats)
    for b in feats.blocks:
        log(f"features {b.name}: {b.encoder_id} ({b.dim}-d), fresh vectors for {cov[b.encoder_id]:.1%} of {feats.n} products")
    strat_name, strata = strata_for(specs, y)
    has_reg = any(s.kind == "regression" for s in specs)
    folds = ts.calibration_folds if has_reg and ts.calibration_folds >= 2 else 0
    split = make_split(feats.n, strata, strat_name, ts.test_size, ts.val_size, ts.seed,
                       ts.calibration_size if has_reg and not folds else 0.0)
    log(f"split: {split.sizes()} (stratified on {split.stratified_on or 'nothing: shuffled fallback'})")
    latest = pc.max(products["updated_at"]).as_py() if "updated_at" in products.column_names else None
    tset = registry.target_set([s.name for s in specs])
    trained, reg_rows = [], []
    for h in _heads(settings, head):
        log(f"training {h} on {', '.join(s.name for s in specs)}")
        t_fit = time.perf_counter()
        impl = HEADS[h](ts, specs).fit(feats, y, split.train, split.val, log=log)
        fit_seconds = time.perf_counter() - t_fit
        raw = impl.predict(feats)
        lo_q, hi_q = head_quantiles(ts, h)
        cal_fits = None
        if folds and len(split.train) < 10 * folds:
            log(f"price interval not calibrated: {len(split.train)} training rows are too few for "
                f"{folds} calibration folds (train.calibration_folds)")
            offsets = {}
        elif folds:
            log(f"calibrating {h}'s interval out of fold: {folds} more fits, each on {folds - 1}/{folds} "
                f"of the {len(split.train)} training rows (train.calibration_folds)")
            t_cal = time.perf_counter()
            oof = out_of_fold_intervals(HEADS[h], ts, specs, feats, y, split.train, split.val, strata, log=log)
            offsets = calibrate(specs, y, oof, split.train, hi_q - lo_q)
            cal_fits = {"folds": folds, "rows": len(split.train), "seconds": round(time.perf_counter() - t_cal, 1)}
        else:
            offsets = calibrate(specs, y, raw, split.cal, hi_q - lo_q)
        raw = apply_calibration(raw, offsets)
        metrics = evaluate_outputs(specs, y, raw, split, true_names, ts.rare_classes_reported)
        metrics["skipped"] = skipped
        metrics["calibration"] = {"offsets": offsets, "coverage": hi_q - lo_q,
                                  "rows": len(split.train) if folds else len(split.cal), "folds": folds}
        final_impl, refit_seconds, refit_rows = impl, None, None
        if ts.refit_all:
            rows_all = np.sort(np.concatenate([split.train, split.cal, split.test]))
            log(f"refitting {h} on every labelled row but validation ({len(rows_all)} rows) for the registered model")
            t_fit = time.perf_counter()
            final_impl = HEADS[h](ts, specs).fit(feats, y, rows_all, split.val, log=log)
            refit_seconds, refit_rows = time.perf_counter() - t_fit, len(rows_all)
        metrics["fits"] = {
            "evaluation": {"rows": len(split.train), "seconds": round(fit_seconds, 1),
                           "figures": "validation and test metrics, interval calibration"},
            "registered": ({"rows": refit_rows, "seconds": round(refit_seconds, 1), "early_stopping_rows": len(split.val)}
                           if ts.refit_all else {"rows": len(split.train), "same_as": "evaluation"}),
        }
        if cal_fits:
            metrics["fits"]["calibration"] = cal_fits
        trained_at = now_utc()
        model_id = f"{h}-{trained_at.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
        final = wh.model_dir(model_id)
        tmp = wh.models_root / f".tmp-{safe_name(model_id)}"
        tmp.mkdir(parents=True, exist_ok=True)
        try:
            head_part = final_impl.save(tmp)
            split_table = pa.table({
                "product_id": pa.array(feats.product_ids, pa.string()),
                "split": pa.array(split.labels(feats.n), pa.string()),
            })
            write_parquet_atomic(split_table, tmp / "split.parquet")
            pngs = {}
            for s in specs:
                if s.kind == "classification" and s.name in raw:
                    name = f"confusion-{safe_name(s.name)}.png"
                    if confusion_png(y[s.name][split.test], raw[s.name][split.test], s.classes, tmp / name,
                                     ts.confusion_top_n, f"{s.name} — {h} — test"):
                        pngs[s.name] = name
            spec = {
                "model_id": model_id, "head": h, "target_set": tset,
                "targets": [s.to_dict() for s in specs if s.name in raw],
                "blocks": [b.to_dict() for b in feats.blocks],
                "settings": json.loads(ts.model_dump_json()),
                "head_part": head_part,
                "split": {"stratified_on": split.stratified_on, "sizes": split.sizes(), "file": "split.parquet"},
                "coverage": cov, "skipped": skipped, "training_rows": feats.n,
                "fits": metrics["fits"], "calibration": offsets,
                "corrected_labels": corrected,
                "trained_at": trained_at.isoformat(),
                "training_latest_updated_at": latest.isoformat() if latest else None,
            }
            save_spec(tmp, spec)
            (tmp / "report.md").write_text(render(spec, metrics, pngs))
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        log(f"{h}: model {model_id}, validation score {metrics['val_score']}")
        trained.append(TrainedModel(model_id, h, [s.name for s in specs if s.name in raw], metrics,
                                    str(final / "report.md"), metrics["val_score"], False, skipped))
        reg_rows.append({
            "model_id": model_id, "head": h, "target_set": tset, "targets": [s.name for s in specs],
            "encoder_ids": [b.encoder_id for b in feats.blocks], "metrics": metrics,
            "training_rows": feats.n, "training_latest_updated_at": latest,
            "artifact_path": str(final), "trained_at": trained_at, "is_current": False,
        })
    best = max(trained, key=lambda m: -np.inf if m.val_score is None else m.val_score)
    best.is_current = True
    if len(trained) > 1:
        others = ", ".join(f"{m.head} {m.val_score:.4f}" for m in trained if m is not best and m.val_score is not None)
        log(f"current model for [{tset}]: {best.model_id} ({best.head}, validation score {best.val_score:.4f} vs {others})")
        for r in reg_rows:
            r["metrics"]["chosen_by"] = "validation score (mean accuracy / R² log over targets)"
    if ts.label_folds >= 2 and any(s.kind == "classification" for s in specs):
        log(f"label scores: {ts.label_folds} out-of-fold fits of {best.head} judge every training label")
        t_folds = time.perf_counter()
        oof = cross_fit(HEADS[best.head], ts, specs, feats, y, strata, log=log)
        scores = label_scores(products, specs, y, oof, best.model_id, settings.score.top_k, ts.label_issue_max_quality)
        write_parquet_atomic(scores, wh.label_scores_path(best.model_id))
        flagged = int(pc.sum(scores["is_issue"]).as_py() or 0)
        fold_seconds = round(time.perf_counter() - t_folds, 1)
        log(f"label scores: {scores.num_rows} labels judged, {flagged} flagged by confident learning ({fold_seconds} s)")
        for r in reg_rows:
            r["metrics"]["label_folds_seconds"] = fold_seconds
    for r in reg_rows:
        r["metrics"]["corrected_labels"] = corrected
    registry.register(wh, reg_rows, best.model_id)
    return TrainResult(trained, skipped, messages)
