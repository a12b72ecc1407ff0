"""Similar products, near-duplicate listings and product groups on a small shop whose answers are known.

Titles go through a hashed-words encoder (no weights: a reworded title with the same words has
cosine 1, any two other titles of the shop share at most three of four words); photos through the
tiny real timm model. One listing, 9001, is planted as a re-listing of 1003: its photo re-saved
smaller at a lower JPEG quality, its title's words reordered.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
import yaml
from PIL import Image

from catalogs import fashion_rows, write_fashion
from conftest_features import tiny_timm_ckpt  # noqa: F401  (fixture)
from features.encode import encode
from features.search import search
from flows.settings import Settings, write_session_for
from warehouse import open_warehouse
from warehouse.ingest import ingest

N = 24


def shop_settings(tmp: Path, timm_ckpt: Path, **similar) -> Settings:
    return Settings.model_validate({
        "warehouse": {"path": str(tmp / "wh"), "lock_timeout_s": 0},
        "encoders": {
            "image": {"family": "timm", "model": "test_efficientnet", "checkpoint": str(timm_ckpt), "input": "image"},
            "title": {"family": "hashing", "model": "word:1-1:1024", "input": "title"},
        },
        "encode": {"batch_size": 16, "num_workers": 0, "threads": 1, "chunk_rows": 32},
        "train": {"features": ["image", "title"], "classification_targets": ["article_type"], "regression_targets": [],
                  "heads": ["mlp"], "min_class_count": 2, "label_folds": 0, "mlp": {"max_epochs": 3, "patience": 2, "hidden": 16}},
        "similar": {"encoders": {"image": 1.0, "title": 1.0},
                    "duplicates": {"image_threshold": 0.9, "title_threshold": 0.9}, **similar},
    })


def relist(src: Path, pid: str, new_pid: str, size=(54, 72), quality=60) -> None:
    """A re-listing's photo: the original resized and re-compressed."""
    with Image.open(src / "images" / f"{pid}.jpg") as im:
        im.resize(size).save(src / "images" / f"{new_pid}.jpg", "JPEG", quality=quality)


def shop_rows_with(extra: list[list[str]]) -> list[list[str]]:
    return fashion_rows(N) + extra


def reworded(rows, pid: str, new_pid: str) -> list[str]:
    r = list(next(r for r in rows if r[0] == pid))
    words = r[9].split()
    r[0], r[9] = new_pid, " ".join(words[2:] + words[:2]).lower()  # same words, other order and case
    return r


def refresh(s: Settings, src: Path, full_snapshot: bool = False) -> None:
    """Ingest and encode, as `vitrine ingest` + `vitrine encode` do (then the catalog is rebuilt)."""
    wh = open_warehouse(s.warehouse.path)
    with write_session_for(s, "ingest", {}):
        ingest(wh, src, s.ingest, full_snapshot=full_snapshot)
        encode(wh, s.encoders, s.encode, progress=False)


@pytest.fixture
def shop(tmp_path, tiny_timm_ckpt):
    s = shop_settings(tmp_path, tiny_timm_ckpt)
    src = tmp_path / "cat"
    rows = fashion_rows(N)
    write_fashion(src, rows)
    relist(src, "1003", "9001")
    write_fashion(src, rows + [reworded(rows, "1003", "9001")])
    refresh(s, src)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(s.model_dump(mode="json")))
    return s, src, rows, cfg


def ids(result) -> list[str]:
    return [h.product_id for h in result.hits]


def test_similar_ranks_the_relisting_first_and_filters_before_ranking(shop, cli):
    s, src, rows, cfg = shop
    p = cli("similar", "--product", "1003", "-k", "3", "--format", "json", config=cfg)
    out = json.loads(p.stdout)
    assert out[0]["product_id"] == "9001" and out[0]["title_sim"] == pytest.approx(1.0, abs=1e-5)
    assert out[0]["image_sim"] >= 0.9 and out[0]["title"] == reworded(rows, "1003", "9001")[9]
    assert out[0]["labels"] == "Tshirts"  # the labels in force of train.classification_targets (article_type)
    assert [r["similarity"] for r in out] == sorted((r["similarity"] for r in out), reverse=True)
    assert "exact search" in p.stderr

    # a text through the title encoder: both listings with exactly these words, then the rest
    wh = open_warehouse(s.warehouse.path)
    r = search(wh, s.encoders, s.similar, title="tshirts BRAND3 black men", k=4)
    assert r.encoders == ["title"] and set(ids(r)[:2]) == {"1003", "9001"} and r.hits[2].similarity < 0.9
    # a photo through the image encoder: the very photo of 1003 is its own nearest
    r = search(wh, s.encoders, s.similar, image=src / "images" / "1003.jpg", k=2)
    assert r.encoders == ["image"] and ids(r)[0] == "1003" and r.hits[0].similarity == pytest.approx(1.0, abs=1e-4)
    # --where keeps only what passes, before ranking: the re-listing is a Men's product, gone here
    r = search(wh, s.encoders, s.similar, product="1003", k=5, where="gender = 'Women'")
    women = {x[0] for x in rows if x[1] == "Women"}
    assert len(r.hits) == 5 and set(ids(r)) <= women
    # an encoder named on the command line ranks by that one alone
    r = search(wh, s.encoders, s.similar, product="1003", names=["title"], k=1)
    assert ids(r) == ["9001"] and list(r.hits[0].per_encoder) == ["title"]


def test_bad_queries_get_one_clear_line(shop, cli, tmp_path):
    s, src, rows, cfg = shop
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not a jpeg at all")
    cases = [
        (["--image", str(bad)], "cannot be decoded"),
        (["--image", str(tmp_path / "nope.jpg")], "does not exist"),
        (["--title", "   "], "the query text is empty"),
        (["--product", "424242"], "'424242' is not in the catalog"),
        (["--title", "red shirt", "--encoder", "image"], "'image' encodes images, not titles"),
        (["--product", "1003", "--where", "no_such_column = 1"], "not a valid condition on products"),
        (["--product", "1003", "--encoder", "nope"], "unknown encoder"),
        (["--product", "1003", "--title", "x"], "exactly one of"),
    ]
    for args, msg in cases:
        p = cli("similar", *args, config=cfg, check=False)
        assert p.returncode == 2 and msg in p.stderr, (args, p.stderr)
        assert "Traceback" not in p.stderr

    # a product without the vector asked for is named, with the encoder
    (src / "images" / "1005.jpg").unlink()
    refresh(s, src)
    p = cli("similar", "--product", "1005", "--encoder", "image", config=cfg, check=False)
    assert p.returncode == 2 and "product '1005' has no current vector of encoder 'image'" in p.stderr
    # with the default encoders it is ranked by the one it has, and says so
    p = cli("similar", "--product", "1005", "--format", "json", config=cfg)
    assert "no current image vector: ranked by title only" in p.stderr and len(json.loads(p.stdout)) == 5


def test_sql_macros_from_a_fresh_connection_on_the_warehouse_file(shop):
    s, src, rows, cfg = shop
    wh = open_warehouse(s.warehouse.path)
    expected = search(wh, s.encoders, s.similar, product="1003", k=5)
    con = duckdb.connect(str(wh.db_path), read_only=True)
    got = con.execute("SELECT product_id, similarity, title FROM similar_products('1003', 5)").fetchall()
    assert [g[0] for g in got] == ids(expected)
    assert [g[1] for g in got] == pytest.approx([h.similarity for h in expected.hits], abs=1e-5)
    title_only = con.execute("SELECT product_id, similarity FROM similar_products_title('1003', 1)").fetchall()
    assert title_only[0][0] == "9001" and title_only[0][1] == pytest.approx(1.0, abs=1e-5)
    assert con.execute("SELECT encoder, weight FROM similar_macros ORDER BY 1").fetchall() == [("image", 1.0), ("title", 1.0)]
    con.close()

    duckdb_cli = shutil.which("duckdb", path=str(Path(sys.executable).parent))
    if duckdb_cli:  # the plain `duckdb` command a user opens the file with
        p = subprocess.run([duckdb_cli, "-readonly", "-csv", "-noheader", str(wh.db_path)],
                           input="SELECT product_id FROM similar_products('1003', 1);", capture_output=True, text=True, timeout=120)
        assert p.returncode == 0 and p.stdout.strip() == "9001", p.stderr


def test_index_agrees_with_exact_and_follows_changes_and_deletes(tmp_path, tiny_timm_ckpt, cli):
    s = shop_settings(tmp_path, tiny_timm_ckpt, index={"mode": "on", "nlist": 3, "nprobe": 3, "candidates": 10})
    exact = s.model_copy(deep=True)
    exact.similar.index.mode = "off"
    src = tmp_path / "cat"
    rows = fashion_rows(N)
    write_fashion(src, rows)
    refresh(s, src)
    wh = open_warehouse(s.warehouse.path)

    r = search(wh, s.encoders, s.similar, product="1004", k=3)
    assert r.mode == "exact" and "no index built" in " ".join(r.messages)  # no index yet: exact, with a message
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(s.model_dump(mode="json")))
    cli("index", "build", config=cfg)

    def agree(pid: str, **kw) -> list[str]:
        a = search(wh, s.encoders, s.similar, product=pid, k=4, **kw)
        b = search(wh, exact.encoders, exact.similar, product=pid, k=4, **kw)
        assert a.mode == "index" and b.mode == "exact"
        assert ids(a) == ids(b)
        assert [h.similarity for h in a.hits] == pytest.approx([h.similarity for h in b.hits], abs=1e-5)
        return ids(a)

    for pid in ("1000", "1003", "1010", "1023"):
        agree(pid)
    agree("1003", where="gender = 'Women'")

    # an edit, a delete and a new listing: the index is stale until it is brought up to date
    rows[3][9] = "Brand9 Unisex Gold Watches"
    rows = [r for r in rows if r[0] != "1010"]
    rows.append(["1100", "Men", "Apparel", "Topwear", "Tshirts", "Red", "Summer", "2012", "Casual", "Brand1 Men Red Tshirts"])
    write_fashion(src, rows)
    refresh(s, src, full_snapshot=True)
    r = search(wh, s.encoders, s.similar, product="1004", k=3)
    assert r.mode == "exact" and "stale" in " ".join(r.messages)

    from features.vector_index import build_index, load_index
    from warehouse.tables import read_products

    products = read_products(wh, ["product_id", "image_sha256", "title_sha256"])
    gen_before = load_index(wh, exact_id(s, "title")).meta["generation"]
    rep = build_index(wh, "title", s.encoders["title"], s.similar.index, products)
    assert (rep.added, rep.removed, rep.rebuilt, rep.vectors) == (2, 2, False, N)  # 1003 changed, 1010 gone, 1100 new
    rep = build_index(wh, "image", s.encoders["image"], s.similar.index, products)
    assert (rep.added, rep.removed, rep.rebuilt) == (1, 1, False)  # the photo of 1003 did not change
    assert load_index(wh, exact_id(s, "title")).meta["generation"] != gen_before
    again = build_index(wh, "title", s.encoders["title"], s.similar.index, products)
    assert (again.added, again.removed, again.written) == (0, 0, False)

    seen = set()
    for pid in ("1000", "1003", "1100", "1023"):
        seen |= set(agree(pid))
    assert "1010" not in seen
    r = search(wh, s.encoders, s.similar, title="brand9 unisex gold watches", k=1)
    assert r.mode == "index" and ids(r) == ["1003"]
    assert cli("index", "status", config=cfg).stdout.count("up to date") == 2


def exact_id(s, name):
    from features.identity import encoder_id

    return encoder_id(s.encoders[name])


def test_duplicates_compare_only_new_and_changed_listings(shop, cli):
    s, src, rows, cfg = shop
    wh = open_warehouse(s.warehouse.path)
    p = cli("duplicates", "--format", "json", config=cfg)
    assert f"compared {N + 1} new or changed" in p.stderr
    pairs = json.loads(p.stdout)
    assert [(x["product_a"], x["product_b"]) for x in pairs] == [("1003", "9001")]
    assert pairs[0]["image_similarity"] >= 0.9 and pairs[0]["title_similarity"] == pytest.approx(1.0, abs=1e-5)

    p = cli("duplicates", config=cfg)
    assert "compared 0 new or changed" in p.stderr and "0 new pairs" in p.stderr

    # a second re-listing, of 1010: only it is compared, against the whole catalog
    relist(src, "1010", "9002", size=(60, 80), quality=50)
    all_rows = rows + [reworded(rows, "1003", "9001"), reworded(rows, "1010", "9002")]
    write_fashion(src, all_rows)
    refresh(s, src)
    p = cli("duplicates", config=cfg)
    assert "compared 1 new or changed" in p.stderr and "1 new pairs" in p.stderr

    def view():
        con = duckdb.connect(str(wh.db_path), read_only=True)
        out = con.execute("SELECT product_a, product_b FROM duplicate_pairs ORDER BY 1").fetchall()
        con.close()
        return out

    assert view() == [("1003", "9001"), ("1010", "9002")]
    # the re-listing's title edited away from the original: the pair retires, the new content is compared
    all_rows[-2][9] = "Completely Different Words Here"
    write_fashion(src, all_rows)
    refresh(s, src)
    p = cli("duplicates", config=cfg)
    assert "compared 1 new or changed" in p.stderr and "0 new pairs" in p.stderr
    assert view() == [("1010", "9002")]


def test_groups_write_product_groups_and_a_summary(shop, cli):
    s, src, rows, cfg = shop
    wh = open_warehouse(s.warehouse.path)
    p = cli("groups", "--k", "3", "--encoder", "title", "--format", "json", config=cfg)
    summary = json.loads(p.stdout)
    assert sum(g["size"] for g in summary) == N + 1 and len(summary) == 3
    assert {"article_type", "article_type_share", "example_titles", "mean_distance"} <= set(summary[0])
    assert all(1 <= len(g["example_titles"]) <= 3 for g in summary)
    cli("groups", "--k", "4", config=cfg)
    con = duckdb.connect(str(wh.db_path), read_only=True)
    (runs, k, n), = con.execute("SELECT count(DISTINCT run_id), max(k), count(*) FROM product_groups").fetchall()
    assert (runs, k, n) == (1, 4, N + 1)  # the latest run only
    assert con.execute("SELECT count(DISTINCT run_id) FROM product_groups_history").fetchone()[0] == 2
    con.close()
    p = cli("groups", "--k", "100", config=cfg, check=False)
    assert p.returncode == 2 and "fewer than k=100" in p.stderr


@pytest.mark.usefixtures("prefect_harness")
def test_nightly_runs_the_index_and_duplicates_steps_when_the_config_asks(tmp_path, tiny_timm_ckpt):
    from flows.flows import run_flow, summary_markdown

    s = shop_settings(tmp_path, tiny_timm_ckpt, index={"mode": "on", "nlist": 2, "nprobe": 2})
    s.similar.duplicates.nightly = True
    s.runner.retries = 0
    src = tmp_path / "cat"
    rows = fashion_rows(N)
    write_fashion(src, rows)
    relist(src, "1003", "9001")
    write_fashion(src, rows + [reworded(rows, "1003", "9001")])
    run_flow("ingest", s, source=str(src))
    run_flow("encode", s)
    run_flow("train", s)
    first = run_flow("nightly", s, source=str(src))
    assert first["duplicates"]["compared"] == N + 1 and first["duplicates"]["pairs"] == 1
    assert first["index"]["title"]["vectors"] == N + 1 and first["index"]["title"]["rebuilt"]
    assert "| duplicates |" in summary_markdown(first)
    second = run_flow("nightly", s, source=str(src))
    assert second["duplicates"]["compared"] == 0 and second["index"]["title"]["written"] is False
    off = shop_settings(tmp_path, tiny_timm_ckpt, index={"mode": "off"})
    third = run_flow("nightly", off, source=str(src))
    assert "duplicates" not in third and "index" not in third  # both off by default / by config


def test_similar_encoders_default_to_what_the_config_has_and_explicit_names_are_checked():
    only_title = {"encoders": {"title": {"family": "hashing", "model": "word:1-1:64", "input": "title"}},
                  "train": {"features": ["title"]}}
    assert Settings.model_validate(only_title).similar.encoders == {"title": 1.0}
    with pytest.raises(Exception, match=r"similar.encoders names \['image'\]"):
        Settings.model_validate({**only_title, "similar": {"encoders": {"image": 1.0}}})
    with pytest.raises(Exception, match="must be positive"):
        Settings.model_validate({**only_title, "similar": {"encoders": {"title": 0}}})


def test_an_encoder_of_catalog_columns_is_refused_by_name(tmp_path):
    from features.settings import EncoderSpec
    from features.similar import QueryError, read_vector_set
    from warehouse.tables import read_products

    wh = open_warehouse(tmp_path / "wh")
    spec = EncoderSpec(family="columns", model="cat=brand;num=", input="columns")
    with pytest.raises(QueryError, match="'cols' encodes catalog columns"):
        read_vector_set(wh, "cols", spec, read_products(wh))
