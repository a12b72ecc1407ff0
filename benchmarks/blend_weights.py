"""Would blend weights picked on validation macro-F1, instead of log-loss, lift the rare classes?

The blend (heads.blend_head) picks its member weights per target by validation log-loss, which
rewards the class prior: on gender it gives the MLP member 0.95–1.00 of the weight, and the MLP
misses Boys and Girls titles the TF-IDF baseline gets. This picks, from the same members' outputs
on the same validation rows, the weights and prior tau of the blend's grids with the best
validation macro-F1 at validation accuracy no lower than the shipped choice's, and scores both
choices once on the test rows, against the TF-IDF baseline of `benchmarks/quality.py`. Nothing is
refitted: the members are the registered model's own.

    python benchmarks/quality.py --skip myntra --configs fusion --heads blend --work /tmp/vqf
    python benchmarks/blend_weights.py --work /tmp/vqf [/tmp/vqf-1 ...] --write

A benchmark, not a blend option: it ships only if it helps on unseen rows.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402
from sklearn.metrics import f1_score  # noqa: E402

from heads.blend_head import adjust, mix, simplex_grid  # noqa: E402
from heads.features import read_features  # noqa: E402
from heads.targets import encode_labels, label_strings  # noqa: E402
from class_gap import fashion_run, macro_f1_true  # noqa: E402
from report import command_line, publish, stamp, table  # noqa: E402


def by_macro_f1(y: np.ndarray, outputs: list[np.ndarray], log_prior: np.ndarray, taus: list[float], step: float,
                min_accuracy: float) -> tuple[np.ndarray, float]:
    """The (weights, tau) of the blend's grids with the best macro-F1 on (y, outputs) among those
    whose accuracy is at least `min_accuracy` (ties: the first found)."""
    best = None
    for w in simplex_grid(len(outputs), step):
        p = mix(outputs, w)
        for tau in sorted(set([0.0, *taus])):
            pred = adjust(p, log_prior, tau).argmax(axis=1)
            if np.mean(pred == y) < min_accuracy:
                continue
            f = float(f1_score(y, pred, average="macro"))
            if best is None or f > best[0] + 1e-12:
                best = (f, w, tau)
    return best[1], best[2]


def weights_text(names: list[str], w: np.ndarray, tau: float) -> str:
    return " ".join(f"{n} {x:.2f}" for n, x in zip(names, w)) + f", tau {tau}"


def run_rows(work: Path) -> tuple[str, list[tuple[str, str, str, float, float, float, float, float]]]:
    """Per classification target of one quality run: both choices' weights and their test
    macro-F1 over the true classes and accuracy, and TF-IDF's test macro-F1."""
    wh, model, products, part, base = fashion_run(work)
    blend = model.impl
    bs = blend.settings.blend
    sub = {k: products.take(np.flatnonzero(part == k)) for k in ("val", "test")}
    feats = {k: read_features(wh, t, model.blocks) for k, t in sub.items()}
    outs = {k: [m.predict(f) for _, m in blend.members] for k, f in feats.items()}
    rows = []
    for spec in model.targets:
        if spec.kind != "classification" or spec.name not in base or spec.name not in blend.weights:
            continue
        have = [i for i, o in enumerate(outs["val"]) if spec.name in o]
        yv = encode_labels(label_strings(sub["val"][spec.name]), spec)
        keep = yv >= 0
        ov = [outs["val"][i][spec.name][keep] for i in have]
        ot = [outs["test"][i][spec.name] for i in have]
        lp = blend.log_prior.get(spec.name, np.zeros(len(spec.classes)))
        w0, tau0 = np.asarray(blend.weights[spec.name])[have], blend.tau.get(spec.name, 0.0)  # as the model holds them
        acc0 = float(np.mean(adjust(mix(ov, w0), lp, tau0).argmax(axis=1) == yv[keep]))
        w1, tau1 = by_macro_f1(yv[keep], ov, lp, bs.prior_tau, bs.step, acc0)
        true = np.asarray(label_strings(sub["test"][spec.name]), dtype=object)
        ok = np.array([t is not None for t in true])
        true = true[ok].astype(str)
        classes = np.asarray(spec.classes, dtype=object)
        scored = []
        for w, tau in ((w0, tau0), (w1, tau1)):
            pred = classes[adjust(mix(ot, w), lp, tau).argmax(axis=1)][ok].astype(str)
            scored.append((macro_f1_true(true, pred), float(np.mean(pred == true))))
        tfidf = macro_f1_true(true, np.asarray(base[spec.name], dtype=object)[ok].astype(str))
        names = [blend.members[i][0] for i in have]
        rows.append((spec.name, weights_text(names, w0, tau0), weights_text(names, w1, tau1),
                     scored[0][0], scored[1][0], scored[0][1], scored[1][1], tfidf))
        print(work.name, *rows[-1], flush=True)
    return work.name, rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, nargs="+", default=[Path("/tmp/vitrine-quality")],
                    help="scratch folders of Fashion quality runs with a blend model (one per split seed)")
    ap.add_argument("--write", action="store_true", help="write into BENCHMARKS.md")
    ap.add_argument("--section", default="Quality: blend weights picked on validation macro-F1")
    args = ap.parse_args(argv)
    runs = [run_rows(w) for w in args.work]
    lines = [stamp(command_line(__file__, argv)),
             "Per quality run (split seed) and target: the blend's member weights and prior tau as shipped (best validation "
             "log-loss, then tau by validation macro-F1) against those with the best validation macro-F1 at validation "
             "accuracy no lower, from the same members; test macro-F1 over the true classes and test accuracy of each, and "
             "TF-IDF's test macro-F1.", ""]
    targets = list(dict.fromkeys(r[0] for _, rows in runs for r in rows))
    lines += table(["target", "run", "weights: log-loss", "weights: macro-F1", "test macro-F1: log-loss → macro-F1",
                    "test accuracy: log-loss → macro-F1", "TF-IDF test macro-F1"],
                   [(t, name, w0, w1, f"{f0:.4f} → {f1:.4f}", f"{a0:.4f} → {a1:.4f}", fb)
                    for target in targets for name, rows in runs
                    for t, w0, w1, f0, f1, a0, a1, fb in rows if t == target],
                   ["{}"] * 6 + ["{:.4f}"])
    summary = []
    for target in targets:
        have = [r for _, rows in runs for r in rows if r[0] == target]
        f0s, f1s, fbs = (np.array([r[k] for r in have]) for k in (3, 4, 7))
        summary.append(f"- {target}: test macro-F1 higher with macro-F1 weights on {int(np.sum(f1s > f0s))} of {len(have)} runs "
                       f"(mean {f0s.mean():.4f} → {f1s.mean():.4f}); at or above TF-IDF on {int(np.sum(f0s >= fbs))} → "
                       f"{int(np.sum(f1s >= fbs))} of {len(have)}")
    publish(lines + [""] + summary, args.section, args.write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
