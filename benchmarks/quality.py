"""Quality benchmark: TF-IDF baseline vs text-only, image-only and fused heads, on the real catalogs.

Runs the real pipeline: warehouse.ingest → features.encode → heads.train, in a scratch warehouse.
Fashion Product Images: classification targets; Myntra: price (text only, no photos).
Every configuration is scored on the same held-out test split (the one heads.train stores next
to each model); the TF-IDF + linear baseline is fitted on that split's train rows.

    HF_HOME=$PWD/.hf-cache HF_HUB_OFFLINE=1 python benchmarks/quality.py --limit 5000 --write

On the whole catalog (no --limit) most of the time goes to LightGBM; `--report-only` re-renders
the report from the models such a run registered, without training.
"""
from __future__ import annotations

import argparse
import csv
import os
import random
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402

from features.settings import EncoderSpec  # noqa: E402
from flows.settings import Settings, load_settings  # noqa: E402
from heads.metrics import classification_metrics, regression_metrics  # noqa: E402
from heads.predict import HEADS, load_model, split_products  # noqa: E402
from heads.targets import encode_labels, label_strings, log_values  # noqa: E402
from heads.train import train  # noqa: E402
from warehouse.layout import open_warehouse  # noqa: E402
from warehouse.locks import writer_lock  # noqa: E402
from warehouse.tables import read_products  # noqa: E402
from report import command_line, stamp, write_section  # noqa: E402

DATA = ROOT.parent / "shared" / "datasets"
FASHION_TARGETS = ["master_category", "sub_category", "article_type", "gender", "usage", "base_colour", "season"]
CLS_METRICS = ["accuracy", "accuracy_true", "macro_f1", "macro_f1_true", "top3_accuracy"]
REG_METRICS = ["r2_log", "r2", "mae", "mape", "interval_coverage", "interval_median_width", "coverage_resplit_mean",
               "coverage_resplit_sd"]
RESPLITS = 300


def coverage_resplit(y: np.ndarray, raw: np.ndarray, cal: np.ndarray, test: np.ndarray, coverage: float,
                     reps: int = RESPLITS, seed: int = 0) -> dict[str, float]:
    """The interval's test coverage over `reps` random re-partitions of the calibration and test rows
    (same sizes, same fitted model): what the calibration method gives, apart from the luck of one
    999-row calibration draw (whose coverage alone varies by about 1.3 points)."""
    from heads.conformal import apply_calibration, conformal_offset

    if len(cal) == 0:  # calibrated out of fold (train.calibration_folds): no calibration rows to re-partition
        return {}
    pool = np.concatenate([cal, test])
    pool = pool[np.isfinite(y[pool])]
    rng = np.random.default_rng(seed)
    covs = []
    for _ in range(reps):
        perm = rng.permutation(pool)
        c, t = perm[:len(cal)], perm[len(cal):]
        q = conformal_offset(y[c], raw[c, 1], raw[c, 2], coverage, value=raw[c, 0])
        r = apply_calibration({"x": raw[t]}, {"x": q})["x"]  # the interval as the model outputs it
        covs.append(float(np.mean((y[t] >= r[:, 1]) & (y[t] <= r[:, 2]))))
    return {"coverage_resplit_mean": float(np.mean(covs)), "coverage_resplit_sd": float(np.std(covs))}
COLOUR = {"family": "colour", "model": "hsv:12x3x3+4", "input": "image"}
SLOT_NGRAMS = {"title_words": "word:1-2:1048576;max_ngrams=64", "title_chars": "char_wb:2-4:1048576;max_ngrams=512"}
WIDE_CHARS = {"family": "hashing", "model": "char_wb:2-5:16384", "input": "title"}
# num_images as a category, not a number: price does not grow in step with the photo count
MYNTRA_COLUMNS = {"family": "columns", "model": "cat=brand,gender,primary_colour,num_images;num=", "input": "columns"}


def demo_settings() -> Settings:
    return load_settings(ROOT / "configs" / "demo.yaml")


def modality_configs(settings: Settings) -> dict[str, list[str]]:
    """text / image / fusion: the config's training features split by input kind, and all of them."""
    feats = settings.train.features
    by_input = {k: [n for n in feats if settings.encoders[n].input == k] for k in ("title", "image")}
    return {"text": by_input["title"], "image": by_input["image"], "fusion": list(feats)}


def sample_fashion(limit: int | None, work: Path, seed: int) -> Path:
    """A folder with a sampled styles.csv (raw lines kept: the file is unquoted) and the images."""
    src = DATA / "fashion-product-images"
    if not limit:
        return src
    out = work / "fashion-sample"
    out.mkdir(parents=True, exist_ok=True)
    lines = (src / "styles.csv").read_text(encoding="utf-8", errors="replace").splitlines()
    body = lines[1:]
    random.Random(seed).shuffle(body)
    (out / "styles.csv").write_text("\n".join([lines[0]] + body[:limit]) + "\n", encoding="utf-8")
    if not (out / "images").exists():
        (out / "images").symlink_to(src / "images")
    return out


def sample_myntra(limit: int | None, work: Path, seed: int) -> Path:
    src = DATA / "myntra-products" / "products.csv"
    if not limit:
        return src
    with open(src, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    body = rows[1:]
    random.Random(seed).shuffle(body)
    out = work / "myntra-sample" / "products.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([rows[0]] + body[:limit])
    return out


def prepare(wh, settings: Settings, path: Path, names: list[str]) -> dict:
    from features.encode import encode
    from warehouse.ingest import ingest

    t0 = time.perf_counter()
    with writer_lock(wh, timeout=-1):
        summary = ingest(wh, path, settings.ingest)
        t1 = time.perf_counter()
        reports = encode(wh, settings.encoders, settings.encode, names=names, progress=False)
    t2 = time.perf_counter()
    print(f"ingest {summary.rows} rows in {t1 - t0:.0f}s; encode {', '.join(f'{r.name}={r.encoded}' for r in reports)} in {t2 - t1:.0f}s", flush=True)
    return {"ingest_s": t1 - t0, "encode_s": t2 - t1, "rows": summary.rows}


def tfidf_baseline(wh, model_id: str, extra: dict | None = None) -> dict[str, dict]:
    """Title TF-IDF + logistic regression (ridge on log price) on the model's own split and classes.

    `extra` (filled in): per target the test rows' predicted class names, for subsets of the test rows;
    for price also a ridge on title TF-IDF plus one-hot brand and gender (key `price+brand,gender`).
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression, Ridge

    model = load_model(wh, model_id)
    products, part = split_products(wh, model)
    titles = [t or "" for t in products["title"].to_pylist()]
    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    tr, te = part == "train", part == "test"
    x_tr = vec.fit_transform([t for t, k in zip(titles, tr) if k])
    x_te = vec.transform([t for t, k in zip(titles, te) if k])
    out = {}
    for spec in model.targets:
        if spec.kind == "classification":
            y = encode_labels(label_strings(products[spec.name]), spec)
            keep = y[tr] >= 0
            clf = LogisticRegression(C=10.0, max_iter=1000).fit(x_tr[keep], y[tr][keep])
            proba = np.zeros((te.sum(), len(spec.classes)))
            proba[:, clf.classes_] = clf.predict_proba(x_te)
            names = [v for v, k in zip(label_strings(products[spec.name]), te) if k]
            out[spec.name] = classification_metrics(y[te], proba, names, spec.classes)
            if extra is not None:
                extra[spec.name] = np.asarray(spec.classes, dtype=object)[proba.argmax(axis=1)]
        else:
            y = log_values(products[spec.name])
            keep = np.isfinite(y[tr])
            reg = Ridge(alpha=1.0).fit(x_tr[keep], y[tr][keep])
            resid = y[tr][keep] - reg.predict(x_tr[keep])
            lo, hi = np.quantile(resid, [0.1, 0.9])  # interval from training residuals
            p = reg.predict(x_te)
            out[spec.name] = regression_metrics(y[te], p, p + lo, p + hi)
            cols = [c for c in ("brand", "gender") if c in products.column_names]
            if extra is not None and cols:
                from scipy.sparse import hstack
                from sklearn.preprocessing import OneHotEncoder

                cats = [[str(v) for v in row] for row in zip(*(products[c].to_pylist() for c in cols))]
                enc = OneHotEncoder(handle_unknown="ignore").fit([c for c, k in zip(cats, tr) if k])
                xa_tr = hstack([x_tr, enc.transform([c for c, k in zip(cats, tr) if k])]).tocsr()
                xa_te = hstack([x_te, enc.transform([c for c, k in zip(cats, te) if k])]).tocsr()
                reg = Ridge(alpha=1.0).fit(xa_tr[keep], y[tr][keep])
                resid = y[tr][keep] - reg.predict(xa_tr[keep])
                lo, hi = np.quantile(resid, [0.1, 0.9])
                p = reg.predict(xa_te)
                extra["price+" + ",".join(cols)] = regression_metrics(y[te], p, p + lo, p + hi)
    return out


def variant_settings(settings: Settings, variant: str, args) -> tuple[str, dict]:
    """(suffix, train updates) of a training variant: `plain` is the config as is, `balanced` the
    logit-adjusted MLP with the lower min_class_count."""
    if variant == "plain":
        return "", {}
    return "-balanced", {"min_class_count": args.balanced_min_class_count,
                         "mlp": settings.train.mlp.model_copy(update={"logit_adjust": args.tau})}


def new_title_rows(wh, model_id: str) -> np.ndarray:
    """Test rows (in split order) whose title no training row has."""
    products, part = split_products(wh, load_model(wh, model_id), ["product_id", "title"])
    titles = np.array([(t or "").strip().lower() for t in products["title"].to_pylist()], dtype=object)
    seen = set(titles[part == "train"].tolist())
    return np.array([t not in seen for t in titles[part == "test"]])


def subset_metrics(wh, model_id: str, target: str, mask: np.ndarray, predicted: np.ndarray | None = None) -> dict:
    """Test metrics of one target over the test rows `mask` selects: the model's, or `predicted` names."""
    model = load_model(wh, model_id)
    products, part = split_products(wh, model)
    products = products.take(np.flatnonzero(part == "test"))
    spec = next(t for t in model.targets if t.name == target)
    names = label_strings(products[target])
    y = encode_labels(names, spec)
    if predicted is None:
        from heads.features import read_features

        proba = model.predict_features(read_features(wh, products, model.blocks))[target]
    else:
        index = {c: i for i, c in enumerate(spec.classes)}
        proba = np.zeros((len(predicted), len(spec.classes)))
        proba[np.arange(len(predicted)), [index[c] for c in predicted]] = 1.0
    keep = np.flatnonzero(mask)
    return classification_metrics(y[keep], proba[keep], [names[i] for i in keep], spec.classes)


def member_results(wh, model_id: str, rare_n: int = 20) -> dict[str, dict]:
    """Per member of a blend model: its test metrics, test predictions (class names, split order) and
    rare-class recall, as train.py scores a head fitted alone (the member IS such a fit: same rows,
    settings and seed), its price interval conformalised on the same calibration rows."""
    from collections import Counter

    from heads.conformal import apply_calibration, calibrate
    from heads.features import read_features
    from heads.metrics import rare_class_recall
    from heads.train import head_quantiles

    model = load_model(wh, model_id)
    products, part = split_products(wh, model)
    rows = np.flatnonzero((part == "test") | (part == "calibration"))
    test, cal = np.flatnonzero(part[rows] == "test"), np.flatnonzero(part[rows] == "calibration")
    sub = products.take(rows)
    feats = read_features(wh, sub, model.blocks)
    names = {t.name: label_strings(products[t.name]) for t in model.targets if t.kind == "classification"}
    sub_names = {t: label_strings(sub[t]) for t in names}
    y = {t.name: (encode_labels(sub_names[t.name], t) if t.kind == "classification" else log_values(sub[t.name]))
         for t in model.targets}
    out = {}
    for name, member in model.impl.members:
        uncal = member.predict(feats)
        lo, hi = head_quantiles(model.impl.settings, name)
        raw = apply_calibration(uncal, calibrate(model.targets, y, uncal, cal, hi - lo))
        res, pred, rare = {}, {}, {}
        for t in model.targets:
            if t.name not in raw:
                continue
            r = raw[t.name][test]
            if t.kind == "classification":
                true = [sub_names[t.name][i] for i in test]
                res[t.name] = classification_metrics(y[t.name][test], r, true, t.classes)
                pred[t.name] = np.asarray(t.classes, dtype=object)[r.argmax(axis=1)]
                counts = Counter(v for v in names[t.name] if v is not None)
                rare[t.name] = rare_class_recall(true, pred[t.name].tolist(), counts, rare_n)
            else:
                res[t.name] = regression_metrics(y[t.name][test], r[:, 0], r[:, 1], r[:, 2])
                res[t.name].update(coverage_resplit(y[t.name], uncal[t.name], cal, test, hi - lo))
                if len(cal) == 0:  # calibrated out of fold: only the blend's own interval was, not a member's
                    for k in ("interval_coverage", "interval_median_width"):
                        res[t.name].pop(k, None)
        out[name] = {"metrics": res, "predicted": pred, "rare_recall": rare}
    regs = [t for t in model.targets if t.kind == "regression"]
    if regs:  # the blend itself: the same re-partitions of its own uncalibrated interval
        lo, hi = head_quantiles(model.impl.settings, "blend")
        uncal = model.impl.predict(feats)
        out["__blend__"] = {t.name: coverage_resplit(y[t.name], uncal[t.name], cal, test, hi - lo) for t in regs if t.name in uncal}
    return out


def run_catalog(wh, settings: Settings, targets: list[str], configs: dict[str, list[str]], heads: list[str],
                variants: list[str] = ("plain",), args=None) -> tuple[dict, dict]:
    """{config[-variant]-head: {target: test metrics}}, timings, and extras (rare recall, subsets).

    The registered model of a benchmark run is its evaluation fit (train.refit_all off), so that it can
    be scored again on subsets of the test rows; label folds are off (they judge labels, not quality).
    """
    results: dict[str, dict] = {}
    timings: dict[str, float] = {}
    extras: dict[str, dict] = {"rare_recall": {}, "models": {}}
    first_model = None
    for cname, feats in configs.items():
        for variant in variants:
            suffix, update = variant_settings(settings, variant, args)
            s = settings.model_copy(deep=True)
            s.train = s.train.model_copy(update={"features": feats, "refit_all": False, "label_folds": 0, **update})
            for h in heads:
                key = f"{cname}{suffix}-{h}"
                t0 = time.perf_counter()
                with writer_lock(wh, timeout=-1):
                    models = train(wh, s, head=h, targets=targets, progress=True)
                timings[key] = time.perf_counter() - t0
                m = models[0]
                first_model = first_model or m.model_id
                extras["models"][key] = m.model_id
                results[key] = {t: v["test"] for t, v in m.metrics["targets"].items()}
                extras["rare_recall"][key] = {t: v.get("rare_recall") for t, v in m.metrics["targets"].items()}
                print(f"== {key}: {timings[key]:.0f}s", flush=True)
                if h == "blend":  # each member as a head alone: the same fit, scored the same way
                    members = member_results(wh, m.model_id, s.train.rare_classes_reported)
                    for t, spread in members.pop("__blend__", {}).items():
                        results[key].setdefault(t, {}).update(spread)
                    for member, mr in members.items():
                        mkey = f"{cname}{suffix}-{member}"
                        if mkey in results:
                            mkey += " (blend member)"
                        results[mkey] = mr["metrics"]
                        extras["rare_recall"][mkey] = mr["rare_recall"]
                        extras.setdefault("member_pred", {})[mkey] = mr["predicted"]
                        extras.setdefault("members_of", {})[mkey] = key
    t0 = time.perf_counter()
    base_pred: dict = {}
    results["tfidf-linear"] = tfidf_baseline(wh, first_model, base_pred)
    timings["tfidf-linear"] = time.perf_counter() - t0
    for k in [k for k in base_pred if k.startswith("price+")]:
        results[f"tfidf+{k[6:]}-ridge"] = {"price": base_pred.pop(k)}
    if "base_colour" in targets:
        mask = new_title_rows(wh, first_model)
        sub = {key: subset_metrics(wh, mid, "base_colour", mask) for key, mid in extras["models"].items()}
        for key, pred in extras.get("member_pred", {}).items():
            sub[key] = subset_metrics(wh, first_model, "base_colour", mask, pred["base_colour"])
        sub["tfidf-linear"] = subset_metrics(wh, first_model, "base_colour", mask, base_pred["base_colour"])
        extras["new_titles"] = {"rows": int(mask.sum()), "metrics": sub}
    return results, timings, extras


def results_from_registry(wh, settings: Settings, targets: list[str], configs: dict[str, list[str]], heads: list[str]) -> tuple[dict, dict]:
    """The results of an earlier run, from the newest registered model of each configuration and head.

    Training every configuration on the whole catalog is the long part of a run; this re-renders
    its report (for a changed report layout) without training again. Only the TF-IDF baseline is
    refitted, on the same split.
    """
    from features.identity import encoder_id
    from heads.registry import list_models

    models = list_models(wh)  # newest first
    results: dict[str, dict] = {}
    first_model = None
    for cname, feats in configs.items():
        ids = sorted(encoder_id(settings.encoders[n]) for n in feats)
        for h in heads:
            m = next((m for m in models if m["head"] == h and sorted(m["encoder_ids"]) == ids and set(targets) <= set(m["targets"])), None)
            if m is None:
                raise SystemExit(f"no {h} model on the {cname} features in {wh.root}: run once without --report-only")
            first_model = first_model or m["model_id"]
            results[f"{cname}-{h}"] = {t: v["test"] for t, v in m["metrics"]["targets"].items()}
            print(f"== {cname}-{h}: {m['model_id']} (trained {m['trained_at']:%Y-%m-%d %H:%M})", flush=True)
    t0 = time.perf_counter()
    results["tfidf-linear"] = tfidf_baseline(wh, first_model)
    return results, {"tfidf-linear": time.perf_counter() - t0}


def _cell(v) -> str:
    if v is None:
        return "–"
    return f"{v:.3f}" if abs(v) < 1000 else f"{v:,.0f}"


REBUILT = ("Heads not trained by this command: `--report-only` took the newest registered model of each "
           "configuration in `--work`, trained by the same command without it; its training times are in that "
           "run's output.")


def _provenance(prep: dict | None) -> list[str]:
    """The lines under a catalog's training times: its ingest and encode, or that nothing was trained."""
    if prep is None:
        return ["", REBUILT, ""]
    return [f"(ingest {prep['ingest_s']:.0f}s, encode {prep['encode_s']:.0f}s for {prep['rows']} rows)", ""]


def _acc(m: dict | None) -> str:
    if m is None:
        return "–"
    return f"{m['accuracy']:.4f} ({round((1 - m['accuracy']) * m['n'])} of {m['n']} wrong)"


def _is_today(c: str) -> bool:
    """Today's head: the plain MLP (no balanced variant), on any feature set."""
    return c.endswith("-mlp") and "balanced" not in c


def _goal_lines(res: dict, cols: list[str]) -> list[str]:
    """Per target: macro-F1 over true classes of the best model vs TF-IDF, accuracy vs today's plain MLP;
    then, per model, on how many targets that one model meets both at once (the goal of one current model)."""
    lines = ["Goal check per target (test split): the best model's macro-F1 over the true classes (`macro_f1_true`) "
             "at least the TF-IDF baseline's, with accuracy no lower than today's plain MLP head of this run:", ""]
    plain_acc = {}
    for t in FASHION_TARGETS:
        base = res.get("tfidf-linear", {}).get(t)
        plain = [res[c][t] for c in cols if _is_today(c) and t in res[c]]
        cands = [(c, res[c][t]) for c in cols if not c.startswith("tfidf") and t in res[c]]
        if not base or not cands:
            continue
        name, best = max(cands, key=lambda cm: cm[1].get("macro_f1_true", 0))
        acc_today = plain_acc[t] = max((m["accuracy"] for m in plain), default=None)
        f1_ok = best.get("macro_f1_true", 0) >= base.get("macro_f1_true", 1)
        acc_ok = acc_today is None or best["accuracy"] >= acc_today
        lines.append(f"- {t}: {name} macro-F1 (true) {best.get('macro_f1_true', 0):.4f} vs TF-IDF "
                     f"{base.get('macro_f1_true', 0):.4f}; accuracy {_acc(best)} vs plain "
                     f"{'–' if acc_today is None else f'{acc_today:.4f}'} → "
                     f"{'met' if f1_ok and acc_ok else 'NOT met'}"
                     + ("" if f1_ok else " (macro-F1 below baseline)") + ("" if acc_ok else " (accuracy below plain)"))
    lines += ["", "Per model: targets on which that one model meets both (macro-F1 true ≥ TF-IDF and accuracy ≥ "
              "today's plain MLP):", ""]
    for c in cols:
        if c.startswith("tfidf") or _is_today(c):
            continue
        met, missed = [], []
        for t in FASHION_TARGETS:
            m, base = res[c].get(t), res.get("tfidf-linear", {}).get(t)
            if not m or not base:
                continue
            ok = (m.get("macro_f1_true", 0) >= base.get("macro_f1_true", 1)
                  and (plain_acc.get(t) is None or m["accuracy"] >= plain_acc[t]))
            (met if ok else missed).append(t)
        lines.append(f"- {c}: {len(met)} of {len(met) + len(missed)}" + (f" (not: {', '.join(missed)})" if missed else ""))
    return lines + [""]


def _price_goal_lines(res: dict, ceiling: list | None) -> list[str]:
    """Each head's test R² on log price against the ridge with brand and gender and the best ceiling probe."""
    ridge = next((r["price"]["r2_log"] for c, r in res.items() if c.startswith("tfidf+") and "price" in r), None)
    best = max(ceiling, key=lambda r: r[1]) if ceiling else None
    if ridge is None and best is None:
        return []
    lines = ["Goal check (test split): R² on log price at least the ridge on title TF-IDF + one-hot brand and gender"
             + (f" ({ridge:.4f})" if ridge is not None else "")
             + (f" and the best probe of `benchmarks/price_ceiling.py` on this split ({best[1]:.4f}: {best[0]})" if best else "")
             + ":", ""]
    for c, r in res.items():
        if c.startswith("tfidf") or "price" not in r:
            continue
        v = r["price"]["r2_log"]
        ok = (ridge is None or v >= ridge) and (best is None or v >= best[1])
        lines.append(f"- {c}: {v:.4f} → {'met' if ok else 'NOT met'}")
    if ceiling:
        lines += ["", "Probes of `benchmarks/price_ceiling.py` on the same train / val / test rows (tuned on val):", "",
                  "| probe | R² log price (test) |", "|---|---|"] + [f"| {n} | {v:.3f} |" for n, v, _ in ceiling]
    return lines + [""]


def _rare_lines(extras: dict, target: str = "article_type") -> list[str]:
    rec = {k: v.get(target) for k, v in extras.get("rare_recall", {}).items() if v.get(target)}
    if not rec:
        return []
    keys = list(rec)
    first = rec[keys[0]]
    lines = [f"### Fashion — recall of the 20 rarest {target} classes (test rows, by their own name)", "",
             "| class | catalog rows | test rows | " + " | ".join(keys) + " |", "|---|---|---|" + "---|" * len(keys)]
    by = {k: {r["class"]: r["recall"] for r in v} for k, v in rec.items()}
    for r in first:
        lines.append(f"| {r['class']} | {r['catalog_rows']} | {r['test_rows']} | "
                     + " | ".join(_cell(by[k].get(r["class"])) for k in keys) + " |")
    return lines + [""]


def _colour_lines(extras: dict, res: dict) -> list[str]:
    nt = extras.get("new_titles")
    if not nt:
        return []
    lines = ["### Fashion — base_colour with and without the photo's colour histogram", "",
             f"All test rows, and the {nt['rows']} test rows whose title no training row has:", "",
             "| model | accuracy | macro_f1_true | accuracy (new titles) | macro_f1_true (new titles) |",
             "|---|---|---|---|---|"]
    for k, m in nt["metrics"].items():
        a = res.get(k, {}).get("base_colour", {})
        lines.append(f"| {k} | {_cell(a.get('accuracy'))} | {_cell(a.get('macro_f1_true'))} | "
                     f"{_cell(m.get('accuracy'))} | {_cell(m.get('macro_f1_true'))} |")
    return lines + [""]


def markdown(fashion: dict | None, myntra: dict | None, meta: dict) -> str:
    lines = [stamp(meta["command"]),
             f"- sample: {meta['sample']}",
             f"- split: stratified train/val/test (70/10/20, seed {meta['seed']}; {meta['calibration']}), shared by every row; "
             "val only for early stopping; numbers are on **test**, from the evaluation fit (the registered model "
             "of a benchmark run is that fit: train.refit_all off).",
             f"- encoders: {meta['encoders']};"
             " baseline: title TF-IDF (1–2-grams) + logistic regression (ridge for log price).",
             "- `*_true`: against the rows' own labels (a class merged into `__other__` keeps its name, `__other__` "
             "predicted for it is a miss); macro-F1 over the classes the test rows have. `-balanced`: "
             f"{meta.get('balanced', '')}.", ""]
    if fashion:
        res, tim, extras = fashion["results"], fashion["timings"], fashion.get("extras", {})
        cols = list(res)
        for metric in CLS_METRICS:
            lines += [f"### Fashion — {metric}", "", "| target | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
            for t in FASHION_TARGETS:
                if not any(t in res[c] for c in cols):
                    continue
                vals = [res[c].get(t, {}).get(metric) for c in cols]
                best = max((v for v in vals if v is not None), default=None)
                lines.append(f"| {t} | " + " | ".join(("**" + _cell(v) + "**") if v == best and v is not None else _cell(v) for v in vals) + " |")
            lines.append("")
        lines += _goal_lines(res, cols)
        lines += _rare_lines(extras)
        lines += _colour_lines(extras, res)
        lines += ["Training seconds (evaluation fit; a refit on every label costs about as much again): "
                  + ", ".join(f"{k} {v:.0f}" for k, v in tim.items())]
        lines += _provenance(fashion["prep"])
    if myntra:
        res, tim = myntra["results"], myntra["timings"]
        lines += ["### Myntra — price (trained on log price, MAE and interval width in INR; 10–90% interval)", "",
                  "| model | " + " | ".join(REG_METRICS) + " |", "|---|" + "---|" * len(REG_METRICS)]
        for c, r in res.items():
            m = r.get("price", {})
            lines.append(f"| {c} | " + " | ".join(_cell(m.get(k)) for k in REG_METRICS) + " |")
        lines += ["", f"`coverage_resplit_*`: the same fitted models, their intervals calibrated and scored on {RESPLITS} "
                  "random re-partitions of the calibration and test rows (same sizes): the mean is what the calibration "
                  "method gives, the sd is how far one split's `interval_coverage` moves by the luck of its calibration draw."]
        lines += [""] + _price_goal_lines(res, myntra.get("ceiling"))
        lines += ["Training seconds (evaluation fit): " + ", ".join(f"{k} {v:.0f}" for k, v in tim.items())]
        lines += _provenance(myntra["prep"])
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, default=None,
                    help="the config whose encoders and heads are measured (default: configs/demo.yaml)")
    ap.add_argument("--limit", type=int, default=None, help="sample N Fashion products (default: all)")
    ap.add_argument("--myntra-limit", type=int, default=None, help="sample N Myntra products (default: all)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/vitrine-quality"), help="scratch folder (warehouses)")
    ap.add_argument("--heads", nargs="+", default=["lightgbm", "mlp"], choices=list(HEADS),
                    help="heads trained on every configuration (blend: train.blend.members mixed on validation)")
    ap.add_argument("--blend-members", nargs="+", default=None, choices=[h for h in HEADS if h != "blend"],
                    help="members of the blend head (default: the config's train.blend.members)")
    ap.add_argument("--blend-prior-tau", nargs="+", type=float, default=None,
                    help="candidates of the blend's post-hoc logit adjustment (default: the config's train.blend.prior_tau)")
    ap.add_argument("--linear-features", nargs="+", default=None,
                    help="blocks the linear head (and blend member) reads (default: the config's train.linear.features)")
    ap.add_argument("--knn-k", nargs="+", type=int, default=None, help="k candidates of the knn head (default: the config's)")
    ap.add_argument("--slot-ngrams", action="store_true",
                    help="the config's title_words and title_chars stored as n-gram slots over 2**20 slots "
                         f"({SLOT_NGRAMS['title_words']}, {SLOT_NGRAMS['title_chars']}) instead of 4,096 dense slots")
    ap.add_argument("--wide-chars", action="store_true",
                    help="Myntra: add title character 2-5-grams hashed into 16,384 slots (config text+columns+wide; "
                         "the neighbours of the knn head are found on them)")
    ap.add_argument("--myntra-configs", nargs="+", default=None, choices=["text", "text+columns", "text+columns+wide"],
                    help="Myntra feature sets to train (default: text, and text+columns with --columns)")
    ap.add_argument("--ceiling", action="store_true",
                    help="Myntra: also fit the probes of benchmarks/price_ceiling.py on the same split, for the goal check")
    ap.add_argument("--skip", nargs="*", default=[], choices=["fashion", "myntra"])
    ap.add_argument("--fresh", action="store_true", help="delete the scratch warehouses first")
    ap.add_argument("--report-only", action="store_true",
                    help="train nothing: rebuild the report from the newest models of each configuration in --work")
    ap.add_argument("--write", action="store_true", help="write the results into BENCHMARKS.md (section Quality)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--configs", nargs="+", default=None,
                    help="Fashion feature sets: text, image, fusion, and with --colour text+colour, fusion+colour")
    ap.add_argument("--features", nargs="+", default=None, help="fusion = these encoders (default: the config's)")
    ap.add_argument("--colour", action="store_true", help="add the photo colour histogram encoder (configs *+colour)")
    ap.add_argument("--columns", action="store_true", help="Myntra: add brand, gender, colour, photos as columns features")
    ap.add_argument("--variants", nargs="+", default=["plain"], choices=["plain", "balanced"])
    ap.add_argument("--tau", type=float, default=1.0, help="logit adjustment of the balanced variant")
    ap.add_argument("--balanced-min-class-count", type=int, default=2)
    ap.add_argument("--mlp-ensemble", type=int, default=None, help="MLP nets per model (default: the config's)")
    ap.add_argument("--calibration-folds", type=int, default=None,
                    help="calibrate the price interval on this many out-of-fold fits (default: the config's)")
    ap.add_argument("--section", default="Quality", help="BENCHMARKS.md section to write")
    ap.add_argument("--from-warehouse", type=Path, default=None,
                    help="copy this already ingested Fashion warehouse instead of ingesting (encodes what it lacks)")
    ap.add_argument("--lgb-threads", type=int, default=1,
                    help="LightGBM threads (OpenMP with 2 threads on 2 busy cores was measured 5-30x slower)")
    args = ap.parse_args(argv)
    if args.fresh and args.report_only:
        ap.error("--fresh deletes the models --report-only reads")
    if args.fresh and args.work.exists():
        shutil.rmtree(args.work)
    args.work.mkdir(parents=True, exist_ok=True)
    settings = load_settings(args.config) if args.config else demo_settings()
    if args.slot_ngrams:
        for name, model in SLOT_NGRAMS.items():
            settings.encoders[name] = settings.encoders[name].model_copy(update={"model": model})
    settings.train.seed = args.seed
    settings.train.lightgbm.num_threads = args.lgb_threads
    if args.mlp_ensemble:
        settings.train.mlp.ensemble = args.mlp_ensemble
    if args.calibration_folds is not None:
        settings.train.calibration_folds = args.calibration_folds
    if args.blend_members:
        settings.train.blend.members = list(args.blend_members)
    if args.blend_prior_tau:
        settings.train.blend.prior_tau = list(args.blend_prior_tau)
    if args.features:
        settings.train.features = list(args.features)
    if args.linear_features:
        settings.train.linear.features = list(args.linear_features)
    if args.knn_k:
        settings.train.knn.k = list(args.knn_k)
    if args.colour:
        settings.encoders["colour"] = EncoderSpec(**COLOUR)
    fashion = myntra = None
    if "fashion" not in args.skip:
        wh_path = args.work / "wh-fashion"
        if args.from_warehouse and not wh_path.exists():
            shutil.copytree(args.from_warehouse, wh_path, ignore=shutil.ignore_patterns("_locks"))
        wh = open_warehouse(wh_path)
        configs = modality_configs(settings)
        if args.colour:
            configs.update({k + "+colour": v + ["colour"] for k, v in list(configs.items()) if k in ("text", "fusion")})
        if args.configs:
            configs = {k: configs[k] for k in args.configs}
        names = list(dict.fromkeys(n for v in configs.values() for n in v))
        extras = {}
        if args.report_only:
            prep, (res, tim) = None, results_from_registry(wh, settings, FASHION_TARGETS, configs, args.heads)
        elif args.from_warehouse:
            t0 = time.perf_counter()
            from features.encode import encode

            with writer_lock(wh, timeout=-1):
                reports = encode(wh, settings.encoders, settings.encode, names=names, progress=False)
            print("encode " + ", ".join(f"{r.name}={r.encoded}" for r in reports), flush=True)
            prep = {"ingest_s": 0.0, "encode_s": time.perf_counter() - t0, "rows": read_products(wh, columns=["product_id"]).num_rows}
            res, tim, extras = run_catalog(wh, settings, FASHION_TARGETS, configs, args.heads, args.variants, args)
        else:
            prep = prepare(wh, settings, sample_fashion(args.limit, args.work, args.seed), names)
            res, tim, extras = run_catalog(wh, settings, FASHION_TARGETS, configs, args.heads, args.variants, args)
        fashion = {"results": res, "timings": tim, "prep": prep, "extras": extras}
    if "myntra" not in args.skip:
        wh = open_warehouse(args.work / "wh-myntra")
        text = modality_configs(settings)["text"]
        configs = {"text": text}
        if args.columns:
            settings.encoders["columns"] = EncoderSpec(**MYNTRA_COLUMNS)
        if "columns" in settings.encoders:  # --columns, or the config's own (configs/price.yaml)
            configs["text+columns"] = text + ["columns"]
            if args.wide_chars:
                settings.encoders["title_chars_wide"] = EncoderSpec(**WIDE_CHARS)
                settings.train.knn.features = ["title_chars_wide"]
                configs["text+columns+wide"] = text + ["columns", "title_chars_wide"]
        if args.myntra_configs:
            configs = {k: configs[k] for k in args.myntra_configs}
        names = list(dict.fromkeys(n for v in configs.values() for n in v))
        if args.report_only:
            prep, (res, tim) = None, results_from_registry(wh, settings, ["price"], configs, args.heads)
        else:
            prep = prepare(wh, settings, sample_myntra(args.myntra_limit, args.work, args.seed), names)
            res, tim, _ = run_catalog(wh, settings, ["price"], configs, args.heads, args.variants, args)
        myntra = {"results": res, "timings": tim, "prep": prep}
        if args.ceiling:
            import price_ceiling

            titles, cats, y, masks, _ = price_ceiling.load(args.work)
            myntra["ceiling"] = [(n, float(v), sec) for n, v, sec in price_ceiling.probes(titles, cats, y, masks, args.lgb_threads)]
    meta = {
        "command": command_line(__file__, argv, "HF_HOME=$PWD/.hf-cache HF_HUB_OFFLINE=1 "),
        "encoders": ", ".join(f"{n} `{e.family} {e.model}`" for n, e in settings.encoders.items()),
        "seed": args.seed,
        "sample": f"Fashion {args.limit or 'all'} products, Myntra {args.myntra_limit or 'all'} products (random, seed {args.seed})",
        "calibration": (f"a price interval is calibrated on the out-of-fold outputs of {settings.train.calibration_folds} "
                        "extra fits over the training rows, no calibration split"
                        if settings.train.calibration_folds >= 2 else
                        "with a price target 10 points of train calibrate its interval"),
        "balanced": f"MLP with logit-adjusted cross-entropy (tau {args.tau}) and min_class_count {args.balanced_min_class_count}",
    }
    md = markdown(fashion, myntra, meta)
    print(md)
    (args.work / "quality.md").write_text(md)
    if args.write:
        write_section(args.section, md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
