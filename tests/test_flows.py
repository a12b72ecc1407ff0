"""The pipeline as its users run it: real Prefect flows under prefect_test_harness."""
from __future__ import annotations

import asyncio

import shutil

import numpy as np
import pytest

from catalogs import write_fashion
from conftest_features import tiny_bert_dir, tiny_timm_ckpt  # noqa: F401  (fixtures)
from features.identity import encoder_id
from features.store import EmbeddingStore
from flows.flows import run_flow
from pipeline import make_shop, pipeline_settings, shop_rows
from test_warehouse_cli import hold_lock, wait_for
from warehouse import open_warehouse
from warehouse.locks import WarehouseBusy
from warehouse.views import connect

pytestmark = pytest.mark.usefixtures("prefect_harness")


def q(s, sql):
    return connect(open_warehouse(s.warehouse.path), s.score.reclass_threshold).execute(sql).fetchall()


def no_duplicates(s):
    assert q(s, "SELECT product_id, target, model_id, content_hash FROM predictions GROUP BY ALL HAVING count(*) > 1") == []
    assert q(s, "SELECT product_id, target FROM latest_predictions GROUP BY ALL HAVING count(*) > 1") == []


def test_nightly_scores_only_what_changed_and_everything_after_a_new_model(tmp_path, tiny_bert_dir, tiny_timm_ckpt):
    # DataLoader workers too: they must start cleanly inside a threaded Prefect run.
    s = pipeline_settings(tmp_path, tiny_bert_dir, tiny_timm_ckpt, encode={"shards": 2, "num_workers": 1},
                          warehouse={"compact_after_runs": 2})
    src = make_shop(tmp_path / "cat", 40)
    run_flow("ingest", s, source=str(src))
    enc = run_flow("encode", s)
    assert enc["image"]["encoded"] == 40 and enc["title"]["encoded"] == 40
    run_flow("train", s)

    first = run_flow("nightly", s, source=str(src))
    assert first["ingest"]["unchanged"] == 40 and first["encode"]["image"]["encoded"] == 0
    assert first["score"]["scored"] == 40 and first["score"]["rows_written"] == 40 * 3
    assert "artifact_error" not in first

    rows = shop_rows(40) + shop_rows(3, start=6000)
    for r in rows[:4]:
        r[9] = r[9] + " sports"
    write_fashion(src, rows)
    second = run_flow("nightly", s, source=str(src))
    assert (second["ingest"]["new"], second["ingest"]["updated"]) == (3, 4)
    assert second["encode"]["title"]["encoded"] == 7 and second["encode"]["image"]["encoded"] == 3
    assert second["score"]["scored"] == 7
    assert "compact" not in first and second["compact"]["rows"] == 43 * 3  # due after two scoring runs
    no_duplicates(s)

    run_flow("train", s)
    third = run_flow("nightly", s, source=str(src))
    assert third["score"]["scored"] == 43 and third["encode"]["title"]["encoded"] == 0
    no_duplicates(s)
    assert q(s, "SELECT count(*) FROM latest_predictions") == [(43 * 3,)]
    runs = q(s, "SELECT flow, status FROM runs WHERE flow = 'nightly'")
    assert runs == [("nightly", "completed")] * 3

    md = read_artifact(third["artifact_id"])
    assert md["key"] == "vitrine-nightly-summary" and third["run_id"] in md["data"]
    assert "Top reclassification candidates" in md["data"]


def read_artifact(artifact_id: str) -> dict:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterId

    async def read():
        async with get_client() as c:
            (artifact,) = await c.read_artifacts(artifact_filter=ArtifactFilter(id=ArtifactFilterId(any_=[artifact_id])))
            return {"key": artifact.key, "data": artifact.data}

    return asyncio.run(read())


def test_failed_run_leaves_no_partial_predictions(tmp_path, tiny_bert_dir, tiny_timm_ckpt):
    s = pipeline_settings(tmp_path, tiny_bert_dir, tiny_timm_ckpt)
    src = make_shop(tmp_path / "cat", 24)
    run_flow("ingest", s, source=str(src))
    run_flow("encode", s)
    run_flow("train", s)
    (model_id, path) = q(s, "SELECT model_id, artifact_path FROM models WHERE is_current")[0]
    hidden = tmp_path / "hidden-model"
    shutil.move(path, hidden)  # the model artifact is unreadable: scoring fails
    with pytest.raises(Exception):
        run_flow("nightly", s, source=str(src))
    assert q(s, "SELECT count(*) FROM predictions") == [(0,)]
    assert q(s, "SELECT status FROM runs WHERE flow = 'nightly'") == [("failed",)]
    shutil.move(hidden, path)
    again = run_flow("nightly", s, source=str(src))
    assert again["score"]["scored"] == 24
    no_duplicates(s)


def test_second_nightly_at_once_stops_clearly(tmp_path, tiny_bert_dir, tiny_timm_ckpt):
    s = pipeline_settings(tmp_path, tiny_bert_dir, tiny_timm_ckpt)
    src = make_shop(tmp_path / "cat", 8)
    marker = tmp_path / "held"
    holder = hold_lock(open_warehouse(s.warehouse.path).root, marker, 60)
    try:
        wait_for(marker, holder)
        with pytest.raises(WarehouseBusy, match="busy"):
            run_flow("nightly", s, source=str(src))
    finally:
        holder.kill()
        holder.wait()


def test_dask_runner_gives_the_same_vectors(tmp_path, tiny_bert_dir, tiny_timm_ckpt):
    src = make_shop(tmp_path / "cat", 24)
    threads = pipeline_settings(tmp_path / "a", tiny_bert_dir, tiny_timm_ckpt, encode={"shards": 2})
    dask = pipeline_settings(tmp_path / "b", tiny_bert_dir, tiny_timm_ckpt, encode={"shards": 2}, score={"shards": 2},
                             runner={"task_runner": "dask", "dask_workers": 2})
    for s in (threads, dask):
        run_flow("ingest", s, source=str(src))
        run_flow("encode", s)
    run_flow("train", dask)
    scored = run_flow("score", dask)
    assert scored["shards"] == 2 and scored["scored"] == 24
    assert q(dask, "SELECT count(*) FROM latest_predictions") == [(24 * 3,)]
    ids = [r[0] for r in q(threads, "SELECT product_id FROM products ORDER BY 1")]
    for name, spec in threads.encoders.items():
        eid = encoder_id(spec)
        a, fa = EmbeddingStore(open_warehouse(threads.warehouse.path), eid).read_matrix(ids)
        b, fb = EmbeddingStore(open_warehouse(dask.warehouse.path), eid).read_matrix(ids)
        assert fa.all() and fb.all()
        np.testing.assert_allclose(a, b, atol=1e-5)
