"""Ingestion of raw catalogs into products and rejects, with real files and real DuckDB."""
from __future__ import annotations

import os
import time

import pyarrow.parquet as pq
import pytest

from catalogs import defective_fashion, fashion_rows, write_fashion, write_image, write_myntra
from warehouse import open_warehouse
from warehouse.ingest import ingest
from warehouse.settings import GenericSource, IngestSettings
from warehouse.sources import SourceError
from warehouse.views import connect


def products(wh):
    return {r["product_id"]: r for r in pq.read_table(wh.products_path).to_pylist()}


def test_every_row_lands_in_products_or_rejects(tmp_path):
    src = defective_fashion(tmp_path / "cat")
    wh = open_warehouse(tmp_path / "wh")
    s = ingest(wh, src)
    data_lines = len((src / "styles.csv").read_text().strip().splitlines()) - 1
    con = connect(wh)
    n_products = con.execute("SELECT count(*) FROM products").fetchone()[0]
    n_rejects = con.execute("SELECT count(*) FROM rejects").fetchone()[0]
    assert n_products + n_rejects == data_lines == s.rows
    assert (s.new, s.rejected, s.repaired) == (n_products, 4, 2)  # two titles had commas
    assert s.images_missing == 1 and s.images_unreadable == 1
    reasons = dict(con.execute("SELECT line, reason FROM rejects").fetchall())
    assert reasons[15] == "expected 10 fields, got 4"
    assert reasons[17] == "empty id"
    assert "year 'twenty'" in reasons[18]
    assert reasons[5].startswith("duplicate product_id '1003'") and "line 19" in reasons[5]
    raw = con.execute("SELECT raw FROM rejects WHERE line = 15").fetchone()[0]
    assert raw == "2002,Men,Apparel,Topwear"


def test_repairs_nulls_and_images(tmp_path):
    wh = open_warehouse(tmp_path / "wh")
    ingest(wh, defective_fashion(tmp_path / "cat"))
    p = products(wh)
    assert p["2001"]["title"] == "Myntra Men's Yes, its all about me White T-shirt"
    assert p["2001"]["article_type"] == "Shirts"
    assert p["2003"]["base_colour"] is None and p["2003"]["season"] is None and p["2003"]["year"] is None
    assert p["2005"]["title"] is None and p["2005"]["title_sha256"] is None
    assert p["1003"]["title"] == "Duplicate of 1003, later line wins" and p["1003"]["year"] == 2013
    assert p["1000"]["image_status"] == "missing" and p["1000"]["image_path"] is None and p["1000"]["image_sha256"] is None
    assert p["1001"]["image_status"] == "unreadable" and p["1001"]["title"] is not None
    assert p["1002"]["image_status"] == "ok" and len(p["1002"]["image_sha256"]) == 64
    assert len({r["content_hash"] for r in p.values()}) == len(p)


def test_reingest_is_idempotent_and_changes_update(tmp_path):
    src = write_fashion(tmp_path / "cat", fashion_rows(20))
    wh = open_warehouse(tmp_path / "wh")
    first = ingest(wh, src)
    assert first.new == 20
    before = products(wh)
    mtime = os.stat(wh.products_path).st_mtime_ns
    again = ingest(wh, src)
    assert (again.new, again.updated, again.unchanged) == (0, 0, 20)
    assert os.stat(wh.products_path).st_mtime_ns == mtime, "an unchanged re-ingest must not rewrite products"

    rows = fashion_rows(20)
    rows[3][-1] = "A brand new title"
    rows[4][3] = "Bottomwear"  # a label change: row updated, content unchanged
    rows.append(["5000", "Men", "Apparel", "Topwear", "Tshirts", "Red", "Summer", "2012", "Casual", "New product"])
    time.sleep(0.01)
    write_fashion(src, rows)
    write_image(src / "images" / "1005.jpg", (0, 255, 255), seed=99)
    s = ingest(wh, src)
    assert (s.new, s.updated, s.unchanged) == (1, 3, 17)
    after = products(wh)
    assert after["1003"]["title_sha256"] != before["1003"]["title_sha256"]
    assert after["1003"]["content_hash"] != before["1003"]["content_hash"]
    assert after["1004"]["content_hash"] == before["1004"]["content_hash"]
    assert after["1004"]["sub_category"] == "Bottomwear"
    assert after["1005"]["image_sha256"] != before["1005"]["image_sha256"]
    assert after["1005"]["title_sha256"] == before["1005"]["title_sha256"]
    for pid in ("1003", "1004", "1005"):
        assert after[pid]["updated_at"] > before[pid]["updated_at"]
        assert after[pid]["first_seen_at"] == before[pid]["first_seen_at"]
    assert after["1006"]["updated_at"] == before["1006"]["updated_at"]


def test_myntra_layout_with_multiline_quoted_descriptions(tmp_path):
    path = write_myntra(
        tmp_path / "products.csv",
        [
            {"ProductID": "1", "ProductName": "DKNY Unisex Bag", "ProductBrand": "DKNY", "Gender": "Unisex", "Price (INR)": "11745", "NumImages": "7", "Description": "line one\nline two, with comma", "PrimaryColor": " Black"},
            {"ProductID": "2", "ProductName": "Shirt", "ProductBrand": "X", "Gender": "Men", "Price (INR)": "cheap", "NumImages": "3", "Description": "d", "PrimaryColor": ""},
            {"ProductID": "3", "ProductName": "Jeans", "ProductBrand": "Y", "Gender": "Women", "Price (INR)": "899", "NumImages": "NA", "Description": "d", "PrimaryColor": ""},
        ],
    )
    wh = open_warehouse(tmp_path / "wh")
    s = ingest(wh, tmp_path)  # folder with products.csv → myntra preset
    assert s.preset == "myntra" and (s.new, s.rejected) == (2, 1)
    p = products(wh)
    assert p["1"]["description"] == "line one\nline two, with comma"
    assert p["1"]["price"] == 11745.0 and p["1"]["primary_colour"] == "Black" and p["1"]["image_status"] == "none"
    assert p["3"]["num_images"] is None and p["3"]["primary_colour"] is None
    rej = connect(wh).execute("SELECT line, reason FROM rejects").fetchall()
    assert rej == [(4, "price 'cheap' is not a number")]


def test_generic_source_with_column_mapping(tmp_path):
    (tmp_path / "imgs").mkdir()
    write_image(tmp_path / "imgs" / "a.jpg", (10, 200, 10))
    (tmp_path / "listings.csv").write_text("sku,name,photo,cat,cost\nA1,Green bag,a.jpg,Bags,12.5\nA2,Blue hat,,Hats,NA\nA3,Red,x.jpg,Hats,oops\n")
    cfg = IngestSettings(generic=GenericSource(id_column="sku", title_column="name", image_column="photo", image_dir=tmp_path / "imgs", columns={"cat": "category", "cost": "price"}, numeric_columns=["price"]))
    wh = open_warehouse(tmp_path / "wh")
    s = ingest(wh, tmp_path / "listings.csv", cfg)
    assert (s.new, s.rejected) == (2, 1)
    p = products(wh)
    assert p["A1"]["category"] == "Bags" and p["A1"]["price"] == 12.5 and p["A1"]["image_status"] == "ok"
    assert p["A2"]["image_status"] == "none" and p["A2"]["price"] is None


def test_unknown_layout_is_refused_clearly(tmp_path):
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(SourceError, match="ingest.generic"):
        ingest(open_warehouse(tmp_path / "wh"), tmp_path / "x.csv")
    with pytest.raises(SourceError, match="no styles.csv"):
        ingest(open_warehouse(tmp_path / "wh"), tmp_path)
