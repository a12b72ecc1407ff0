"""The review page: the reclassification queue as cards a catalog manager decides with one key.

Server-rendered (FastAPI + Jinja2, autoescaped) with the vendored htmx swapping single cards, so
there is no build step and nothing is fetched from the network. The queue is read through
`warehouse.review_queue` (the query `vitrine review` lists with, here through a `QueueReader`
that keeps the flagged labels in memory between warehouse changes); every decision is written by
`warehouse.decisions` (`decide`, `undo_last`), exactly as the CLI writes it, without the writer
lock, so the page never waits for a nightly run or a training job.
"""
from __future__ import annotations

import hashlib
import io
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from threading import Lock
from urllib.parse import urlencode

from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from warehouse.decisions import (DecisionError, NotInQueue, UnknownProduct, decide, decision_in_force, known_labels,
                                 undo_last)
from warehouse.layout import Warehouse
from warehouse.schemas import OTHER_LABEL
from warehouse.review_queue import QUEUE_COLUMNS, QueueFilter, QueueReader, review_queue
from warehouse.views import DEFAULT_RECLASS_THRESHOLD, label_columns

HERE = Path(__file__).resolve().parent
CARD_COLUMNS = (*QUEUE_COLUMNS, "top_k")
FILTER_KEYS = ("target", "seller_label", "suggested_label", "min_confidence", "max_confidence", "q")
THUMB_PX = 160
THUMB_CACHE = 512  # thumbnails kept in memory (a few KB each)

# Similar products on each card (optional, `review.similar_k`): `create_app(similar=...)` takes a
# function of (product_id, target) returning the nearest products as dicts with product_id, title
# and label, which the card lists under the labels; `neighbours.Neighbours` is the one serve uses.
SimilarFn = Callable[[str, str], list[dict]]


def card_id(product_id: str, target: str) -> str:
    """An HTML id for a (product, target): ids and targets may hold any character."""
    return "c-" + hashlib.sha1(f"{product_id}\t{target}".encode()).hexdigest()[:16]


class PageError(Exception):
    """A request the page refuses, with the status and the message the reviewer sees."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def _thumbnail(path: str, sha256: str | None) -> bytes:
    """A small JPEG of the product photo ingest hashed, or PageError.

    Only the file the warehouse recorded for the product is read, and only if its bytes still
    hash to what ingest saw: a file replaced since (or a link swapped to point elsewhere) is not
    served, and what goes out is always a re-encoded image, never a file's raw bytes.
    """
    from PIL import Image

    if not path or "://" in path:
        raise PageError(404, "this product has no photo in the catalog's image store")
    try:
        data = Path(path).read_bytes()
    except OSError:
        raise PageError(404, "the product's photo is missing from the catalog's image store") from None
    if sha256 is None or hashlib.sha256(data).hexdigest() != sha256:
        raise PageError(404, "the product's photo changed since it was ingested: re-ingest the catalog")
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.draft("RGB", (THUMB_PX, THUMB_PX))
            im = im.convert("RGB")
            im.thumbnail((THUMB_PX, THUMB_PX))
            buf = io.BytesIO()
            im.save(buf, "JPEG", quality=85)
    except Exception:  # PIL raises many types for broken files; all mean "not an image"
        raise PageError(404, "the product's photo cannot be read") from None
    return buf.getvalue()


def _float(name: str, value: str | None) -> float | None:
    if value is None or value.strip() == "":
        return None
    try:
        return float(value)
    except ValueError:
        raise PageError(400, f"{name} must be a number, got {value!r}") from None


class ReviewPage:
    """What the page keeps between requests: the queue reader, label lists and thumbnails."""

    def __init__(self, wh: Warehouse, reviewer: str | None, reclass_threshold: float, page_size: int,
                 similar: SimilarFn | None = None):
        self.wh, self.reviewer, self.page_size, self.similar = wh, reviewer, page_size, similar
        self.reclass_threshold = reclass_threshold
        self.reader = QueueReader(wh, reclass_threshold)
        self._labels: dict[tuple, list[str]] = {}
        self._thumbs: OrderedDict[str, bytes] = OrderedDict()
        self._lock = Lock()

    def targets(self) -> list[str]:
        return label_columns(self.wh)

    def labels(self, con, target: str) -> list[str]:
        """Known labels of a target, read once per warehouse state."""
        key = (self.reader.state(), target)
        if key not in self._labels:
            self._labels = {k: v for k, v in self._labels.items() if k[0] == key[0]}
            self._labels[key] = known_labels(self.wh, target, con)
        return self._labels[key]

    def queue_filter(self, p: dict) -> QueueFilter:
        target = p.get("target") or None
        if target is not None and target not in self.targets():
            raise PageError(400, f"unknown target {target!r}: use one of {', '.join(self.targets()) or 'none'}")
        flt = QueueFilter(target=target, seller_label=p.get("seller_label") or None,
                          suggested_label=p.get("suggested_label") or None,
                          min_confidence=_float("min_confidence", p.get("min_confidence")),
                          max_confidence=_float("max_confidence", p.get("max_confidence")), text=p.get("q") or None)
        return flt

    def _card(self, c: dict) -> dict:
        c["id"] = card_id(c["product_id"], c["target"])
        # the catch-all class names no concrete label: not a label a reviewer can give
        c["top_k"] = [a for a in (c["top_k"] or []) if a["label"] != OTHER_LABEL]
        if self.similar is not None:
            c["similar"] = self.similar(c["product_id"], c["target"])
        return c

    def cards(self, con, flt: QueueFilter, offset: int) -> list[dict]:
        cols, rows = review_queue(con, flt, self.page_size, offset, columns=CARD_COLUMNS)
        return [self._card(dict(zip(cols, r))) for r in rows]

    def card(self, con, product_id: str, target: str) -> dict | None:
        cols = ", ".join(CARD_COLUMNS)
        cur = con.execute(f"SELECT {cols} FROM reclassification_candidates WHERE product_id = ? AND target = ?",
                          [product_id, target])
        row = cur.fetchone()
        if row is None:
            return None
        return self._card(dict(zip([d[0] for d in cur.description], row)))

    def counts(self, con, flt: QueueFilter | None = None) -> dict:
        per_target = dict(con.execute(
            "SELECT target, count(*) FROM reclassification_candidates GROUP BY target ORDER BY target").fetchall())
        today = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
        decided = con.execute("SELECT count(*), count(*) FILTER (WHERE decided_by = ?) FROM effective_decisions "
                              "WHERE decided_at >= ?", [self.reviewer or "", today]).fetchone()
        matching = None
        if flt is not None:
            where, params = flt.where()
            matching = con.execute(f"SELECT count(*) FROM reclassification_candidates{where}", params).fetchone()[0]
        return {"per_target": per_target, "total": sum(per_target.values()), "decided_today": decided[0],
                "matching": matching}

    def thumbnail(self, con, product_id: str) -> bytes:
        row = con.execute("SELECT image_path, image_status, image_sha256 FROM products WHERE product_id = ?",
                          [product_id]).fetchone()
        if row is None:
            raise PageError(404, f"unknown product {product_id!r}: it is not in the warehouse's products")
        path, status, sha = row
        if status != "ok":
            raise PageError(404, f"product {product_id!r} has no usable photo (image status: {status})")
        with self._lock:
            hit = self._thumbs.get(sha)
        if hit is not None:
            return hit
        data = _thumbnail(path, sha)
        with self._lock:
            self._thumbs[sha] = data
            while len(self._thumbs) > THUMB_CACHE:
                self._thumbs.popitem(last=False)
        return data


def create_app(wh: Warehouse, reviewer: str | None = None, reclass_threshold: float = DEFAULT_RECLASS_THRESHOLD,
               page_size: int = 50, similar: SimilarFn | None = None) -> FastAPI:
    """The page's app for one warehouse; `reviewer` (config or --by) fills decided_by unless the page sets it.

    `similar`: the optional similar-products hook (see SimilarFn); without it cards show none.
    """
    page = ReviewPage(wh, reviewer, reclass_threshold, page_size, similar)
    app = FastAPI(title="vitrine review", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.page = page
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.filters["pct"] = lambda x: "–" if x is None else f"{100 * x:.0f}%"
    templates.env.globals["source_name"] = {"out_of_fold": "out-of-fold", "current_model": "current model"}

    def render(request: Request, name: str, status: int = 200, headers: dict | None = None, **ctx) -> HTMLResponse:
        return templates.TemplateResponse(request, name, {"page": page, **ctx}, status_code=status, headers=headers)

    @app.exception_handler(PageError)
    def page_error(request: Request, exc: PageError) -> HTMLResponse:
        headers = {"HX-Retarget": "#flash", "HX-Reswap": "innerHTML"} if request.headers.get("HX-Request") else None
        return render(request, "_flash.html", exc.status, headers, message=exc.message, error=True)

    @app.exception_handler(DecisionError)
    def decision_error(request: Request, exc: DecisionError) -> HTMLResponse:
        return page_error(request, PageError(400, str(exc)))

    def who(decided_by: str | None) -> str:
        name = (decided_by or "").strip() or page.reviewer
        if not name:
            raise PageError(400, "enter your name in the reviewer field first: it is stored with each decision")
        return name

    @app.get("/", response_class=HTMLResponse)
    def queue(request: Request, offset: int = 0) -> HTMLResponse:
        params = dict(request.query_params)
        flt = page.queue_filter(params)
        con = page.reader.cursor()
        cards = page.cards(con, flt, max(0, offset))
        filters = {k: params[k] for k in FILTER_KEYS if params.get(k)}
        more = None
        if len(cards) == page.page_size:
            more = "/?" + urlencode({**filters, "offset": max(0, offset) + page.page_size})
        ctx = dict(cards=cards, more=more, filters=filters,
                   labels={t: page.labels(con, t) for t in sorted({c["target"] for c in cards})})
        hx_target = request.headers.get("HX-Target")
        if hx_target == "more":
            return render(request, "_cards.html", **ctx)
        counts = page.counts(con, flt if filters else None)
        if hx_target == "queue":
            return render(request, "_queue.html", counts=counts, oob=True, **ctx)
        return render(request, "page.html", counts=counts, targets=page.targets(), **ctx)

    @app.post("/decide", response_class=HTMLResponse)
    def decide_one(request: Request, product_id: str = Form(...), target: str = Form(...),
                   decision: str = Form(...), label: str | None = Form(None), suggested: str | None = Form(None),
                   decided_by: str | None = Form(None)) -> HTMLResponse:
        """One decision; the answer removes the card (200), or shows who decided it first (409).

        The counts are not recomputed here: the answer fires `decided`, on which the page
        fetches `/counts`, so the card leaves as soon as the decision is written.
        """
        name = who(decided_by)
        con = page.reader.cursor()
        if decision == "relabel" and page.card(con, product_id, target) is None:
            decide_check(con, product_id, target)  # unknown product or target: 4xx
            return conflict(request, con, product_id, target, None)
        try:
            row = decide(wh, product_id, target, decision, label=label or None, decided_by=name,
                         reclass_threshold=page.reclass_threshold, con=con, seen_suggestion=suggested or None)
        except NotInQueue:
            return conflict(request, con, product_id, target, page.card(con, product_id, target))
        except UnknownProduct as e:
            raise PageError(404, str(e)) from None
        return render(request, "_decided.html", headers={"HX-Trigger": "decided"}, removed=[],
                      message=f"{row['decision']} {row['product_id']} {row['target']}: "
                              f"{row['seller_label']} → {row['final_label']}")

    def decide_check(con, product_id: str, target: str) -> None:
        if target not in page.targets():
            raise PageError(400, f"unknown target {target!r}: use one of {', '.join(page.targets()) or 'none'}")
        if con.execute("SELECT 1 FROM products WHERE product_id = ?", [product_id]).fetchone() is None:
            raise PageError(404, f"unknown product {product_id!r}: it is not in the warehouse's products")

    @app.get("/counts", response_class=HTMLResponse)
    def counts(request: Request) -> HTMLResponse:
        filters = {k: request.query_params[k] for k in FILTER_KEYS if request.query_params.get(k)}
        flt = page.queue_filter(filters)
        return render(request, "_counts.html", counts=page.counts(page.reader.cursor(), flt if filters else None))

    def conflict(request: Request, con, product_id: str, target: str, fresh: dict | None) -> HTMLResponse:
        """409: the card is no longer the one the reviewer saw (decided by someone, or re-suggested)."""
        con = page.reader.cursor()  # decisions written since the request began
        d = decision_in_force(con, product_id, target)
        gone = {"product_id": product_id, "target": target, "id": card_id(product_id, target)}
        return render(request, "_card.html", 409, card=fresh or gone, decided=d if fresh is None else None,
                      changed=fresh is not None, labels={target: page.labels(con, target)} if fresh else {})

    @app.post("/decide-batch", response_class=HTMLResponse)
    def decide_batch(request: Request, pick: list[str] = Form(default_factory=list),
                     decided_by: str | None = Form(None)) -> HTMLResponse:
        name = who(decided_by)
        if not pick:
            raise PageError(400, "select cards first (x on a card, or its checkbox), then accept them together")
        con = page.reader.cursor()
        rows, removed, skipped = [], [], []
        for value in dict.fromkeys(pick):  # a card selected twice is decided once
            product_id, _, target = value.partition("\t")
            try:
                rows.append(decide(wh, product_id, target, "accept", decided_by=name,
                                   reclass_threshold=page.reclass_threshold, con=con))
                removed.append(card_id(product_id, target))
            except NotInQueue:
                skipped.append((product_id, target, decision_in_force(con, product_id, target)))
        msg = f"accepted {len(rows)} suggestion{'s' if len(rows) != 1 else ''}"
        if skipped:
            msg += f"; {len(skipped)} already decided by another reviewer, left as they were"
        return render(request, "_decided.html", headers={"HX-Trigger": "decided"}, removed=removed, message=msg,
                      skipped=[{"id": card_id(p, t), "product_id": p, "target": t, "decided": d} for p, t, d in skipped])

    @app.post("/undo", response_class=HTMLResponse)
    def undo(request: Request, decided_by: str | None = Form(None)) -> HTMLResponse:
        name = who(decided_by)
        row = undo_last(wh, name)
        if row is None:
            raise PageError(404, f"nothing to undo: {name} has no decision in force")
        return render(request, "_decided.html", removed=[], headers={"HX-Trigger": "queue-changed"},
                      message=f"undone: {row['note']} on {row['product_id']} {row['target']}")

    @app.get("/image/{product_id:path}")
    def image(request: Request, product_id: str) -> Response:
        data = page.thumbnail(page.reader.cursor(), product_id)
        etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304)
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600", "ETag": etag})

    @app.get("/healthz")
    def healthz() -> dict:
        return {"ok": True}

    return app
