"""A whole small shop for pipeline tests: a Fashion-layout catalog and settings with tiny models."""
from __future__ import annotations

from pathlib import Path

from catalogs import fashion_rows, write_fashion
from flows.settings import Settings


def shop_rows(n: int, start: int = 1000) -> list[list[str]]:
    rows = fashion_rows(n, start)
    for r in rows:  # titles in the tiny BERT's vocabulary, so titles carry signal too
        colour = r[5].lower()
        kind = {"Tshirts": "shirt", "Casual Shoes": "shoe", "Handbags": "bag"}[r[4]]
        r[9] = f"{colour} {kind} {'men' if r[1] == 'Men' else 'women'} casual"
    return rows


def make_shop(folder: Path, n: int = 48) -> Path:
    return write_fashion(folder, shop_rows(n))


def pipeline_settings(tmp: Path, bert_dir: Path, timm_ckpt: Path, **sections) -> Settings:
    data = {
        "warehouse": {"path": str(tmp / "wh"), "lock_timeout_s": 0},
        "encoders": {
            "image": {"family": "timm", "model": "test_efficientnet", "checkpoint": str(timm_ckpt), "input": "image"},
            "title": {"family": "bert", "model": str(bert_dir), "input": "title"},
        },
        "encode": {"batch_size": 16, "num_workers": 0, "threads": 1, "chunk_rows": 32},
        "train": {
            "features": ["image", "title"],
            "classification_targets": ["article_type", "gender", "base_colour"],
            "regression_targets": [],
            "heads": ["mlp"],
            "min_class_count": 2,
            "mlp": {"max_epochs": 8, "patience": 3, "hidden": 32},
        },
        "score": {"top_k": 2, "reclass_threshold": 0.0},
        "runner": {"retries": 0, "retry_delay_s": 0},
    }
    for k, v in sections.items():
        data[k] = {**data.get(k, {}), **v}
    return Settings.model_validate(data)
