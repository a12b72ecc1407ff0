"""The `columns` family: catalog columns as stored, versioned vectors, and the heads that read them."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from catalogs import write_myntra
from features.encode import encode
from features.encoders.columns import MAX_SLOTS, MISSING, codes, parse_model, sources, vectors
from flows.settings import Settings
from heads.predict import load_model, predict_products
from heads.score import score
from heads.train import train
from warehouse import open_warehouse
from warehouse.ingest import ingest

MODEL = "cat=brand,gender;num=num_images"


def test_layout_values_unseen_and_missing():
    lay = parse_model(MODEL)
    assert lay.slots == MAX_SLOTS and lay.width == 2 + 2  # a slot number per categorical, value and flag per numeric
    t = pa.table({"brand": ["Puma", " puma ", None, "Never Seen"], "gender": ["Men", "Men", "", "Women"],
                  "num_images": [3, None, 5, 1]})  # no column 'colour' at all: that would be missing too
    v = vectors(sources(t, lay), lay)
    assert v.shape == (4, 4)
    assert v[0, 0] == v[1, 0]  # values are stripped and lower-cased
    assert v[0, 0] != v[3, 0]  # an unseen value has a slot of its own
    assert sources(t, lay)[2].count(MISSING) == 2 and v[2, 0] != v[0, 0]  # missing is a value of its own
    assert v[:, 2].tolist() == [3, 0, 5, 1] and v[:, 3].tolist() == [0, 1, 0, 0]  # value, missing flag
    assert (v[:, :2] == np.floor(v[:, :2])).all() and (v[:, :2] < MAX_SLOTS).all()  # exact slot numbers
    rows_, code, val = codes(v, lay)  # the one-hot expansion: brand codes, then gender codes, then numerics
    brand = code[(code < MAX_SLOTS)]
    gender = code[(code >= MAX_SLOTS) & (code < 2 * MAX_SLOTS)]
    assert len(brand) == 4 and len(gender) == 4 and len(set(brand.tolist())) == 3
    assert sorted(code[code >= 2 * MAX_SLOTS].tolist()) == [2 * MAX_SLOTS] * 3 + [2 * MAX_SLOTS + 1]
    for bad in ("brand", "cat=;num=", "cat=a,a;num=", f"cat=a;num=;slots={MAX_SLOTS + 1}"):
        with pytest.raises(ValueError):
            parse_model(bad)
    with pytest.raises(ValueError, match="`dim=` named the one-hot width of an earlier layout"):
        parse_model("cat=brand;num=;dim=2048")


def test_a_model_reads_the_values_its_training_rows_hold_and_the_rest_is_the_unknown_bucket(tmp_path):
    """Stored slot numbers become a one-hot over the training rows' values: one input per value
    (none shared by two brands, as 87 of Myntra's 654 did at 2,048 slots), the same inputs at
    scoring, and a value never seen in training sets none of them."""
    from features.store import EmbeddingStore
    from heads.features import Block, read_features

    s = Settings.model_validate({
        "warehouse": {"path": str(tmp_path / "wh"), "lock_timeout_s": 0},
        "encoders": {"cols": {"family": "columns", "model": MODEL, "input": "columns"}},
        "encode": {"batch_size": 64, "num_workers": 0, "threads": 1},
        "train": {"features": ["cols"], "classification_targets": [], "regression_targets": ["price"]},
    })
    wh = open_warehouse(s.warehouse.path)
    ingest(wh, write_myntra(tmp_path / "p.csv", rows(40)), s.ingest)
    encode(wh, s.encoders, s.encode, progress=False)
    from heads.features import blocks_from_settings
    from warehouse.tables import read_products

    products = read_products(wh)
    feats = read_features(wh, products, blocks_from_settings(s, ["cols"]))
    b = feats.blocks[0]
    eid = b.encoder_id
    assert EmbeddingStore(wh, eid).dim == 4  # a handful of numbers per product are stored, not a one-hot
    # brands Zara, Puma, HRX, DKNY + genders Men, Women + the numeric value and its flag
    assert b.dim == len(b.codes) == 4 + 2 + 2
    x = feats.matrices[eid].toarray()
    assert (x[:, :6].sum(axis=1) == 2).all()  # one brand and one gender input per product
    assert len({tuple(r) for r in x[:, :4]}) == 4  # four brands, four distinct inputs
    assert b.numeric_positions().tolist() == [6]
    # scoring reads with the trained codes: a new brand has no brand input, a known one its own
    ingest(wh, write_myntra(tmp_path / "p.csv", rows(40) + [
        {"ProductID": "99999", "ProductName": "Men Shirt 1", "ProductBrand": "Brand New", "Gender": "Men",
         "Price (INR)": "1000", "NumImages": "2", "Description": "x", "PrimaryColor": "Blue"}]), s.ingest)
    encode(wh, s.encoders, s.encode, progress=False)
    trained = Block.from_dict(b.to_dict())  # as a saved model spec holds it
    again = read_features(wh, read_products(wh), [trained])
    pos = again.product_ids.index("99999")
    y = again.matrices[eid].toarray()
    assert again.blocks[0].codes == b.codes and y.shape[1] == b.dim
    assert y[pos, :4].sum() == 0 and y[pos, 4:6].sum() == 1 and y[pos, 6] == 2
    first = again.product_ids.index(feats.product_ids[0])
    assert np.array_equal(y[first], x[0])


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
    assert cols.exclude == ("gender",) and cols.dim == 4 + 2  # four brands, the photo count and its flag
    # the rows its figures were measured on: every labelled product, in the split's order, each in one part
    from heads.predict import split_products

    split_rows, part = split_products(wh, model, ["product_id", "brand"])
    assert split_rows.num_rows == len(part) == 240 and split_rows.column_names == ["product_id", "brand"]
    assert set(part) == {"train", "val", "calibration", "test"} and len(set(split_rows["product_id"].to_pylist())) == 240
    import pyarrow.parquet as pq

    assert split_rows["product_id"].to_pylist() == pq.read_table(model.directory / "split.parquet")["product_id"].to_pylist()
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
