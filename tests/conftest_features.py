"""Helpers for the features tests: tiny real models and small catalogs written through warehouse APIs.

Not a conftest.py (which belongs to the whole suite); test_features_*.py import it explicitly.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch
from PIL import Image

from features.settings import EncodeSettings, EncoderSpec
from warehouse import schemas
from warehouse.atomic import write_parquet_atomic
from warehouse.layout import Warehouse, open_warehouse
from warehouse.tables import now_utc

WORDS = "red blue green black white shirt dress shoe bag watch cotton leather men women kids casual sports formal slim fit".split()
TINY_CLIP = "vitrine-test-tiny-clip"


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def write_image(path: Path, seed: int, size: tuple[int, int] = (40, 52)) -> None:
    rng = np.random.default_rng(seed)
    arr = (rng.random((size[1], size[0], 3)) * 255).astype(np.uint8)
    Image.fromarray(arr).save(path, format="JPEG")


def title_of(i: int) -> str:
    rng = np.random.default_rng(1000 + i)
    return " ".join(rng.choice(WORDS, size=int(rng.integers(2, 9))))


def write_products(wh: Warehouse, rows: list[dict]) -> None:
    """The products table as ingestion would leave it, written through warehouse.atomic."""
    now = now_utc()
    cols: dict[str, list] = {f.name: [] for f in schemas.PRODUCT_FIXED}
    cols["category"] = []
    for r in rows:
        img = r.get("image_path")
        status = r.get("image_status", "ok" if img else "none")
        img_sha = sha(Path(img).read_bytes()) if img and Path(img).exists() else None
        title = r.get("title")
        title_sha = sha(title.encode()) if title else None
        cols["product_id"].append(r["product_id"])
        cols["source"].append("test")
        cols["title"].append(title)
        cols["image_path"].append(img)
        cols["image_status"].append(status)
        cols["image_sha256"].append(img_sha)
        cols["title_sha256"].append(title_sha)
        cols["content_hash"].append(sha(f"{img_sha}|{title_sha}".encode()))
        cols["first_seen_at"].append(now)
        cols["updated_at"].append(now)
        cols["category"].append(r.get("category", "x"))
    schema = schemas.PRODUCT_FIXED.append(pa.field("category", pa.string()))
    write_parquet_atomic(pa.table(cols, schema=schema), wh.products_path)


def make_catalog(root: Path, n: int, seed: int = 0) -> tuple[Warehouse, list[dict]]:
    wh = open_warehouse(root / "wh")
    imgs = root / "images"
    imgs.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        p = imgs / f"{i}.jpg"
        write_image(p, seed * 10_000 + i)
        rows.append({"product_id": f"p{i:04d}", "title": title_of(i), "image_path": str(p)})
    write_products(wh, rows)
    return wh, rows


def settings(**kw) -> EncodeSettings:
    base = dict(batch_size=4, num_workers=0, threads=1, chunk_rows=8)
    base.update(kw)
    return EncodeSettings(**base)


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    """A 2-layer BERT with a word-piece vocabulary written here, saved as a local directory."""
    from transformers import BertConfig, BertModel, BertTokenizer

    d = tmp_path_factory.mktemp("tiny-bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS + ["##s", "##ed", "a", "the"]
    (d / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tok = BertTokenizer(vocab_file=str(d / "vocab.txt"), model_max_length=32)
    tok.save_pretrained(d)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=32)
    BertModel(cfg).eval().save_pretrained(d)
    return d


def save_timm_checkpoint(path: Path, seed: int) -> Path:
    import timm

    torch.manual_seed(seed)
    model = timm.create_model("test_efficientnet", pretrained=False)  # with its classifier, like a real checkpoint
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture(scope="session")
def tiny_timm_ckpt(tmp_path_factory) -> Path:
    return save_timm_checkpoint(tmp_path_factory.mktemp("tiny-timm") / "test_efficientnet.pth", seed=0)


@pytest.fixture(scope="session")
def tiny_clip_ckpt(tmp_path_factory) -> Path:
    """A small open_clip config registered in-process, with random weights saved as a checkpoint."""
    import open_clip

    d = tmp_path_factory.mktemp("tiny-clip")
    cfg = {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
    }
    (d / f"{TINY_CLIP}.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(d / f"{TINY_CLIP}.json")
    torch.manual_seed(0)
    model = open_clip.create_model(TINY_CLIP, pretrained=None)
    torch.save(model.state_dict(), d / "tiny-clip.pt")
    return d / "tiny-clip.pt"


def bert_spec(d: Path, **kw) -> EncoderSpec:
    return EncoderSpec(family="bert", model=str(d), input="title", **kw)


def timm_spec(ckpt: Path, **kw) -> EncoderSpec:
    return EncoderSpec(family="timm", model="test_efficientnet", checkpoint=ckpt, input="image", **kw)
