"""`vitrine evaluate MODEL_ID`: the model's markdown report.

Training already evaluated on the stored test split and saved report.md next to the model;
with `recompute=True` the saved model is reloaded, predicts its stored test products again from
the store (current labels and vectors) and the report is rewritten.
"""
from __future__ import annotations

from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

from heads.features import read_features
from heads.metrics import classification_metrics, regression_metrics
from heads.predict import load_model
from heads.registry import get_model
from heads.targets import encode_labels, label_strings, log_values
from warehouse.layout import Warehouse
from warehouse.tables import read_products


def report_path(wh: Warehouse, model_id: str) -> Path:
    return Path(get_model(wh, model_id)["artifact_path"]) / "report.md"


def recompute_test_metrics(wh: Warehouse, model_id: str) -> dict:
    """Test metrics of the saved model on its stored test products, from today's labels and vectors."""
    model = load_model(wh, model_id)
    split = pq.read_table(model.directory / model.spec["split"]["file"])
    test_ids = split.filter(pc.equal(split["split"], "test"))["product_id"]
    products = read_products(wh)
    products = products.filter(pc.is_in(products["product_id"], value_set=test_ids))
    feats = read_features(wh, products, model.blocks)
    raw = model.predict_features(feats)
    out = {}
    for s in model.targets:
        if s.name not in products.column_names or s.name not in raw:
            continue
        r = raw[s.name]
        if s.kind == "classification":
            out[s.name] = classification_metrics(encode_labels(label_strings(products[s.name]), s), r)
        else:
            out[s.name] = regression_metrics(log_values(products[s.name]), r[:, 0], r[:, 1], r[:, 2])
    return out


def evaluate(wh: Warehouse, model_id: str, recompute: bool = False) -> str:
    """The markdown report text (saved at training; `recompute` appends today's test metrics)."""
    path = report_path(wh, model_id)
    text = path.read_text() if path.exists() else f"# Model `{model_id}`\n\n(no saved report)\n"
    if recompute:
        m = recompute_test_metrics(wh, model_id)
        fits = load_model(wh, model_id).spec.get("fits") or {}
        lines = ["", "## Test metrics recomputed from the current warehouse", ""]
        if fits and fits.get("registered", {}).get("same_as") != "evaluation":
            lines += ["The registered model was refitted on these test rows too: the figures below are in-sample "
                      "(a check of the stored vectors and labels, not of quality).", ""]
        for t, mm in m.items():
            lines.append(f"- {t}: " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in mm.items()))
        text = text.rstrip("\n") + "\n" + "\n".join(lines) + "\n"
    return text
