"""Similar products measured: exact search on the Fashion catalog, the index at a million vectors,
neighbour agreement, planted re-listings, product groups.

    PYTHONPATH=. HF_HOME=.hf-cache HF_HUB_OFFLINE=1 python benchmarks/similar.py --warehouse WH --part all

`--warehouse` is a warehouse of the whole Fashion catalog encoded with configs/demo.yaml (it is only
read; the duplicates part copies it first). Each part writes its own BENCHMARKS.md section.

- exact: query latency of `vitrine similar --product` on the catalog held in memory (NumPy, the
  CLI's path), and of the `similar_products` SQL macro (DuckDB, re-reads the Parquet per query).
- index: 1,000,000 synthetic 1280-d vectors (a 64-d latent mixture of 20,000 clusters mapped to
  1280-d plus isotropic noise, unit-normalised) in the faiss IVF-Flat index of
  features/vector_index.py; recall@10 against exact search (every cell scanned), latency, build
  time, memory; and an update of 1% of the vectors.
- quality: for 500 held-out products, how often the top-3 neighbours share the query's
  article_type / gender, per encoder and combined; top-3 article_type by similarity-weighted vote
  of the 10 nearest.
- duplicates: 300 real products re-listed (photo re-compressed, resized or cropped; title
  reworded), encoded with the real models into a copy of the warehouse; recall and precision.
- groups: k-means purity and adjusted mutual information against article_type for a few k.
"""
from __future__ import annotations

import argparse
import random
import re
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.report import stamp, write_section  # noqa: E402

COMMAND = "PYTHONPATH=. HF_HOME=.hf-cache HF_HUB_OFFLINE=1 python benchmarks/similar.py --warehouse WH --part {part}"
INDEX_COMMAND = "PYTHONPATH=. python benchmarks/similar.py --part index --index-rows {n} --spread {spread}"


def demo_settings(wh: Path):
    from flows.settings import CONFIG_DIR, load_settings

    return load_settings(CONFIG_DIR / "demo.yaml", wh)


def md_table(cols, rows) -> str:
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        out.append("| " + " | ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in r) + " |")
    return "\n".join(out)


def rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


# -- exact ------------------------------------------------------------------------------------


def part_exact(wh_path: Path, queries: int = 200) -> None:
    from features.similar import exact_search, open_catalog, product_query
    from flows.settings import similar_sql
    from warehouse.layout import Warehouse
    from warehouse.views import connect

    s = demo_settings(wh_path)
    wh = Warehouse(wh_path.resolve())
    names = list(s.similar.encoders)
    t = time.perf_counter()
    cat = open_catalog(wh, s.encoders, names)
    load = time.perf_counter() - t
    rng = np.random.default_rng(0)
    both = np.intersect1d(cat.sets["image"].rows, cat.sets["title"].rows)
    picks = [cat.product_ids[i] for i in rng.choice(both, queries, replace=False)]
    rows = []
    for label, use in (("image + title", names), ("image", ["image"]), ("title", ["title"])):
        times = []
        for pid in picks:
            t = time.perf_counter()
            q = product_query(cat, pid, use, explicit=True)
            exact_search(cat, q, {n: s.similar.encoders.get(n, 1.0) for n in use}, 5, exclude=pid)
            times.append(time.perf_counter() - t)
        ms = np.array(times) * 1e3
        rows.append((f"NumPy, {label}", f"{np.median(ms):.2f}", f"{np.percentile(ms, 95):.2f}", queries))
    con = connect(wh, s.score.reclass_threshold, similar_sql(s))
    for label, macro in (("image + title", "similar_products"), ("image", "similar_products_image")):
        times = []
        for pid in picks[:10]:
            t = time.perf_counter()
            con.execute(f"SELECT * FROM {macro}('{pid}', 5)").fetchall()
            times.append(time.perf_counter() - t)
        ms = np.array(times) * 1e3
        rows.append((f"DuckDB `{macro}`, {label}", f"{np.median(ms):.1f}", f"{np.percentile(ms, 95):.1f}", 10))
    import os
    import subprocess

    from flows.settings import CONFIG_DIR

    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "flows.cli", "--config", str(CONFIG_DIR / "demo.yaml"), "--warehouse", str(wh_path),
                        "similar", "--product", picks[0], "--format", "csv"], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    cli_s = time.perf_counter() - t
    if p.returncode != 0:
        raise RuntimeError(p.stderr)
    n_img, n_tit = len(cat.sets["image"].rows), len(cat.sets["title"].rows)
    body = (
        stamp(COMMAND.format(part="exact")) + "\n"
        + f"The whole Fashion catalog: {cat.n} products, {n_img} image vectors (EfficientNet-Lite0, 1280-d) and {n_tit} title "
        f"vectors (MiniLM, 384-d). Reading both matrices once (what `vitrine similar` does first) took {load:.2f} s. "
        "A query is one stored product's vectors; the answer the 5 nearest by weighted cosine (weights 1, 1). "
        "Goal: exact < 100 ms per query.\n\n"
        + md_table(["search", "median ms", "p95 ms", "queries"], rows)
        + f"\n\nOne whole `vitrine similar --product ID` command (a new process: imports, reading the matrices, the "
        f"query, titles and labels from DuckDB): {cli_s:.1f} s."
        + "\n\nNumPy over the matrices read once is what the CLI uses; the SQL macros re-read the Parquet files "
        "on every query, fine at a `duckdb` prompt, too slow for a service.\n"
    )
    write_section("Similar products: exact search on Fashion", body)
    print(body)


# -- index ------------------------------------------------------------------------------------


def synthetic(rng: np.random.Generator, n: int, W: np.ndarray, centres: np.ndarray, spread: float) -> np.ndarray:
    z = centres[rng.integers(0, len(centres), n)] + spread * rng.standard_normal((n, W.shape[0])).astype(np.float32)
    x = z @ W + 0.35 * rng.standard_normal((n, W.shape[1])).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32)


def running_top(q: np.ndarray, x: np.ndarray, start: int, best: tuple[np.ndarray, np.ndarray] | None, k: int = 10):
    """Exact top-k of `q` over the vectors seen so far, one chunk at a time (NumPy matrix products)."""
    S = q @ x.T
    ids = np.broadcast_to(np.arange(start, start + len(x)), S.shape)
    if best is not None:
        S, ids = np.hstack([best[0], S]), np.hstack([best[1], ids])
    top = np.argsort(-S, axis=1)[:, :k]
    return np.take_along_axis(S, top, 1), np.take_along_axis(ids, top, 1)


def part_index(n: int = 1_000_000, dim: int = 1280, queries: int = 200, spread: float = 0.45) -> None:
    import faiss

    from features.settings import IndexSettings
    from features.vector_index import _new_ivf, default_nlist

    s = IndexSettings()
    faiss.omp_set_num_threads(s.threads)
    rng = np.random.default_rng(0)
    W = (rng.standard_normal((64, dim)) / 8).astype(np.float32)
    centres = rng.standard_normal((20_000, 64)).astype(np.float32)
    chunk = 50_000
    t0 = time.perf_counter()
    q = synthetic(rng, queries, W, centres, spread)
    chunk = max(chunk, s.train_rows)  # the first chunk is the training sample
    first = synthetic(rng, chunk, W, centres, spread)
    nlist = default_nlist(n)
    gen = 0.0
    t = time.perf_counter()
    index = _new_ivf(dim, first[: s.train_rows], nlist, s.threads)
    train = time.perf_counter() - t
    add = exact_batch = 0.0
    best = None
    for start in range(0, n, chunk):
        tg = time.perf_counter()
        x = first[: n - start] if start == 0 else synthetic(rng, min(chunk, n - start), W, centres, spread)
        gen += time.perf_counter() - tg
        ta = time.perf_counter()
        index.add_with_ids(x, np.arange(start, start + len(x), dtype=np.int64))
        add += time.perf_counter() - ta
        te = time.perf_counter()
        best = running_top(q, x, start, best)
        exact_batch += time.perf_counter() - te
    del first, x
    truth = best[1]
    index.nprobe = nlist  # every cell scanned: exact
    faiss.omp_set_num_threads(1)
    t = time.perf_counter()
    for i in range(5):
        index.search(q[i : i + 1], 10)
    exact_ms = (time.perf_counter() - t) / 5 * 1e3
    rows = [("exact (every cell scanned)", nlist, f"{exact_ms:.1f}", "1.000")]
    for nprobe in (16, 32, 64, 128, 256):
        index.nprobe = nprobe
        t = time.perf_counter()
        got = np.vstack([index.search(q[i : i + 1], s.candidates)[1] for i in range(queries)])
        ms = (time.perf_counter() - t) / queries * 1e3
        recall = np.mean([len(set(truth[i]) & set(got[i][:10])) / 10 for i in range(queries)])
        recall_c = np.mean([len(set(truth[i]) & set(got[i])) / 10 for i in range(queries)])
        rows.append((f"IVF-Flat, nprobe {nprobe}{' (default)' if nprobe == s.nprobe else ''}", nprobe, f"{ms:.2f}",
                     f"{recall:.3f} (re-ranked from {s.candidates}: {recall_c:.3f})"))
    faiss.omp_set_num_threads(s.threads)
    # an update: 1% of the vectors removed, as many new ones added
    gone = rng.choice(n, n // 100, replace=False).astype(np.int64)
    t = time.perf_counter()
    index.remove_ids(gone)
    index.add_with_ids(synthetic(rng, n // 100, W, centres, spread), np.arange(n, n + n // 100, dtype=np.int64))
    update = time.perf_counter() - t
    index_gib = index.ntotal * (dim * 4 + 8) / 2**30
    body = (
        stamp(INDEX_COMMAND.format(n=n, spread=spread)) + "\n"
        + f"{n:,} synthetic {dim}-d unit vectors (a mixture of 20,000 clusters in a 64-d latent space, cluster spread "
        f"{spread} against unit spread of the centres, mapped to {dim}-d, plus isotropic noise), "
        f"{queries} queries drawn from the same mixture (not in the index). Truth: exact top-10 (every cell scanned). "
        f"Index: faiss IVF-Flat, inner product, {nlist} cells (4·√n), trained on {s.train_rows:,} vectors. "
        "Goal: recall@10 ≥ 0.95 at < 10 ms per query (one thread per query).\n\n"
        + md_table(["search", "nprobe", "ms per query", "recall@10"], rows)
        + f"\n\nBuild: training {train:.1f} s, adding {n:,} vectors {add:.1f} s (generating them {gen:.1f} s, not counted); "
        f"the index holds {index_gib:.2f} GiB (float32 vectors and ids); the process peaked at {rss_gib():.1f} GiB. "
        f"Exact top-10 of the {queries} queries (NumPy matrix products, chunk by chunk): {exact_batch:.1f} s. "
        f"Update (1% of the vectors removed, as many added, no retraining): {update:.1f} s. "
        f"Whole part: {time.perf_counter() - t0:.0f} s.\n"
        "\nThe recall@10 column counts the true top-10 among the index's first 10; in `vitrine similar` the index "
        f"fetches `similar.index.candidates` ({s.candidates}) per encoder and re-ranks them on the exact vectors, so its "
        "answer's recall is the figure in brackets.\n"
    )
    write_section(f"Similar products: approximate index at {n:,} vectors, cluster spread {spread}", body)
    print(body)


# -- quality ----------------------------------------------------------------------------------


def labels_of(wh, cat, column: str) -> np.ndarray:
    import pyarrow.parquet as pq

    t = pq.read_table(wh.products_path, columns=["product_id", column]).to_pydict()
    m = dict(zip(t["product_id"], t[column]))
    return np.array([m.get(p) for p in cat.product_ids], dtype=object)


def heads_top3() -> str:
    text = (Path(__file__).resolve().parent.parent / "BENCHMARKS.md").read_text()
    m = re.search(r"### Fashion — top3_accuracy\n(.*?)(?=\n### |\n## )", text, re.S)
    if not m:
        return "(no Quality section found)"
    return "\n".join(line for line in m.group(1).splitlines() if line.startswith("|"))


def part_quality(wh_path: Path, held_out: int = 2000) -> None:
    import pyarrow.parquet as pq

    from features.similar import combined_scores, open_catalog
    from warehouse.layout import Warehouse

    s = demo_settings(wh_path)
    wh = Warehouse(wh_path.resolve())
    from features.identity import encoder_id
    from features.store import EmbeddingStore

    products = pq.read_table(wh.products_path, columns=["product_id"]).num_rows
    names = [n for n in ("image", "title", "title_words")  # those encoded for (nearly) the whole catalog
             if EmbeddingStore(wh, encoder_id(s.encoders[n])).count() >= 0.95 * products]
    cat = open_catalog(wh, s.encoders, names)
    art, gen = labels_of(wh, cat, "article_type"), labels_of(wh, cat, "gender")
    rng = np.random.default_rng(1)
    common = cat.sets["image"].rows
    for n in names[1:]:
        common = np.intersect1d(common, cat.sets[n].rows)
    held_out = min(held_out, len(common) // 2)
    queries = rng.choice(common, held_out, replace=False)
    combos = {"image": {"image": 1.0}, "title (MiniLM)": {"title": 1.0}, "title_words (hashed)": {"title_words": 1.0},
              "image + title (default)": {"image": 1.0, "title": 1.0}}
    combos = {k: v for k, v in combos.items() if set(v) <= set(names)}
    rows = []
    for label, weights in combos.items():
        a3 = g3 = vote = 0
        for pos in queries:
            q = {n: cat.sets[n].matrix[cat.sets[n].row_of(int(pos))] for n in weights}
            score, ok = combined_scores(cat, q, weights)
            ok[pos] = False  # held out: never its own neighbour
            score = np.where(ok, score, -np.inf)
            top = np.argpartition(-score, 10)[:10]
            top = top[np.argsort(-score[top])]
            a3 += np.mean(art[top[:3]] == art[pos])
            g3 += np.mean(gen[top[:3]] == gen[pos])
            tally: dict = {}
            for j in top:
                tally[art[j]] = tally.get(art[j], 0.0) + float(score[j])
            vote += art[pos] in sorted(tally, key=tally.get, reverse=True)[:3]
        rows.append((label, a3 / held_out, g3 / held_out, vote / held_out))
    body = (
        stamp(COMMAND.format(part="quality")) + "\n"
        + f"{held_out} held-out products of the Fashion catalog (each with all vectors), searched against the other "
        f"{cat.n - 1:,}. Top-3 agreement: the share of the 3 nearest products with the query's label. Top-3 by vote: "
        "the query's article_type is among the 3 labels with the largest similarity-weighted vote of its 10 nearest.\n\n"
        + md_table(["encoders", "top-3 agreement article_type", "top-3 agreement gender", "article_type in top-3 by vote"], rows)
        + "\n\nFor comparison, the heads' top-3 accuracy on their held-out test split, quoted from the Quality section "
        "(article_type is the row to compare):\n\n" + heads_top3() + "\n"
    )
    write_section("Similar products: neighbour agreement on Fashion", body)
    print(body)


# -- duplicates -------------------------------------------------------------------------------

SYNONYMS = {"tshirt": "tee", "t-shirt": "tee", "men": "mens", "women": "womens", "shirt": "shirt top", "shoes": "footwear",
            "watch": "wrist watch", "black": "jet black", "white": "off white", "blue": "blue coloured", "kurta": "kurti",
            "bag": "handbag", "jeans": "denims", "top": "tunic top", "casual": "everyday", "sports": "sport"}


def reword(title: str, rnd: random.Random) -> str:
    words = title.split()
    words = [SYNONYMS.get(w.lower(), w) if rnd.random() < 0.6 else w for w in words]
    if len(words) > 2:  # the brand moves to the end
        words = words[1:] + words[:1]
    return " ".join(words)


def alter(src: Path, dst: Path, rnd: random.Random) -> str:
    from PIL import Image

    with Image.open(src) as im:
        im = im.convert("RGB")
        w, h = im.size
        kind = rnd.choice(["recompress", "resize", "crop"])
        if kind == "resize":
            f = rnd.uniform(0.7, 0.9)
            im = im.resize((max(8, int(w * f)), max(8, int(h * f))))
        elif kind == "crop":
            dx, dy = int(w * rnd.uniform(0.04, 0.08)), int(h * rnd.uniform(0.04, 0.08))
            im = im.crop((dx, dy, w - dx, h - dy))
        im.save(dst, "JPEG", quality=rnd.randint(35, 70) if kind == "recompress" else 85)
    return kind


def part_duplicates(wh_path: Path, planted: int = 300) -> None:
    import pyarrow.parquet as pq

    from features.duplicates import find_duplicates, pairs_above
    from features.encode import encode
    from features.similar import read_vector_set
    from warehouse.layout import open_warehouse
    from warehouse.ingest import ingest
    from warehouse.tables import read_products

    work = Path(tempfile.mkdtemp(prefix="similar-dups-"))
    t0 = time.perf_counter()
    try:
        copy = work / "wh"
        # the products and the two encoders compared; not the models, predictions or hashed title vectors
        shutil.copytree(wh_path, copy, ignore=shutil.ignore_patterns("models", "predictions*", "_locks", "hashing*"))
        s = demo_settings(copy)
        wh = open_warehouse(copy)
        products = read_products(wh)
        rnd = random.Random(0)
        ok = [r for r in products.select(["product_id", "title", "image_path", "image_status"]).to_pylist()
              if r["image_status"] == "ok" and r["title"]]
        picks = rnd.sample(ok, planted)
        cat = work / "plant"
        (cat / "images").mkdir(parents=True)
        full = pq.read_table(wh.products_path).to_pylist()
        by_id = {r["product_id"]: r for r in full}
        header = "id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage,productDisplayName"
        lines, truth, kinds = [header], {}, {}
        for i, r in enumerate(picks):
            new = str(900000 + i)
            kinds[new] = alter(Path(r["image_path"]), cat / "images" / f"{new}.jpg", rnd)
            p = by_id[r["product_id"]]
            title = reword(r["title"], rnd).replace(",", " ")
            lines.append(",".join(str(p.get(c) or "") for c in ("gender", "master_category", "sub_category", "article_type",
                                                                   "base_colour", "season", "year", "usage")).join([new + ",", ","]) + title)
            truth[new] = r["product_id"]
        (cat / "styles.csv").write_text("\n".join(lines) + "\n")
        ingest(wh, cat, s.ingest, "fashion-product-images")
        t = time.perf_counter()
        encode(wh, s.encoders, s.encode, names=["image", "title"], progress=False)
        enc_s = time.perf_counter() - t
        t = time.perf_counter()
        rep = find_duplicates(wh, s.encoders, s.similar.duplicates, "bench-duplicates")
        find_s = time.perf_counter() - t
        # every pair above low thresholds once, then each threshold pair judged in memory
        prods = read_products(wh, ["product_id", "title", "image_sha256", "title_sha256", "content_hash"])
        img = read_vector_set(wh, "image", s.encoders["image"], prods)
        tit = read_vector_set(wh, "title", s.encoders["title"], prods)
        both = np.intersect1d(img.rows, tit.rows)
        A = img.matrix[np.searchsorted(img.rows, both)]
        B = tit.matrix[np.searchsorted(tit.rows, both)]
        ids = np.array(prods["product_id"].to_pylist(), dtype=object)[both]
        planted_pos = np.flatnonzero(np.isin(ids, list(truth)))
        i, j, si, st = pairs_above(A, B, planted_pos, 0.7, 0.5)
        a, b = ids[i], ids[j]
        rows = []
        for it in (0.75, 0.8, 0.85, 0.9):
            for tt in (0.7, 0.8, 0.9):
                keep = (si >= it) & (st >= tt)
                found = {(x, y) for x, y in zip(a[keep], b[keep])}
                tp = sum((x, truth[x]) in found or (truth[x], x) in found for x in truth)
                involving = [(x, y) for x, y in found if x in truth or y in truth]
                correct = sum(1 for x, y in involving if truth.get(x) == y or truth.get(y) == x)
                mark = " (default)" if (it, tt) == (s.similar.duplicates.image_threshold, s.similar.duplicates.title_threshold) else ""
                rows.append((f"{it} / {tt}{mark}", tp / planted, correct / len(involving) if involving else float("nan"), len(involving)))
        per_kind = {}
        keep = (si >= s.similar.duplicates.image_threshold) & (st >= s.similar.duplicates.title_threshold)
        found = {(x, y) for x, y in zip(a[keep], b[keep])}
        for new, orig in truth.items():
            k = kinds[new]
            hit = (new, orig) in found or (orig, new) in found
            per_kind.setdefault(k, [0, 0])
            per_kind[k][0] += hit
            per_kind[k][1] += 1
        pt = dict(zip(prods["product_id"].to_pylist(), prods["title"].to_pylist()))
        ex = [f"- `{pt[o]}` → `{pt[n]}` ({kinds[n]})" for n, o in list(truth.items())[:3]]
        body = (
            stamp(COMMAND.format(part="duplicates")) + "\n"
            + f"{planted} real Fashion products re-listed under new ids, photo re-compressed (JPEG quality 35–70), resized "
            "(70–90%) or cropped (4–8% off each side), title reworded (synonyms, brand moved to the end), then ingested and "
            f"encoded with the real EfficientNet-Lite0 and MiniLM into a copy of the warehouse ({enc_s:.0f} s), "
            f"{rep.products:,} products in all. A pair is flagged when image AND title cosine reach the thresholds. "
            "Recall: planted re-listings paired with their original. Precision: of the flagged pairs that involve a planted "
            "listing, those that pair it with its own original (pairs among the real products cannot be judged without "
            "labels and are not counted).\n\n"
            + md_table(["image / title threshold", "recall", "precision", "pairs with a planted listing"], rows)
            + "\n\nAt the default thresholds, recall by alteration: "
            + ", ".join(f"{k} {v[0]}/{v[1]}" for k, v in sorted(per_kind.items())) + ".\n\n"
            + f"`vitrine duplicates` itself (first run: every product compared against the catalog, "
            f"{rep.compared:,} products): {find_s:.0f} s, {rep.pairs:,} pairs at the default thresholds "
            "(most of them real near-identical listings of the Fashion catalog).\n\nExamples of planted re-listings:\n\n"
            + "\n".join(ex) + "\n"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_section("Similar products: planted re-listings", body)
    print(body)
    print(f"part took {time.perf_counter() - t0:.0f} s")


# -- groups -----------------------------------------------------------------------------------


def part_groups(wh_path: Path) -> None:
    from sklearn.metrics import adjusted_mutual_info_score

    from features.groups import group_matrix, kmeans
    from warehouse.layout import Warehouse

    s = demo_settings(wh_path)
    wh = Warehouse(wh_path.resolve())
    rows = []
    runs = (("image + title", ["image", "title"], (20, 50)), ("image", ["image"], (50,)), ("title", ["title"], (50,)))
    for label, names, ks in runs:
        products, pos, X = group_matrix(wh, s.encoders, names, {n: 1.0 for n in names})
        import pyarrow.parquet as pq

        t = pq.read_table(wh.products_path, columns=["product_id", "article_type"]).to_pydict()
        art = dict(zip(t["product_id"], t["article_type"]))
        ids = products["product_id"].to_pylist()
        y = np.array([art[ids[p]] or "" for p in pos], dtype=object)
        for k in ks:
            t0 = time.perf_counter()
            labels, _, _ = kmeans(X, k, 0)
            sec = time.perf_counter() - t0
            purity = sum(np.unique(y[labels == g], return_counts=True)[1].max() for g in np.unique(labels)) / len(y)
            rows.append((label, k, purity, adjusted_mutual_info_score(y, labels), f"{sec:.1f}"))
    n_types = len(set(y))
    body = (
        stamp(COMMAND.format(part="groups")) + "\n"
        + f"k-means (scikit-learn KMeans, one k-means++ start) over the Fashion catalog's stored vectors, the products "
        f"with a vector of every encoder of the row ({len(y):,} for the last row); scored against article_type ({n_types} values). Purity: share of products whose group's most "
        "common article_type is theirs. AMI: adjusted mutual information (0 = chance, 1 = the same partition).\n\n"
        + md_table(["encoders", "k", "purity", "AMI", "seconds"], rows) + "\n"
    )
    write_section("Similar products: groups against article_type", body)
    print(body)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--warehouse", type=Path, help="the Fashion warehouse (configs/demo.yaml encoders)")
    ap.add_argument("--part", default="all", choices=["all", "exact", "index", "quality", "duplicates", "groups"])
    ap.add_argument("--index-rows", type=int, default=1_000_000)
    ap.add_argument("--planted", type=int, default=300, help="duplicates part: re-listings planted")
    ap.add_argument("--held-out", type=int, default=500, help="quality part: held-out query products")
    ap.add_argument("--spread", type=float, default=0.45, help="index part: cluster spread of the synthetic vectors")
    a = ap.parse_args()
    parts = ["exact", "quality", "groups", "duplicates", "index"] if a.part == "all" else [a.part]
    for p in parts:
        t = time.perf_counter()
        if p == "index":
            part_index(a.index_rows, spread=a.spread)
        else:
            if a.warehouse is None:
                ap.error(f"--part {p} needs --warehouse")
            kw = {"planted": a.planted} if p == "duplicates" else {"held_out": a.held_out} if p == "quality" else {}
            globals()[f"part_{p}"](a.warehouse, **kw)
        print(f"[{p}: {time.perf_counter() - t:.0f} s]", flush=True)


if __name__ == "__main__":
    main()
