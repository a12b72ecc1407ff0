"""The small shop whose seller picked some wrong article types: a warehouse with real candidates.

Shared by the reclassification tests and the review page's: titles name the true article type
and carry a word of their own (an SKU), so a tiny hashed-title MLP trained out of fold flags
the planted wrong labels.
"""
from __future__ import annotations

import random
from pathlib import Path

from catalogs import TYPES, fashion_rows, write_fashion
from features.encode import encode
from flows.settings import Settings
from heads.score import score
from heads.train import train
from warehouse import open_warehouse
from warehouse.ingest import ingest

N = 240
PLANTED = {str(1000 + i): None for i in random.Random(7).sample(range(N), 12)}  # 5% of the labels wrong


def shop_rows(n: int = N) -> list[list[str]]:
    rows = fashion_rows(n)
    articles = [t[2] for t in TYPES]
    for r in rows:
        r[9] = f"sku{r[0]} {r[4].lower().replace(' ', '')} {r[5].lower()}"  # true type in the title
        if r[0] in PLANTED:
            wrong = articles[(articles.index(r[4]) + 1) % len(articles)]
            PLANTED[r[0]] = r[4]
            r[4] = wrong  # the seller picked the wrong type
    return rows


def settings(tmp, **train) -> Settings:
    return Settings.model_validate({
        "warehouse": {"path": str(tmp / "wh"), "lock_timeout_s": 0},
        "encoders": {"title": {"family": "hashing", "model": "word:1-1:16384", "input": "title"}},
        "encode": {"batch_size": 64, "num_workers": 0, "threads": 1},
        "train": {"features": ["title"], "classification_targets": ["article_type", "gender"], "regression_targets": [],
                  # refit_all off: the first test contrasts the out-of-fold scores with the in-sample model
                  # fitted on the split's train rows (a refit on every row would blur which rows it learnt)
                  "heads": ["mlp"], "min_class_count": 2, "label_folds": 4, "refit_all": False,
                  "mlp": {"max_epochs": 100, "patience": 100, "hidden": 64, "dropout": 0.0, "batch_size": 16,
                          "ensemble": 1, "lr": 0.03, "weight_decay": 0.0}, **train},
        "score": {"top_k": 3, "reclass_threshold": 0.5},
    })



def build_shop(tmp: Path, rows: list[list[str]] | None = None):
    """Ingest, encode, train (out-of-fold label scores) and score the shop: (settings, source, model)."""
    s = settings(tmp)
    wh = open_warehouse(s.warehouse.path)
    src = write_fashion(tmp / "cat", rows if rows is not None else shop_rows())
    ingest(wh, src, s.ingest)
    encode(wh, s.encoders, s.encode, progress=False)
    (model,) = train(wh, s, progress=False)
    score(wh, s, "r1")
    return s, src, model
