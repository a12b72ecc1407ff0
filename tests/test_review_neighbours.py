"""Similar products on the review cards: the nearest listings and how the catalog labels them."""
from __future__ import annotations

from collections import Counter

from fastapi.testclient import TestClient

from flows.review_page.app import create_app
from flows.review_page.neighbours import Neighbours
from reclass_shop import PLANTED
from warehouse import open_warehouse
from warehouse.review_queue import QueueFilter, review_queue
from warehouse.views import connect


def test_a_wrongly_labelled_listing_has_neighbours_labelled_with_its_true_type(reclass_trained):
    tmp, s, _, _ = reclass_trained
    wh = open_warehouse(tmp / "wh")
    near = Neighbours(wh, s.encoders, s.similar, k=5)
    cols, rows = review_queue(connect(wh, s.score.reclass_threshold), QueueFilter(target="article_type"), None)
    planted = [r[cols.index("product_id")] for r in rows if r[cols.index("product_id")] in PLANTED]
    assert planted
    for pid in planted:
        hits = near(pid, "article_type")
        assert len(hits) == 5 and pid not in {h["product_id"] for h in hits}
        assert [h["similarity"] for h in hits] == sorted((h["similarity"] for h in hits), reverse=True)
        (majority, _), = Counter(h["label"] for h in hits).most_common(1)
        assert majority == PLANTED[pid], (pid, hits)


def test_cards_list_the_neighbours_when_the_page_is_given_them(reclass_trained):
    tmp, s, _, _ = reclass_trained
    wh = open_warehouse(tmp / "wh")
    thr = s.score.reclass_threshold
    plain = TestClient(create_app(wh, reclass_threshold=thr)).get("/").text
    near = Neighbours(wh, s.encoders, s.similar, k=3)
    page = TestClient(create_app(wh, reclass_threshold=thr, similar=near)).get("/").text
    assert 'aria-label="similar products"' not in plain
    assert 'aria-label="similar products"' in page
    cols, rows = review_queue(connect(wh, thr), QueueFilter(), 1)
    first = dict(zip(cols, rows[0]))
    for h in near(first["product_id"], first["target"]):
        assert f'/image/{h["product_id"]}' in page
