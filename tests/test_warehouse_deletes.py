"""Deleted products: a full snapshot deletes what it no longer lists, a delta never deletes."""
from __future__ import annotations

from datetime import datetime, timezone

import pyarrow as pa

from catalogs import fashion_rows, write_fashion
from warehouse import open_warehouse, schemas
from warehouse.ingest import ingest
from warehouse.tables import replace_models, write_predictions
from warehouse.views import connect

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def ids(wh, view: str) -> set[str]:
    return {r[0] for r in connect(wh).execute(f"SELECT DISTINCT product_id FROM {view}").fetchall()}


def scored(wh, product_ids) -> None:
    """A current model whose (deliberately wrong) article_type prediction makes every product a candidate."""
    replace_models(wh, pa.Table.from_pylist([{
        "model_id": "m", "head": "mlp", "target_set": "article_type", "targets": ["article_type"], "encoder_ids": ["e"],
        "metrics": "{}", "training_rows": 1, "training_latest_updated_at": T0, "artifact_path": "/nowhere",
        "trained_at": T0, "is_current": True}], schema=schemas.MODELS))
    rows = [{"run_id": "r", "model_id": "m", "scored_at": T0, "product_id": p, "content_hash": "h", "target": "article_type",
             "label": "Sarees", "confidence": 0.99, "top_k": [{"label": "Sarees", "probability": 0.99}],
             "value": None, "lower": None, "upper": None} for p in product_ids]
    write_predictions(wh, "r", pa.Table.from_pylist(rows, schema=schemas.PREDICTIONS))


def test_a_full_snapshot_deletes_only_the_products_it_no_longer_lists(tmp_path):
    wh = open_warehouse(tmp_path / "wh")
    rows = fashion_rows(10)
    src = write_fashion(tmp_path / "cat", rows)
    ingest(wh, src)
    every = ids(wh, "products")
    scored(wh, sorted(every))
    assert ids(wh, "reclassification_candidates") == every

    delta = write_fashion(tmp_path / "cat", rows[3:])  # a delta (the default): deletes nothing
    assert ingest(wh, delta).deleted == 0 and ids(wh, "products") == every

    # 1000 is gone; 1001's line is malformed (rejected), so it is still listed and is kept
    write_fashion(tmp_path / "cat", rows[2:], extra_lines=["1001,Men,Apparel"])
    s = ingest(wh, src, full_snapshot=True)
    assert (s.deleted, s.rejected) == (1, 1)
    assert ids(wh, "products") == every - {"1000"}
    assert ids(wh, "latest_predictions") == ids(wh, "reclassification_candidates") == every - {"1000"}
    con = connect(wh)
    assert con.execute("SELECT product_id, deleted_at IS NOT NULL, article_type FROM deleted_products").fetchall() == [("1000", True, "Tshirts")]
    assert con.execute("SELECT count(*) FROM predictions WHERE product_id = '1000'").fetchone()[0] == 1  # history kept

    write_fashion(tmp_path / "cat", rows)  # listed again: back as a product, no longer deleted
    s = ingest(wh, src, full_snapshot=True)
    assert (s.new, s.deleted) == (1, 0)
    assert ids(wh, "products") == every and ids(wh, "deleted_products") == set()


def test_a_full_snapshot_of_one_source_leaves_other_sources_alone(tmp_path):
    wh = open_warehouse(tmp_path / "wh")
    a = write_fashion(tmp_path / "a", fashion_rows(4, start=1000))
    b = write_fashion(tmp_path / "b", fashion_rows(4, start=2000))
    ingest(wh, a)
    ingest(wh, b)
    write_fashion(tmp_path / "b", fashion_rows(2, start=2000))
    assert ingest(wh, b, full_snapshot=True).deleted == 2
    assert ids(wh, "products") == {"1000", "1001", "1002", "1003", "2000", "2001"}
