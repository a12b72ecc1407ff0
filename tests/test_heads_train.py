"""Heads end to end on a small generated warehouse where the right answer is known.

`master_category` is a function of the image vector, `gender` of the title vector, log price is
linear in the title vector. Some products have no photo, some have NULL labels.
"""
from __future__ import annotations

import hashlib
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import accuracy_score, f1_score, r2_score

from features.identity import encoder_id
from features.settings import EncoderSpec
from features.store import EmbeddingStore
from flows.settings import Settings
from heads import registry
from heads.evaluate import evaluate
from heads.features import Block, FeatureMismatch, from_arrays, read_features
from heads.predict import load_model, predict_products
from heads.settings import LightGBMSettings, MLPSettings, TrainSettings
from heads.targets import OTHER
from heads.train import train
from warehouse import schemas
from warehouse.atomic import write_parquet_atomic
from warehouse.layout import open_warehouse

N = 480
IMG_DIM, TXT_DIM = 16, 12
MASTER = ["Apparel", "Footwear", "Accessories", "Personal Care"]
GENDER = ["Men", "Women", "Unisex"]


def _sha(s: str) -> str:
    return hashlib.sha256(s.encode()).hexdigest()


def make_settings(**train_kw) -> Settings:
    encoders = {
        "image": EncoderSpec(family="timm", model="synthetic-image-net", input="image"),
        "title": EncoderSpec(family="bert", model="synthetic-text-net", input="title"),
    }
    ts = dict(
        features=["image", "title"],
        classification_targets=["master_category", "gender", "article_type"],
        regression_targets=["price"],
        min_class_count=5,
        lightgbm=LightGBMSettings(num_boost_round=60, reduce_dim=8, stack_dim=12, min_data_in_leaf=5,
                                  stack_folds=3, early_stopping_rounds=10, num_threads=1),
        mlp=MLPSettings(hidden=64, max_epochs=40, patience=5, batch_size=64, lr=3e-3, threads=1),
    )
    ts.update(train_kw)
    return Settings(encoders=encoders, train=TrainSettings(**ts))


def build_warehouse(root, settings: Settings, seed: int = 0, with_price: bool = True):
    """Products + both embedding stores; returns (wh, truth dict)."""
    rng = np.random.default_rng(seed)
    wh = open_warehouse(root)
    m = rng.integers(0, len(MASTER), N)
    g = rng.integers(0, len(GENDER), N)
    img_centers = rng.normal(0, 3, (len(MASTER), IMG_DIM))
    txt_centers = rng.normal(0, 3, (len(GENDER), TXT_DIM))
    img = (img_centers[m] + rng.normal(0, 1, (N, IMG_DIM))).astype(np.float32)
    txt = (txt_centers[g] + rng.normal(0, 1, (N, TXT_DIM))).astype(np.float32)
    log_price = 6.0 + 0.4 * txt[:, 0] + 0.2 * txt[:, 1] + rng.normal(0, 0.05, N)
    ids = [f"p{i:04d}" for i in range(N)]
    titles = [f"title {i}" for i in range(N)]
    has_img = np.ones(N, dtype=bool)
    has_img[::10] = False  # every 10th product has no photo
    master = [MASTER[k] for k in m]
    for i in range(0, N, 7):
        master[i] = None  # NULL labels
    gender = [GENDER[k] for k in g]
    gender[3] = None
    master[3] = None  # product p0003: no label for either classification target...
    # article_type: one frequent class per master category plus a rare one (3 rows < min_class_count)
    article = [None if master[i] is None else f"{master[i]}-type" for i in range(N)]
    for i in (1, 2, 4):
        article[i] = "Rare Thing"
    now = datetime(2024, 5, 1, tzinfo=timezone.utc)
    cols = {
        "product_id": ids,
        "source": ["synthetic"] * N,
        "title": titles,
        "image_path": [f"{i}.jpg" if h else None for i, h in zip(ids, has_img)],
        "image_status": ["ok" if h else "none" for h in has_img],
        "image_sha256": [_sha("img" + i) if h else None for i, h in zip(ids, has_img)],
        "title_sha256": [_sha(t) for t in titles],
        "content_hash": [_sha("c" + i) for i in ids],
        "first_seen_at": [now] * N,
        "updated_at": [now] * N,
    }
    table = pa.Table.from_pydict(cols, schema=schemas.PRODUCT_FIXED)
    table = table.append_column("master_category", pa.array(master, pa.string()))
    table = table.append_column("gender", pa.array(gender, pa.string()))
    table = table.append_column("article_type", pa.array(article, pa.string()))
    price = np.exp(log_price)
    if with_price:
        pl = price.tolist()
        pl[5] = None  # product p0005: no price...
        pl[3] = None  # ...and p0003 no label at all
        table = table.append_column("price", pa.array(pl, pa.float64()))
    write_parquet_atomic(table, wh.products_path)
    sel = np.flatnonzero(has_img)
    EmbeddingStore(wh, encoder_id(settings.encoders["image"])).write_chunk(
        [ids[i] for i in sel], [cols["image_sha256"][i] for i in sel], img[sel])
    EmbeddingStore(wh, encoder_id(settings.encoders["title"])).write_chunk(ids, cols["title_sha256"], txt)
    return wh, {"ids": ids, "master": master, "gender": gender, "price": price, "has_img": has_img, "log_price": log_price}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    # the evaluation fit is the registered one here, so the stored test metrics can be checked
    # against the saved model's own predictions; the refit is tested on its own below
    settings = make_settings(refit_all=False)
    wh, truth = build_warehouse(tmp_path_factory.mktemp("wh"), settings)
    result = train(wh, settings, head="both", progress=False)
    return wh, settings, truth, result


def test_both_heads_train_and_one_is_current(trained):
    wh, settings, truth, result = trained
    assert [m.head for m in result] == ["lightgbm", "mlp"]
    current = registry.current_models(wh)
    assert len(current) == 1
    best = max(result, key=lambda m: m.val_score)
    assert current[0]["model_id"] == best.model_id and best.is_current
    assert current[0]["target_set"] == "article_type,gender,master_category,price"
    assert len(registry.list_models(wh)) == 2
    row = registry.get_model(wh, result[0].model_id)
    assert row["encoder_ids"] == [encoder_id(settings.encoders["image"]), encoder_id(settings.encoders["title"])]
    # p0003 has no label at all: the only product left out of training
    assert row["training_rows"] == N - 1
    assert row["training_latest_updated_at"] == datetime(2024, 5, 1, tzinfo=timezone.utc)


def test_known_answers_are_learned(trained):
    wh, settings, truth, result = trained
    for m in result:
        t = m.metrics["targets"]
        assert t["gender"]["test"]["accuracy"] > 0.95, m.head
        # master_category comes from the image; 10% of products have none
        assert t["master_category"]["test"]["accuracy"] > 0.8, m.head
        assert t["price"]["test"]["r2_log"] > 0.8, m.head
        assert 0.5 < t["price"]["test"]["interval_coverage"] <= 1.0


def test_metrics_equal_sklearn_and_reload_predicts_identically(trained):
    wh, settings, truth, result = trained
    for m in result:
        model = load_model(wh, m.model_id)
        split = pq.read_table(model.directory / "split.parquet").to_pylist()
        test_ids = [r["product_id"] for r in split if r["split"] == "test"]
        pred = predict_products(wh, model, test_ids, top_k=3)
        again = predict_products(wh, load_model(wh, m.model_id), test_ids, top_k=3)
        for t in pred:
            for attr in ("labels", "probs", "value", "lower", "upper"):
                a, b = getattr(pred[t], attr), getattr(again[t], attr)
                assert (a is None and b is None) or np.array_equal(a, b)
        pos = {p: i for i, p in enumerate(truth["ids"])}
        y = [truth["gender"][pos[p]] for p in test_ids]
        keep = [i for i, v in enumerate(y) if v is not None]
        y_true = [y[i] for i in keep]
        y_pred = list(pred["gender"].labels[keep, 0])
        got = m.metrics["targets"]["gender"]["test"]
        assert got["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
        assert got["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro"))
        assert got["weighted_f1"] == pytest.approx(f1_score(y_true, y_pred, average="weighted"))
        price_true = np.array([truth["price"][pos[p]] for p in test_ids])
        ok = np.array([p != "p0005" for p in test_ids])
        assert m.metrics["targets"]["price"]["test"]["r2"] == pytest.approx(r2_score(price_true[ok], pred["price"].value[ok]))
        pv = pred["price"]
        assert np.all(pv.lower <= pv.value) and np.all(pv.value <= pv.upper)
        assert pred["gender"].probs.shape == (len(test_ids), 3)
        assert np.all(np.diff(pred["gender"].probs, axis=1) <= 0)


def test_missing_photo_is_still_scored(trained):
    wh, settings, truth, result = trained
    no_img = [p for p, h in zip(truth["ids"], truth["has_img"]) if not h]
    for m in result:
        pred = predict_products(wh, m.model_id, no_img)
        assert pred["gender"].has_features.all()
        assert pred["gender"].labels.shape == (len(no_img), 3)
        want = [truth["gender"][truth["ids"].index(p)] for p in no_img]
        acc = np.mean([a == b for a, b in zip(pred["gender"].labels[:, 0], want) if b is not None])
        assert acc > 0.9  # the title alone carries gender


def test_rare_class_merged_into_other_and_reported(trained):
    wh, settings, truth, result = trained
    model = load_model(wh, result[0].model_id)
    spec = next(t for t in model.targets if t.name == "article_type")
    assert spec.merged == ["Rare Thing"] and spec.classes[-1] == OTHER
    text = evaluate(wh, result[0].model_id)
    assert "Rare Thing" in text and "__other__" in text
    assert (model.directory / "confusion-gender.png").stat().st_size > 1000


def test_refuses_wrong_encoder_or_dimension(trained):
    wh, settings, truth, result = trained
    model = load_model(wh, result[0].model_id)
    img_id, txt_id = model.encoder_ids
    n = 4
    good = {img_id: (np.zeros((n, IMG_DIM)), np.ones(n, bool)), txt_id: (np.zeros((n, TXT_DIM)), np.ones(n, bool))}
    model.predict_features(from_arrays(["a"] * n, model.blocks, good))
    bad_dim = dict(good)
    bad_dim[txt_id] = (np.zeros((n, TXT_DIM + 1)), np.ones(n, bool))
    with pytest.raises(FeatureMismatch, match="trained on 12-d"):
        model.predict_features(from_arrays(["a"] * n, model.blocks, bad_dim))
    other = {img_id: good[img_id], "bert:other-model:hub:title": good[txt_id]}
    with pytest.raises(FeatureMismatch, match="not trained on encoder ids"):
        model.predict_features(from_arrays(["a"] * n, model.blocks, other))
    # a store whose vectors have another dimension than the model's block is refused on read
    blocks = [Block(b.name, b.encoder_id, b.input, b.dim + 1) for b in model.blocks]
    products = pa.table({"product_id": ["p0001"], "image_sha256": ["x"], "title_sha256": ["y"]})
    with pytest.raises(FeatureMismatch, match="trained on"):
        read_features(wh, products, blocks)


def test_unknown_model_id_is_a_clear_error(trained):
    wh = trained[0]
    with pytest.raises(KeyError, match="no model 'nope'"):
        registry.get_model(wh, "nope")


def test_missing_column_skipped_and_latest_is_current(tmp_path):
    settings = make_settings(classification_targets=["gender", "usage"], regression_targets=["price"])
    wh, _ = build_warehouse(tmp_path / "wh", settings, with_price=False)
    first = train(wh, settings, head="lightgbm", progress=False)
    assert set(first.skipped) == {"usage", "price"}
    assert "no column 'usage'" in first.skipped["usage"]
    assert first[0].targets == ["gender"]
    second = train(wh, settings, head="mlp", progress=False)
    cur = registry.current_models(wh)
    assert [c["model_id"] for c in cur] == [second[0].model_id]
    assert {r["model_id"]: r["is_current"] for r in registry.list_models(wh)} == {
        first[0].model_id: False, second[0].model_id: True}
    # nothing to train at all: a message, no error
    none = train(wh, settings, head="mlp", targets=["usage"], progress=False)
    assert list(none) == [] and "usage" in none.skipped


def test_calibration_folds_calibrate_on_every_training_row_and_hold_none_out(tmp_path):
    settings = make_settings(classification_targets=["gender"], label_folds=0, calibration_folds=3, refit_all=False)
    wh, _ = build_warehouse(tmp_path / "wh", settings)
    (m,) = train(wh, settings, head="mlp", progress=False)
    model = load_model(wh, m.model_id)
    sizes = model.spec["split"]["sizes"]
    assert "calibration" not in sizes  # no rows leave training to calibrate
    assert {r["split"] for r in pq.read_table(model.directory / "split.parquet").to_pylist()} == {"train", "val", "test"}
    cal = model.spec["fits"]["calibration"]
    assert cal["folds"] == 3 and cal["rows"] == sizes["train"] == model.spec["fits"]["evaluation"]["rows"]
    assert set(model.spec["calibration"]) == {"price"}
    assert m.metrics["calibration"]["rows"] == sizes["train"]
    assert "out-of-fold outputs of 3 fits" in evaluate(wh, m.model_id, recompute=True)


def test_mlp_training_is_seeded(tmp_path):
    settings = make_settings(classification_targets=["gender"], regression_targets=[])
    wh, truth = build_warehouse(tmp_path / "wh", settings)
    a = train(wh, settings, head="mlp", progress=False)[0]
    b = train(wh, settings, head="mlp", progress=False)[0]
    pa_ = predict_products(wh, a.model_id, truth["ids"][:50])["gender"]
    pb = predict_products(wh, b.model_id, truth["ids"][:50])["gender"]
    assert np.array_equal(pa_.probs, pb.probs) and np.array_equal(pa_.labels, pb.labels)


def test_registered_model_is_refitted_on_every_label_and_says_so(tmp_path):
    settings = make_settings(label_folds=0)
    wh, truth = build_warehouse(tmp_path / "wh", settings)
    (m,) = train(wh, settings, head="mlp", progress=False)
    model = load_model(wh, m.model_id)
    sizes = model.spec["split"]["sizes"]
    assert sizes["calibration"] > 0  # a price target: rows held out to calibrate its interval
    fits = model.spec["fits"]
    assert fits["evaluation"]["rows"] == sizes["train"]
    assert fits["registered"]["rows"] == sizes["train"] + sizes["calibration"] + sizes["test"] == N - 1 - sizes["val"]
    split = pq.read_table(model.directory / "split.parquet").to_pylist()
    assert {r["split"] for r in split} == {"train", "val", "calibration", "test"}
    text = evaluate(wh, m.model_id, recompute=True)
    assert "evaluation fit" in text and "refitted on every labelled row" in text and "in-sample" in text
    # the registered model is not the evaluation fit: the test rows it learnt are predicted better
    test_ids = [r["product_id"] for r in split if r["split"] == "test"]
    pos = {p: i for i, p in enumerate(truth["ids"])}
    pred = predict_products(wh, model, test_ids)
    ok = np.array([p != "p0005" for p in test_ids])
    y = truth["log_price"][[pos[p] for p in test_ids]][ok]
    assert r2_score(y, np.log(pred["price"].value[ok])) > m.metrics["targets"]["price"]["test"]["r2_log"]
