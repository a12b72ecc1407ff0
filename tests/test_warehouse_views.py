"""The analyst views over hand-written predictions: latest per product, reclassification rules."""
from __future__ import annotations

from datetime import timedelta

import pyarrow as pa

from catalogs import fashion_rows, write_fashion
from warehouse import open_warehouse, schemas
from warehouse.ingest import ingest
from warehouse.tables import now_utc, replace_models, write_predictions
from warehouse.views import connect


def model_row(model_id: str, current: bool) -> dict:
    return {"model_id": model_id, "head": "mlp", "target_set": "article_type", "targets": ["article_type"], "encoder_ids": ["x"],
            "metrics": "{}", "training_rows": 1, "training_latest_updated_at": None, "artifact_path": "", "trained_at": now_utc(), "is_current": current}


def preds(run_id: str, model_id: str, rows: list[tuple[str, str, float]], at) -> pa.Table:
    n = len(rows)
    return pa.table({
        "run_id": [run_id] * n, "model_id": [model_id] * n, "scored_at": [at] * n,
        "product_id": [r[0] for r in rows], "content_hash": ["h"] * n, "target": ["article_type"] * n,
        "label": [r[1] for r in rows], "confidence": [r[2] for r in rows],
        "top_k": [[{"label": r[1], "probability": r[2]}] for r in rows],
        "value": [None] * n, "lower": [None] * n, "upper": [None] * n,
    }, schema=schemas.PREDICTIONS)


def test_latest_predictions_and_reclassification_candidates(tmp_path):
    wh = open_warehouse(tmp_path / "wh")
    ingest(wh, write_fashion(tmp_path / "cat", fashion_rows(6)))  # 1000 Tshirts, 1001 Casual Shoes, 1002 Handbags, ...
    replace_models(wh, pa.Table.from_pylist([model_row("old", False), model_row("new", True)], schema=schemas.MODELS))
    t0 = now_utc()
    write_predictions(wh, "r-old", preds("r-old", "old", [("1000", "Handbags", 0.99)], t0))
    write_predictions(wh, "r1", preds("r1", "new", [("1000", "Shirts", 0.95), ("1001", "Casual Shoes", 0.99), ("1002", "__other__", 0.99), ("1003", "Shirts", 0.5)], t0))
    write_predictions(wh, "r2", preds("r2", "new", [("1000", "Tshirts", 0.97)], t0 + timedelta(seconds=1)))
    con = connect(wh, reclass_threshold=0.8)
    latest = dict(con.execute("SELECT product_id, label FROM latest_predictions").fetchall())
    assert latest == {"1000": "Tshirts", "1001": "Casual Shoes", "1002": "__other__", "1003": "Shirts"}
    # 1000 now agrees (newest run), 1001 agrees, 1002 suggests no concrete class, 1003 is not confident
    assert con.execute("SELECT count(*) FROM reclassification_candidates").fetchone()[0] == 0
    low = connect(wh, reclass_threshold=0.4)
    rows = low.execute("SELECT product_id, seller_label, suggested_label FROM reclassification_candidates").fetchall()
    assert rows == [("1003", "Tshirts", "Shirts")]
