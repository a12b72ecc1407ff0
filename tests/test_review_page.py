"""The review page on a small trained shop: cards, filters, decisions, conflicts, photos, a real browser.

Endpoints are driven with FastAPI's TestClient against the app `vitrine review serve` runs; the
last test starts the real command (uvicorn on 127.0.0.1) and presses keys in headless chromium.
"""
from __future__ import annotations

import html
import io
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from PIL import Image

from catalogs import write_fashion
from flows.review_page.app import create_app
from reclass_shop import shop_rows
from warehouse import open_warehouse
from warehouse.ingest import ingest
from warehouse.review_queue import QueueFilter, review_queue
from warehouse.schemas import sql_literal
from warehouse.session import write_session
from warehouse.views import connect

CHROMIUM = Path("/usr/bin/chromium")
MARKUP = '<script>alert("x")</script> & <b>bold</b>'


@pytest.fixture
def shop(reclass_trained, tmp_path):
    """A private copy of the trained warehouse (and its photos), and the page's app on it."""
    tmp, s, _, _ = reclass_trained
    shutil.copytree(tmp / "wh", tmp_path / "wh")
    shutil.copytree(tmp / "cat", tmp_path / "cat")
    wh = open_warehouse(tmp_path / "wh")
    thr = s.score.reclass_threshold
    # the products point at the copied photos (same bytes, so the hashes ingest recorded hold), and
    # one candidate's title carries markup, as scraped titles do
    con = connect(wh, thr)
    markup_id = queue(wh, thr)[0]["product_id"]
    con.execute(f"COPY (SELECT * REPLACE (replace(image_path, '{tmp / 'cat'}', '{tmp_path / 'cat'}') AS image_path, "
                f"CASE WHEN product_id = {sql_literal(markup_id)} THEN title || ' ' || {sql_literal(MARKUP)} ELSE title END "
                f"AS title) FROM products) TO '{tmp_path / 'p.parquet'}' (FORMAT parquet)")
    os.replace(tmp_path / "p.parquet", wh.products_path)
    s = s.model_copy(update={"warehouse": s.warehouse.model_copy(update={"path": tmp_path / "wh"})})
    return s, wh, markup_id, TestClient(create_app(wh, reclass_threshold=thr))


def queue(wh, thr, **flt) -> list[tuple]:
    cols, rows = review_queue(connect(wh, thr), QueueFilter(**flt), 50)
    return [dict(zip(cols, r)) for r in rows]


def card_ids(text: str) -> list[tuple[str, str]]:
    """(product_id, target) of each card, in page order."""
    return [(m[0], m[2]) for m in re.findall(
        r'hx-vals=\'{"product_id": "([^"]*)", "suggested": "([^"]*)", "target": "([^"]*)"}\'', text)]


def decisions(wh, thr, pid):
    return connect(wh, thr).execute(
        "SELECT decision, final_label, decided_by FROM label_decisions WHERE product_id = ? ORDER BY decided_at",
        [pid]).fetchall()


def test_page_shows_the_queue_in_rank_order_with_all_a_card_needs(shop):
    s, wh, evil_id, client = shop
    thr = s.score.reclass_threshold
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    expected = queue(wh, thr)
    assert expected and card_ids(r.text) == [(c["product_id"], c["target"]) for c in expected]
    first = expected[0]
    for piece in (first["seller_label"], first["suggested_label"], f"{100 * first['confidence']:.0f}%", "out-of-fold",
                  f"#{first['rank']}", f'/image/{first["product_id"]}'):
        assert html.escape(str(piece)) in r.text, piece
    top = connect(wh, thr).execute("SELECT top_k FROM reclassification_candidates WHERE product_id = ? AND target = ?",
                                   [first["product_id"], first["target"]]).fetchone()[0]
    for alt in top:
        assert f"{alt['label']} <span class=\"conf\">{100 * alt['probability']:.0f}%</span>" in r.text
    # counts per target and decided today, the shortcuts, the vendored script (no CDN)
    n = connect(wh, thr).execute("SELECT count(*) FROM reclassification_candidates WHERE target = 'article_type'").fetchone()[0]
    assert re.search(rf"article_type <b>{n}</b>", r.text) and 'decided today <b id="decided-today">0</b>' in r.text
    for key in ("<kbd>a</kbd> accept", "<kbd>r</kbd> reject", "<kbd>u</kbd> undo", "<kbd>A</kbd> accept selected"):
        assert key in r.text
    assert '<script src="/static/htmx/htmx.min.js">' in r.text and "https://" not in r.text
    assert client.get("/static/htmx/htmx.min.js").text.startswith("var htmx=")
    # a title with markup is shown as text
    assert evil_id in {c["product_id"] for c in queue(wh, thr)}
    page = client.get("/", params={"q": "script"}).text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page and "<script>alert" not in page
    assert "&lt;b&gt;bold&lt;/b&gt;" in page and "<b>bold</b>" not in page


def test_filters_narrow_the_cards_and_bad_filters_are_refused(shop):
    s, wh, _, client = shop
    thr = s.score.reclass_threshold
    everything = queue(wh, thr)
    gender = client.get("/", params={"target": "gender"}).text
    assert card_ids(gender) == [(c["product_id"], c["target"]) for c in queue(wh, thr, target="gender")]
    seller = everything[0]["seller_label"]
    got = card_ids(client.get("/", params={"target": "article_type", "seller_label": seller, "min_confidence": "0.3",
                                           "max_confidence": "1"}).text)
    assert got == [(c["product_id"], c["target"]) for c in queue(wh, thr, target="article_type", seller_label=seller,
                                                                 min_confidence=0.3, max_confidence=1.0)]
    assert got and all(t == "article_type" for _, t in got)
    sku = everything[0]["title"].split()[0]
    assert [p for p, _ in card_ids(client.get("/", params={"q": sku.upper()}).text)] == [everything[0]["product_id"]]
    fragment = client.get("/", params={"target": "gender"}, headers={"HX-Request": "true", "HX-Target": "queue"})
    assert fragment.text.lstrip().startswith('<section id="counts" hx-swap-oob="true"') and "<html" not in fragment.text
    bad = client.get("/", params={"target": "colour"})
    assert bad.status_code == 400 and "unknown target &#39;colour&#39;" in bad.text
    bad = client.get("/", params={"min_confidence": "high"})
    assert bad.status_code == 400 and "min_confidence must be a number" in bad.text


def test_decisions_accept_reject_relabel_and_undo_leave_the_queue(shop):
    s, wh, _, client = shop
    thr = s.score.reclass_threshold
    a, b, c = queue(wh, thr, target="article_type")[:3]
    post = lambda **f: client.post("/decide", data={"decided_by": "ana", **f})  # noqa: E731
    r = post(product_id=a["product_id"], target="article_type", decision="accept", suggested=a["suggested_label"])
    assert r.status_code == 200 and 'class="card' not in r.text  # the card is swapped for nothing
    assert r.headers["HX-Trigger"] == "decided"  # on which the page fetches the counts
    assert 'decided today <b id="decided-today">1</b>' in client.get("/counts").text
    assert decisions(wh, thr, a["product_id"]) == [("accept", a["suggested_label"], "ana")]
    assert post(product_id=b["product_id"], target="article_type", decision="reject").status_code == 200
    assert decisions(wh, thr, b["product_id"]) == [("reject", b["seller_label"], "ana")]
    other = next(lab for lab in ("Tshirts", "Casual Shoes", "Handbags") if lab not in (c["seller_label"], c["suggested_label"]))
    assert post(product_id=c["product_id"], target="article_type", decision="relabel", label=other).status_code == 200
    assert decisions(wh, thr, c["product_id"]) == [("relabel", other, "ana")]
    left = card_ids(client.get("/").text)
    assert not {(x["product_id"], "article_type") for x in (a, b, c)} & set(left)
    # undo voids the newest decision of this reviewer: the card comes back
    r = client.post("/undo", data={"decided_by": "ana"})
    assert r.status_code == 200 and r.headers["HX-Trigger"] == "queue-changed" and "undone: undo relabel" in r.text
    assert (c["product_id"], "article_type") in card_ids(client.get("/").text)
    assert client.post("/undo", data={"decided_by": "nobody"}).status_code == 404
    # bad input: clear refusals, nothing written
    before = connect(wh, thr).execute("SELECT count(*) FROM label_decisions").fetchone()[0]
    for fields, status, msg in (
            (dict(product_id="nope", target="article_type", decision="accept"), 404, "unknown product &#39;nope&#39;"),
            (dict(product_id=c["product_id"], target="colour", decision="accept"), 400, "unknown target &#39;colour&#39;"),
            (dict(product_id=c["product_id"], target="article_type", decision="relabel", label="Spaceship"), 400,
             "unknown label &#39;Spaceship&#39;"),
            (dict(product_id=c["product_id"], target="article_type", decision="maybe"), 400, "is not one of")):
        r = post(**fields)
        assert r.status_code == status and msg in r.text, (fields, r.status_code, r.text)
    r = client.post("/decide", data=dict(product_id=c["product_id"], target="article_type", decision="accept"),
                    headers={"HX-Request": "true"})
    assert r.status_code == 400 and "enter your name" in r.text and r.headers["HX-Retarget"] == "#flash"
    assert connect(wh, thr).execute("SELECT count(*) FROM label_decisions").fetchone()[0] == before


def test_two_reviewers_lose_nothing_and_see_what_the_other_decided(shop):
    s, wh, _, ana = shop
    thr = s.score.reclass_threshold
    ben = TestClient(create_app(wh, reviewer="ben", reclass_threshold=thr))  # a second server on the same warehouse
    cards = queue(wh, thr)[:4]
    ana.get("/"), ben.get("/")
    first = cards[0]
    assert ben.post("/decide", data={"product_id": first["product_id"], "target": first["target"],
                                     "decision": "accept"}).status_code == 200
    r = ana.post("/decide", data={"product_id": first["product_id"], "target": first["target"], "decision": "reject",
                                  "decided_by": "ana", "suggested": first["suggested_label"]})
    assert r.status_code == 409 and "already decided by <b>ben</b>" in r.text and "card done" in r.text
    # batch: ana accepts three selected cards, one of which ben settled meanwhile
    ben.post("/decide", data={"product_id": cards[1]["product_id"], "target": cards[1]["target"], "decision": "reject"})
    picks = [f"{c['product_id']}\t{c['target']}" for c in cards[1:]]
    r = ana.post("/decide-batch", data={"pick": picks, "decided_by": "ana"})
    assert r.status_code == 200 and "accepted 2 suggestions; 1 already decided by another reviewer" in r.text
    assert r.text.count('hx-swap-oob="delete"') == 2 and "already decided by <b>ben</b>" in r.text
    rows = connect(wh, thr).execute("SELECT product_id, decided_by, decision FROM label_decisions "
                                    "WHERE decision <> 'undo' ORDER BY decided_at").fetchall()
    assert rows == [(first["product_id"], "ben", "accept"), (cards[1]["product_id"], "ben", "reject"),
                    (cards[2]["product_id"], "ana", "accept"), (cards[3]["product_id"], "ana", "accept")]
    assert ana.post("/decide-batch", data={"decided_by": "ana"}).status_code == 400


def test_decisions_do_not_wait_for_a_writer_and_the_queue_follows_the_warehouse(shop):
    s, wh, _, client = shop
    thr = s.score.reclass_threshold
    page = client.app.state.page
    client.get("/"), client.get("/")
    assert page.reader.builds == 1  # the flagged labels were read once
    first = queue(wh, thr)[0]
    with write_session(wh, "nightly", {}, lock_timeout_s=0):  # a nightly run holds the writer lock
        r = client.post("/decide", data={"product_id": first["product_id"], "target": first["target"],
                                         "decision": "accept", "decided_by": "ana"})
        assert r.status_code == 200
    assert page.reader.builds == 1
    # a published change (a re-ingest where the seller fixed a label) is picked up by the next request
    second = queue(wh, thr, target="article_type")[0]
    rows = shop_rows()
    for row in rows:
        if row[0] == second["product_id"]:
            row[4] = second["suggested_label"]
    cat = wh.root.parent / "cat"
    write_fashion(cat, rows)
    ingest(wh, cat, s.ingest)
    after = client.get("/").text
    assert page.reader.builds == 2
    old = f'"product_id": "{second["product_id"]}", "suggested": "{second["suggested_label"]}", "target": "article_type"'
    assert old not in after  # the label the reviewer would have accepted is the seller's now


def test_photos_only_of_products_in_the_warehouse(shop, tmp_path):
    s, wh, _, client = shop
    thr = s.score.reclass_threshold
    pid = queue(wh, thr)[0]["product_id"]
    r = client.get(f"/image/{pid}")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(r.content)).size[0] <= 160
    assert client.get(f"/image/{pid}", headers={"If-None-Match": r.headers["ETag"]}).status_code == 304
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0:the secret")
    for path in ("/image/nope", f"/image/..%2F..%2F..%2F{secret}", f"/image/{secret}", "/image/../../etc/passwd",
                 "/image/%2e%2e%2f%2e%2e%2fetc%2fpasswd", "/static/..%2F..%2Fapp.py", "/static/../app.py"):
        r = client.get(path)
        assert r.status_code == 404 and "root:" not in r.text and "def create_app" not in r.text, path
    # the photo file swapped for a link to a file outside the image store: not served
    (img,) = connect(wh, thr).execute("SELECT image_path FROM products WHERE product_id = ?", [pid]).fetchone()
    other = tmp_path / "outside.jpg"
    Image.new("RGB", (60, 80), (1, 2, 3)).save(other)
    page = client.app.state.page
    page._thumbs.clear()
    os.unlink(img)
    os.symlink(other, img)
    r = client.get(f"/image/{pid}")
    assert r.status_code == 404 and "changed since it was ingested" in r.text


def test_the_similar_products_hook_lists_what_it_is_given(shop):
    s, wh, _, _ = shop
    thr = s.score.reclass_threshold

    def same_seller_label(product_id: str, target: str) -> list[dict]:  # a stand-in until similar search exists
        rows = connect(wh, thr).execute(
            "SELECT product_id, title, seller_label FROM labels JOIN products USING (product_id) WHERE target = ? "
            "AND seller_label = (SELECT seller_label FROM labels WHERE product_id = ? AND target = ?) "
            "AND product_id <> ? ORDER BY product_id LIMIT 2", [target, product_id, target, product_id]).fetchall()
        return [{"product_id": p, "title": t, "label": lab} for p, t, lab in rows]

    text = TestClient(create_app(wh, reviewer="ana", reclass_threshold=thr, similar=same_seller_label)).get("/").text
    first = queue(wh, thr)[0]
    (near, _) = same_seller_label(first["product_id"], first["target"])
    assert text.count('class="similar"') == len(queue(wh, thr)) and f'/image/{near["product_id"]}" loading' in text
    assert 'class="similar"' not in TestClient(create_app(wh, reclass_threshold=thr)).get("/").text


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_in_a_real_browser_a_key_press_accepts_and_the_card_leaves(shop, tmp_path):
    if not CHROMIUM.exists():
        pytest.skip("no browser: /usr/bin/chromium is missing (.ci/setup-env installs Debian's chromium)")
    pw = pytest.importorskip("playwright.sync_api", reason="playwright is in the test extra")
    s, wh, _, _ = shop
    thr = s.score.reclass_threshold
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(s.model_dump(mode="json")))
    port = _free_port()
    env = {**os.environ, "VITRINE_WAREHOUSE": str(wh.root), "VITRINE_CONFIG": str(config)}
    server = subprocess.Popen([sys.executable, "-m", "flows.cli", "review", "serve", "--port", str(port), "--by", "eve"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                assert server.poll() is None and time.time() < deadline, server.stdout.read() if server.poll() else "no server"
                time.sleep(0.2)
        first, second = queue(wh, thr)[:2]
        with pw.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/")
            cards = page.locator("#queue article.card")
            cards.first.wait_for()
            # the first card takes the focus once htmx has bound the buttons (a key before that is lost)
            page.wait_for_function("document.activeElement.className === 'card'", timeout=10_000)
            page.keyboard.press("a")
            page.wait_for_function("n => document.querySelectorAll('#queue article.card').length === n",
                                   arg=cards.count() - 1, timeout=10_000)
            assert page.locator("#flash").inner_text().startswith(f"accept {first['product_id']} {first['target']}")
            # the counts follow: fetched by the page after the decision
            page.wait_for_function("document.getElementById('decided-today').textContent === '1'", timeout=10_000)
            # the next card took the focus: the next key acts on it
            assert second["product_id"] in page.evaluate("document.activeElement.innerText")
            page.reload()
            page.locator("#queue article.card").first.wait_for()
            shown = page.eval_on_selector_all("#queue article.card .pid", "els => els.map(e => e.textContent)")
            browser.close()
    finally:
        server.terminate()
        server.wait(30)
    assert decisions(wh, thr, first["product_id"]) == [("accept", first["suggested_label"], "eve")]
    assert first["product_id"] not in shown and second["product_id"] in shown
