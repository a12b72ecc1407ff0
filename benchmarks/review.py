"""The review page at 100,000 candidates: first page of 50 cards, and a decision round-trip.

The warehouse is synthetic but written through the warehouse's own schemas and writers
(`write_parquet_atomic` for products and a model's `label_scores`, `replace_models` for the
registry, `write_predictions` for a scoring run), so the views read exactly what training and
scoring would leave: 62,500 products with five label columns, one current model with
out-of-fold label scores for two targets (125,000 rows, 100,000 of them flagged issues whose
suggestion differs from the seller's label) and its predictions for every product and target
(312,500 rows, agreeing with the seller where no out-of-fold score exists, so the candidates are
exactly the flagged ones). Product photos are a dozen small JPEGs shared by all products, hashed
as ingest hashes them.

Timed through a real uvicorn server on 127.0.0.1 (HTTP GET of the page, HTTP POST of an accept
that answers with the card gone), medians over repetitions. Goals: first page < 300 ms,
decision round-trip < 100 ms.

    python benchmarks/review.py --work /tmp/vreview
"""
from __future__ import annotations

import argparse
import hashlib
import shutil
import socket
import statistics
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import command_line, stamp, write_section  # noqa: E402

from warehouse import schemas  # noqa: E402
from warehouse.atomic import write_parquet_atomic  # noqa: E402
from warehouse.layout import Warehouse, open_warehouse  # noqa: E402
from warehouse.tables import replace_models, write_predictions  # noqa: E402

T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)
MODEL = "mlp-bench"
LABELS = {
    "article_type": [f"Type{i:02d}" for i in range(40)],
    "base_colour": [f"Colour{i:02d}" for i in range(25)],
    "gender": ["Men", "Women", "Boys", "Girls", "Unisex"],
    "season": ["Summer", "Winter", "Spring", "Fall"],
    "usage": ["Casual", "Formal", "Sports", "Ethnic"],
}
OOF_TARGETS = ["article_type", "base_colour"]


def _images(folder: Path, n: int = 12) -> list[tuple[str, str]]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        p = folder / f"img{i}.jpg"
        Image.new("RGB", (60, 80), (20 * i % 256, 90, 200 - 10 * i)).save(p, "JPEG", quality=85)
        out.append((str(p), hashlib.sha256(p.read_bytes()).hexdigest()))
    return out


def _top_k(first: pa.Array, second: pa.Array, p1: np.ndarray, p2: np.ndarray) -> pa.Array:
    n = len(first)
    labels = pa.concat_arrays([first, second]).take(pa.array(np.stack([np.arange(n), np.arange(n) + n], 1).ravel()))
    probs = pa.array(np.stack([p1, p2], 1).ravel())
    return pa.ListArray.from_arrays(pa.array(np.arange(0, 2 * n + 1, 2, dtype=np.int32)),
                                    pa.StructArray.from_arrays([labels, probs], names=["label", "probability"]))


def build_warehouse(root: Path, candidates: int = 100_000, seed: int = 0) -> Warehouse:
    """A warehouse with exactly `candidates` reclassification candidates (see the module doc)."""
    rng = np.random.default_rng(seed)
    wh = open_warehouse(root / "wh")
    per_target = candidates // len(OOF_TARGETS)
    n = int(per_target / 0.8)  # 80% of each oof target's labels are flagged
    ids = np.char.add("p", np.arange(n).astype(str))
    images = _images(root / "images")
    img = rng.integers(0, len(images), n)
    seller = {t: rng.integers(0, len(v), n) for t, v in LABELS.items()}
    names = {t: np.array(v) for t, v in LABELS.items()}
    titles = np.char.add(np.char.add(np.char.add("Brand", (np.arange(n) % 97).astype(str)), " "),
                         np.char.add(names["base_colour"][seller["base_colour"]],
                                     np.char.add(" ", names["article_type"][seller["article_type"]])))
    chash = np.char.add("h", np.arange(n).astype(str))
    const = lambda v, t=pa.string(): pa.array([v] * n, t)  # noqa: E731
    products = pa.table({
        "product_id": pa.array(ids), "source": const("bench"), "title": pa.array(titles),
        "image_path": pa.array([images[i][0] for i in img]), "image_status": const("ok"),
        "image_sha256": pa.array([images[i][1] for i in img]), "title_sha256": pa.array(chash),
        "content_hash": pa.array(chash), "first_seen_at": const(T0, schemas.TS), "updated_at": const(T0, schemas.TS),
        **{t: pa.array(names[t][seller[t]]) for t in LABELS},
    })
    write_parquet_atomic(products, wh.products_path)
    replace_models(wh, pa.Table.from_pylist([{
        "model_id": MODEL, "head": "mlp", "target_set": ",".join(LABELS), "targets": list(LABELS), "encoder_ids": ["e"],
        "metrics": "{}", "training_rows": n, "training_latest_updated_at": T0, "artifact_path": str(wh.model_dir(MODEL)),
        "trained_at": T0, "is_current": True}], schema=schemas.MODELS))
    scores = []
    for t in OOF_TARGETS:
        k = len(LABELS[t])
        flagged = np.zeros(n, bool)
        flagged[rng.choice(n, per_target, replace=False)] = True
        sugg = np.where(flagged, (seller[t] + rng.integers(1, k, n)) % k, seller[t])
        p_sugg = rng.uniform(0.5, 0.99, n)
        quality = np.where(flagged, rng.uniform(0.0, 0.1, n), rng.uniform(0.5, 1.0, n))
        given, suggested = pa.array(names[t][seller[t]]), pa.array(names[t][sugg])
        second = pa.array(names[t][(sugg + 1) % k])
        scores.append(pa.table({
            "product_id": pa.array(ids), "target": const(t), "given_label": given,
            "given_label_probability": pa.array(quality), "suggested_label": suggested,
            "suggested_probability": pa.array(p_sugg), "label_quality": pa.array(quality),
            "is_issue": pa.array(flagged), "top_k": _top_k(suggested, second, p_sugg, (1 - p_sugg) / 2),
            "content_hash": pa.array(chash), "model_id": const(MODEL)}, schema=schemas.LABEL_SCORES))
    write_parquet_atomic(pa.concat_tables(scores), wh.label_scores_path(MODEL))
    preds = []
    for t in LABELS:  # the current model agrees with the seller, so only the flagged labels are candidates
        label = pa.array(names[t][seller[t]])
        conf = rng.uniform(0.3, 1.0, n)
        other = pa.array(names[t][(seller[t] + 1) % len(LABELS[t])])
        preds.append(pa.table({
            "run_id": const("bench-r1"), "model_id": const(MODEL), "scored_at": const(T0, schemas.TS),
            "product_id": pa.array(ids), "content_hash": pa.array(chash), "target": const(t), "label": label,
            "confidence": pa.array(conf), "top_k": _top_k(label, other, conf, 1 - conf),
            "value": pa.nulls(n, pa.float64()), "lower": pa.nulls(n, pa.float64()), "upper": pa.nulls(n, pa.float64()),
        }, schema=schemas.PREDICTIONS))
    write_predictions(wh, "bench-r1", pa.concat_tables(preds))
    return wh


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def median_ms(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--candidates", type=int, default=100_000)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()

    import httpx
    import uvicorn

    from flows.review_page.app import create_app
    from warehouse.decisions import decide
    from warehouse.views import connect

    shutil.rmtree(args.work, ignore_errors=True)
    t = time.perf_counter()
    wh = build_warehouse(args.work, args.candidates)
    build_s = time.perf_counter() - t
    con = connect(wh)
    (count,) = con.execute("SELECT count(*) FROM reclassification_candidates").fetchone()
    assert count == args.candidates, count
    view_ms = median_ms(lambda: connect(wh).execute(
        "SELECT * FROM reclassification_candidates ORDER BY rank LIMIT 50").fetchall(), 5)

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(wh, reviewer="bench"), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=60) as http:
            first = http.get("/")
            assert first.status_code == 200 and first.text.count('class="card"') == 50, first.status_code
            cold_ms = first.elapsed.total_seconds() * 1000
            page_ms = median_ms(lambda: http.get("/").raise_for_status(), args.reps)
            filtered_ms = median_ms(lambda: http.get("/", params={"target": "base_colour", "q": "Type07"}).raise_for_status(),
                                    args.reps)
            queue = connect(wh).execute("SELECT product_id, target FROM reclassification_candidates ORDER BY rank "
                                        f"LIMIT {args.reps + 3}").fetchall()
            cli_pid, cli_target = queue.pop()  # decided below the way `vitrine review accept` does
            left = iter(queue)

            def accept() -> None:
                pid, target = next(left)
                r = http.post("/decide", data={"product_id": pid, "target": target, "decision": "accept"})
                assert r.status_code == 200 and 'class="card"' not in r.text, (r.status_code, r.text[:300])

            decide_ms = median_ms(accept, args.reps)
            counts_ms = median_ms(lambda: http.get("/counts").raise_for_status(), args.reps)
            thumb = queue[0][0]
            thumb_ms = median_ms(lambda: http.get(f"/image/{thumb}").raise_for_status(), args.reps)
            after = connect(wh).execute("SELECT count(*) FROM reclassification_candidates").fetchone()[0]
            assert after == args.candidates - args.reps, after
            t = time.perf_counter()
            decide(wh, cli_pid, cli_target, "accept", decided_by="bench")
            cli_decide_ms = (time.perf_counter() - t) * 1000
    finally:
        server.should_exit = True
        thread.join(30)

    cmd = command_line(__file__)
    body = (
        stamp(cmd) + f"\nA synthetic warehouse with {count:,} reclassification candidates (written through the "
        f"warehouse's own writers in {build_s:.0f} s; see the docstring of `benchmarks/review.py`), served by "
        f"`vitrine review serve`'s app on a real uvicorn on 127.0.0.1, timed with an HTTP client: medians of "
        f"{args.reps}, 2 cores.\n\n"
        "| request | median | goal |\n|---|---|---|\n"
        f"| first page of 50 cards (`GET /`), first request after start | {cold_ms:.0f} ms | |\n"
        f"| first page of 50 cards (`GET /`) | **{page_ms:.0f} ms** | < 300 ms |\n"
        f"| a filtered page (target + title text) | {filtered_ms:.0f} ms | |\n"
        f"| decision round-trip (`POST /decide` accept, answered with the card gone) | **{decide_ms:.0f} ms** | < 100 ms |\n"
        f"| the counts the page fetches after a decision (`GET /counts`) | {counts_ms:.0f} ms | |\n"
        f"| one thumbnail (`GET /image/<id>`) | {thumb_ms:.0f} ms | |\n"
        f"| without the page's `QueueReader`: the first 50 rows of `reclassification_candidates` on a fresh `connect()` | {view_ms:.0f} ms | |\n"
        f"| without it: one `decide()` on a fresh connection (as `vitrine review accept` does) | {cli_decide_ms:.0f} ms | |\n"
        "\nThe page reads through `warehouse.review_queue.QueueReader`: `reclassification_flagged` (the part of "
        "the queue that does not depend on decisions) and the products are materialized once per warehouse "
        "state, each decision file is read once when it appears, and the candidates view anti-joins the "
        "decisions in force instead of running correlated subqueries. The last two rows are what every "
        "request would cost without it (a fresh `connect()` per request). The first request after start "
        "builds the reader's tables.\n"
    )
    print(body)
    if not args.no_write:
        write_section("Review page", body)


if __name__ == "__main__":
    main()
