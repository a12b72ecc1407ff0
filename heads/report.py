"""The markdown report written next to a model: what it saw, how it split, how well it does."""
from __future__ import annotations

from collections.abc import Mapping


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 1e5 else f"{v:,.0f}"
    return str(v)


CLS_COLS = ["n", "accuracy", "macro_f1", "weighted_f1", "top3_accuracy", "accuracy_true", "macro_f1_true"]
REG_COLS = ["n", "r2_log", "r2", "mae", "mape", "interval_coverage", "interval_median_width"]


def _fit_lines(spec: Mapping) -> list[str]:
    """Which fit the figures come from, which one is saved, and how the interval was calibrated."""
    fits = spec.get("fits") or {}
    out = []
    ev, reg = fits.get("evaluation"), fits.get("registered") or {}
    if ev:
        out.append(f"- figures below: the **evaluation fit** ({ev['rows']} train rows, {ev['seconds']} s); "
                   "they are the only honest ones, since the registered model may have seen the test rows.")
    if reg.get("same_as") == "evaluation":
        out.append("- registered model: the evaluation fit itself (train.refit_all off).")
    elif reg:
        out.append(f"- registered model: refitted on every labelled row but validation ({reg['rows']} rows, "
                   f"{reg['seconds']} s; {reg['early_stopping_rows']} validation rows kept for early stopping).")
    if spec.get("calibration"):
        cal = fits.get("calibration")
        where = (f"out-of-fold outputs of {cal['folds']} fits over the {cal['rows']} training rows of the evaluation "
                 f"fit, each fitted on the other folds ({cal['seconds']} s)" if cal else
                 "the calibration rows of the evaluation fit")
        out.append(f"- price interval: conformalised on {where} (log-space widening "
                   + ", ".join(f"{t} {q:+.4f}" for t, q in spec["calibration"].items())
                   + "), the same widening applied to the registered model.")
    return out


def render(spec: Mapping, metrics: Mapping, pngs: Mapping[str, str]) -> str:
    """Markdown of test metrics (validation in a second table), split, features and rare-class merges."""
    lines = [f"# Model `{spec['model_id']}`", ""]
    lines += [
        f"- head: **{spec['head']}**",
        f"- targets: {', '.join(t['name'] for t in spec['targets'])}",
        f"- trained at: {spec['trained_at']}",
        f"- training rows (products with ≥1 label): {spec['training_rows']}",
        "- labels corrected by reviewers (label_decisions) used in training: "
        + (", ".join(f"{t} {n}" for t, n in sorted(spec.get("corrected_labels", {}).items())) or "none"),
        f"- split (seed {spec['settings']['seed']}): " + ", ".join(f"{k} {v}" for k, v in spec["split"]["sizes"].items())
        + f"; stratified on {spec['split']['stratified_on'] or 'nothing (fallback: shuffled)'}",
        "- validation is used for early stopping and head choice only; the numbers below are on **test**.",
        *_fit_lines(spec),
        "- `accuracy_true`, `macro_f1_true`: against the rows' true labels, a rare class merged into `__other__` "
        "keeping its own name (so `__other__` predicted for it is a miss), macro-F1 over the classes those rows have.",
        "",
        "## Features",
        "",
        "| name | encoder id | dim | rows with a fresh vector |",
        "|---|---|---|---|",
    ]
    for b in spec["blocks"]:
        lines.append(f"| {b['name']} | `{b['encoder_id']}` | {b['dim']} | {spec['coverage'].get(b['encoder_id'], 0):.1%} |")
    lines.append("")
    cls = [t for t in spec["targets"] if t["kind"] == "classification"]
    reg = [t for t in spec["targets"] if t["kind"] == "regression"]
    for title, part in (("Test", "test"), ("Validation", "val")):
        if cls:
            lines += [f"## Classification — {title}", "", "| target | classes | " + " | ".join(CLS_COLS) + " |",
                      "|---|---|" + "---|" * len(CLS_COLS)]
            for t in cls:
                m = metrics["targets"].get(t["name"], {}).get(part, {})
                lines.append(f"| {t['name']} | {len(t['classes'])} | " + " | ".join(_fmt(m.get(c, "")) for c in CLS_COLS) + " |")
            lines.append("")
        if reg:
            lines += [f"## Regression — {title} (trained on log; MAE/width in original unit)", "",
                      "| target | " + " | ".join(REG_COLS) + " |", "|---|" + "---|" * len(REG_COLS)]
            for t in reg:
                m = metrics["targets"].get(t["name"], {}).get(part, {})
                lines.append(f"| {t['name']} | " + " | ".join(_fmt(m.get(c, "")) for c in REG_COLS) + " |")
            lines.append("")
    lines.append(f"Validation score (mean of accuracy / R² log over targets): {_fmt(metrics.get('val_score'))}")
    lines.append("")
    rare = [(t["name"], metrics["targets"].get(t["name"], {}).get("rare_recall")) for t in cls]
    rare = [(n, r) for n, r in rare if r]
    if rare:
        lines += ["## Rarest classes — test recall", "",
                  "The classes with the fewest labelled rows in the catalog that test rows have, by their own name "
                  "(a merged class predicted `__other__` is a miss).", ""]
        for name, rows in rare:
            lines += [f"### {name}", "", "| class | catalog rows | test rows | recall |", "|---|---|---|---|"]
            lines += [f"| {r['class']} | {r['catalog_rows']} | {r['test_rows']} | {r['recall']:.3f} |" for r in rows]
            lines.append("")
    merged = [t for t in cls if t.get("merged")]
    if merged:
        lines += ["## Rare classes", "", "Classes with fewer labelled rows than min_class_count "
                  f"({spec['settings']['min_class_count']}) were merged into `__other__`:", ""]
        for t in merged:
            shown = ", ".join(t["merged"][:30]) + (f", … ({len(t['merged'])} in all)" if len(t["merged"]) > 30 else "")
            lines.append(f"- {t['name']}: {shown}")
        lines.append("")
    if pngs:
        lines += ["## Confusion matrices (test)", ""]
        for t, p in pngs.items():
            lines += [f"### {t}", "", f"![{t}]({p})", ""]
    if spec.get("skipped"):
        lines += ["## Skipped targets", ""] + [f"- {m}" for m in spec["skipped"].values()] + [""]
    return "\n".join(lines)
