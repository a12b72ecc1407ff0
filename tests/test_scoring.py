"""Batch scoring into append-only predictions, and the views analysts query — without Prefect."""
from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from catalogs import write_fashion
from conftest_features import tiny_bert_dir, tiny_timm_ckpt  # noqa: F401  (fixtures)
from features.encode import encode
from heads.score import NoCurrentModel, score
from heads.train import train
from pipeline import make_shop, pipeline_settings, shop_rows
from warehouse import open_warehouse
from warehouse.ingest import ingest
from warehouse.tables import predictions_path, publish_predictions
from warehouse.views import connect


@pytest.fixture
def shop(tmp_path, tiny_bert_dir, tiny_timm_ckpt):
    s = pipeline_settings(tmp_path, tiny_bert_dir, tiny_timm_ckpt)
    wh = open_warehouse(s.warehouse.path)
    src = make_shop(tmp_path / "cat", 48)
    ingest(wh, src, s.ingest)
    encode(wh, s.encoders, s.encode, progress=False)
    return s, wh, src


def q(wh, sql, threshold=0.0):
    return connect(wh, threshold).execute(sql).fetchall()


def test_score_writes_one_row_per_product_and_target(shop):
    s, wh, _ = shop
    with pytest.raises(NoCurrentModel, match="vitrine train"):
        score(wh, s, "r0")
    (model,) = train(wh, s, head="mlp", progress=False)
    summary = score(wh, s, "r1")
    assert summary.scored == 48 and summary.rows_written == 48 * 3 and summary.models == [model.model_id]
    rows = pq.read_table(predictions_path(wh, "r1")).to_pylist()
    for r in rows:
        assert r["model_id"] == model.model_id and r["run_id"] == "r1"
        assert len(r["top_k"]) == 2 and r["top_k"][0]["label"] == r["label"]
        assert r["top_k"][0]["probability"] == pytest.approx(r["confidence"])
        assert r["top_k"][0]["probability"] >= r["top_k"][1]["probability"]
        assert r["value"] is None
    assert q(wh, "SELECT count(*) FROM latest_predictions") == [(48 * 3,)]
    # nothing changed: nothing to score, no new file
    again = score(wh, s, "r2")
    assert again.to_score == 0 and again.rows_written == 0
    assert not predictions_path(wh, "r2").exists()


def test_rerun_of_a_run_id_replaces_only_its_rows(shop):
    s, wh, _ = shop
    train(wh, s, head="mlp", progress=False)
    score(wh, s, "r1")
    score(wh, s, "r2", rescore_all=True)
    score(wh, s, "r2", rescore_all=True)
    assert q(wh, "SELECT run_id, count(*) FROM predictions GROUP BY 1 ORDER BY 1") == [("r1", 144), ("r2", 144)]
    assert q(wh, "SELECT DISTINCT run_id FROM latest_predictions") == [("r2",)]


def test_changed_content_new_products_and_new_model(shop, tmp_path):
    s, wh, src = shop
    (m1,) = train(wh, s, head="mlp", progress=False)
    score(wh, s, "r1")
    rows = shop_rows(48) + shop_rows(2, start=5000)
    rows[0][9] = "black bag women formal"
    write_fashion(src, rows)
    ingest(wh, src, s.ingest)
    # not encoded yet: the new products and the changed one wait (nothing is scored on half
    # of its inputs) and are counted.
    before = score(wh, s, "r2")
    assert before.to_score == 3 and before.skipped_no_vectors == 3 and before.scored == 0
    encode(wh, s.encoders, s.encode, progress=False)
    after = score(wh, s, "r3")
    assert after.to_score == 3 and after.scored == 3
    dupes = q(wh, "SELECT product_id, target, model_id, content_hash FROM predictions GROUP BY ALL HAVING count(*) > 1")
    assert dupes == []
    (m2,) = train(wh, s, head="mlp", progress=False)
    full = score(wh, s, "r4")
    assert full.scored == 50 and full.models == [m2.model_id]
    assert q(wh, "SELECT DISTINCT model_id FROM latest_predictions") == [(m2.model_id,)]
    assert q(wh, "SELECT count(*) FROM latest_predictions") == [(150,)]


def test_reclassification_candidates_view_without_label_folds(shop):
    s, wh, _ = shop  # with label folds off, every label is judged by the current model at the threshold
    s = s.model_copy(update={"train": s.train.model_copy(update={"label_folds": 0})})
    train(wh, s, head="mlp", progress=False)
    score(wh, s, "r1")
    disagree = q(wh, "SELECT count(*) FROM latest_predictions lp JOIN products p USING (product_id) "
                     "WHERE lp.target = 'gender' AND lp.label <> p.gender")[0][0]
    got = q(wh, "SELECT count(*) FROM reclassification_candidates WHERE target = 'gender'")[0][0]
    assert got == disagree
    high = q(wh, "SELECT count(*) FROM reclassification_candidates", threshold=1.01)[0][0]
    assert high == 0
    cols = [d[0] for d in connect(wh).execute("SELECT * FROM reclassification_candidates").description]
    assert cols == ["product_id", "title", "target", "seller_label", "suggested_label", "confidence", "top_k",
                    "model_id", "run_id", "label_quality", "rank", "source"]
    assert q(wh, "SELECT DISTINCT source FROM reclassification_candidates") == [("current_model",)]


def test_sharded_scoring_is_invisible_until_every_shard_is_published(shop):
    s, wh, _ = shop
    train(wh, s, head="mlp", progress=False)
    whole = score(wh, s, "whole")
    expected = q(wh, "SELECT product_id, target, label, confidence FROM predictions WHERE run_id = 'whole' ORDER BY 1, 2")
    parts = [score(wh, s, "sharded", rescore_all=True, shard=(i, 2)) for i in range(2)]
    assert sum(p.scored for p in parts) == whole.scored == 48 and min(p.scored for p in parts) > 0
    assert q(wh, "SELECT count(*) FROM predictions WHERE run_id = 'sharded'") == [(0,)]  # staged, not visible
    assert publish_predictions(wh, "sharded") == 2
    got = q(wh, "SELECT product_id, target, label, confidence FROM predictions WHERE run_id = 'sharded' ORDER BY 1, 2")
    assert [r[:3] for r in got] == [r[:3] for r in expected]
    assert [r[3] for r in got] == pytest.approx([r[3] for r in expected], abs=1e-6)
    # a retried shard replaces its own staged file; a second publish replaces the run's files
    score(wh, s, "sharded", rescore_all=True, shard=(0, 2))
    assert publish_predictions(wh, "sharded") == 1
    assert q(wh, "SELECT count(DISTINCT product_id) FROM predictions WHERE run_id = 'sharded'")[0][0] < 48
