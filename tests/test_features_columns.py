"""The `columns` family: catalog columns as stored, versioned vectors, and the heads that read them."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from catalogs import write_myntra
from features.encode import encode
from features.encoders.columns import MISSING, parse_model, sources, vectors
from flows.settings import Settings
from heads.predict import load_model, predict_products
from heads.score import score
from heads.train import train
from warehouse import open_warehouse
from warehouse.ingest import ingest

MODEL = "cat=brand,gender;num=num_images;dim=64"


def test_layout_values_unseen_and_missing():
    lay = parse_model(MODEL)
    assert lay.width == 2 * 64 + 2 and list(lay.slots("gender")) == list(range(64, 128))
    t = pa.table({"brand": ["Puma", " puma ", None, "Never Seen"], "gender": ["Men", "Men", "", "Women"],
                  "num_images": [3, None, 5, 1]})  # no column 'colour' at all: that would be missing too
    v = vectors(sources(t, lay), lay)
    assert v.shape == (4, 130)
    assert (v[:, :128].sum(axis=1) == 2).all()  # one hot slot per categorical column, missing ones included
    assert np.array_equal(v[0, :64], v[1, :64])  # values are stripped and lower-cased
    assert not np.array_equal(v[0, :64], v[3, :64])  # an unseen value has a slot of its own
    assert v[2, :128].any() and sources(t, lay)[2].count(MISSING) == 2
    assert v[:, 128].tolist() == [3, 0, 5, 1] and v[:, 129].tolist() == [0, 1, 0, 0]  # value, missing flag
    for bad in ("brand", "cat=;num=;dim=4", "cat=a,a;num=;dim=4"):
        with pytest.raises(ValueError):
            parse_model(bad)


def rows(n: int, brand_of_10000: str = "Zara") -> list[dict]:
    brands = {"Zara": 3000, "Puma": 900, "HRX": 300, "DKNY": 9000}
    out = []
    for i in range(n):
        b = list(brands)[i % 4]
        if i == 0:
            b = brand_of_10000
        price = brands.get(b, 1000) * (1 + 0.05 * (i % 3))
        out.append({"ProductID": str(10000 + i), "ProductName": f"Men Shirt {i % 5}",  # the title says nothing of price
                    "ProductBrand": b, "Gender": ["Men", "Women"][(i // 4) % 2], "Price (INR)": f"{price:.0f}",
                    "NumImages": "" if i % 9 == 0 else str(1 + i % 4), "Description": "x", "PrimaryColor": "Blue"})
    return out


def test_columns_encoded_once_versioned_per_product_and_never_the_target(tmp_path):
    s = Settings.model_validate({
        "warehouse": {"path": str(tmp_path / "wh"), "lock_timeout_s": 0},
        "encoders": {"title": {"family": "hashing", "model": "word:1-1:512", "input": "title"},
                     "cols": {"family": "columns", "model": MODEL, "input": "columns"}},
        "encode": {"batch_size": 64, "num_workers": 0, "threads": 1},
        "train": {"features": ["title", "cols"], "classification_targets": ["gender"], "regression_targets": ["price"],
                  "heads": ["mlp"], "min_class_count": 2, "label_folds": 0,
                  "mlp": {"max_epochs": 40, "patience": 5, "hidden": 32, "ensemble": 1, "threads": 1, "lr": 3e-3}},
    })
    wh = open_warehouse(s.warehouse.path)
    ingest(wh, write_myntra(tmp_path / "p.csv", rows(240)), s.ingest)
    first = {r.name: r.encoded for r in encode(wh, s.encoders, s.encode, progress=False)}
    assert first == {"title": 240, "cols": 240}
    # one product's brand changes: only its columns vector is made again
    ingest(wh, write_myntra(tmp_path / "p.csv", rows(240, brand_of_10000="DKNY")), s.ingest)
    again = {r.name: r.encoded for r in encode(wh, s.encoders, s.encode, progress=False)}
    assert again == {"title": 0, "cols": 1}
    result = train(wh, s, progress=False)
    assert any("column(s) gender left out, they are targets" in m for m in result.messages)
    model = load_model(wh, result[0].model_id)
    cols = next(b for b in model.blocks if b.name == "cols")
    assert cols.exclude == ("gender",) and cols.dim == 64 + 2
    # price follows the brand, which only the columns carry
    assert result[0].metrics["targets"]["price"]["test"]["r2_log"] > 0.8
    # gender is a target: with its column left out and a title that does not say it, it is a guess
    assert result[0].metrics["targets"]["gender"]["test"]["accuracy"] < 0.75
    # a product with a brand no training row had and no photo count still gets a finite price
    ingest(wh, write_myntra(tmp_path / "p.csv", rows(240) + [
        {"ProductID": "99999", "ProductName": "Men Shirt 1", "ProductBrand": "Brand New", "Gender": "Men",
         "Price (INR)": "1000", "NumImages": "", "Description": "x", "PrimaryColor": "Blue"}]), s.ingest)
    encode(wh, s.encoders, s.encode, progress=False)
    pred = predict_products(wh, model, ["99999", "10001"])
    assert np.isfinite(pred["price"].value).all() and pred["price"].has_features.all()
    # batch scoring reads the columns the model's inputs are made of
    summary = score(wh, s, "r1")
    assert summary.scored == 241 and summary.skipped_no_vectors == 0
