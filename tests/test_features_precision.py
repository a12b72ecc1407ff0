"""bf16 encoding: close enough to fp32 to share an encoder id, or refused / fallen back from."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from conftest_features import make_catalog, settings, timm_spec, tiny_timm_ckpt, write_products  # noqa: F401
from features.encode import encode
from features.identity import encoder_id
from features.precision import PrecisionMismatch, cosines
from features.settings import EncodeSettings, EncoderSpec
from features.store import EmbeddingStore
from warehouse.atomic import read_metadata
from warehouse.layout import open_warehouse

SAMPLE = Path(__file__).resolve().parent.parent / "flows" / "sample" / "images"
EFFNET = "models--timm--tf_efficientnet_lite0.in1k"


def seeded() -> bool:
    home = os.environ.get("HF_HOME")
    return bool(home) and (Path(home) / "hub" / EFFNET).is_dir()


def vectors(wh, spec, ids):
    m, found = EmbeddingStore(wh, encoder_id(spec)).read_matrix(ids)
    assert found.all()
    return m


@pytest.mark.skipif(not seeded(), reason="needs the seeded HF_HOME with tf_efficientnet_lite0 (bash .ci/setup-env)")
def test_bf16_vectors_of_a_real_model_on_real_photos_are_within_tolerance_of_fp32(tmp_path):
    photos = sorted(SAMPLE.glob("*.jpg"))[:24]
    rows = [{"product_id": p.stem, "title": f"product {p.stem}", "image_path": str(p)} for p in photos]
    spec = EncoderSpec(family="timm", model="hf-hub:timm/tf_efficientnet_lite0.in1k", input="image")
    ids = [r["product_id"] for r in rows]
    out = {}
    for precision in ("fp32", "bf16"):
        wh = open_warehouse(tmp_path / precision)
        write_products(wh, [dict(r) for r in rows])
        (rep,) = encode(wh, {"image": spec}, settings(batch_size=8, precision=precision), progress=False)
        assert rep.precision == precision and rep.encoded == len(rows)
        files = EmbeddingStore(wh, rep.encoder_id).files()
        assert {read_metadata(f)["vitrine.precision"] for f in files} == {precision}
        out[precision] = (rep, vectors(wh, spec, ids))
    rep16, v16 = out["bf16"]
    _, v32 = out["fp32"]
    assert rep16.encoder_id == out["fp32"][0].encoder_id  # comparable vectors: one id
    cos = cosines(v16, v32)
    assert cos.mean() >= 0.998 and cos.min() >= 0.99  # the shipped bounds, on every vector, not the first batch only
    assert rep16.bf16_cosine[0] >= 0.998
    assert not np.array_equal(v16, v32)  # bf16 really ran


def test_bf16_beyond_tolerance_falls_back_under_auto_and_stops_when_asked_for(tmp_path, tiny_timm_ckpt):
    # A mean cosine of exactly 1.0 is more than bf16 arithmetic gives on a real CNN: the check fails.
    spec = timm_spec(tiny_timm_ckpt)
    wh32, rows = make_catalog(tmp_path / "fp32", 10)
    encode(wh32, {"image": spec}, settings(precision="fp32"), progress=False)
    ids = [r["product_id"] for r in rows]

    wh, _ = make_catalog(tmp_path / "auto", 10)
    (rep,) = encode(wh, {"image": spec}, settings(precision="auto", bf16_mean_cosine=1.0), progress=False)
    if rep.bf16_cosine is None:
        pytest.skip("this CPU has no native bf16: auto is fp32 and runs no check")
    assert rep.precision == "fp32" and rep.bf16_cosine[0] < 1.0 and rep.encoded == 10
    np.testing.assert_array_equal(vectors(wh, spec, ids), vectors(wh32, spec, ids))

    wh16, _ = make_catalog(tmp_path / "bf16", 10)
    with pytest.raises(PrecisionMismatch, match="bf16_mean_cosine"):
        encode(wh16, {"image": spec}, settings(precision="bf16", bf16_mean_cosine=1.0), progress=False)
    assert EmbeddingStore(wh16, encoder_id(spec)).files() == []  # nothing written in a refused precision


def test_bf16_within_tolerance_writes_bf16_vectors_under_the_same_id(tmp_path, tiny_timm_ckpt):
    spec = timm_spec(tiny_timm_ckpt)
    wh, rows = make_catalog(tmp_path, 10)
    (rep,) = encode(wh, {"image": spec}, settings(precision="bf16", bf16_mean_cosine=0.9, bf16_min_cosine=0.9), progress=False)
    mean, lowest = rep.bf16_cosine
    assert rep.precision == "bf16" and 0.9 <= lowest <= mean < 1.0
    assert rep.encoder_id == encoder_id(spec)


def test_precision_settings_are_checked():
    with pytest.raises(ValidationError):
        EncodeSettings(precision="fp16")
    with pytest.raises(ValidationError):
        EncodeSettings(bf16_min_cosine=1.5)
    with pytest.raises(ValidationError):
        EncodeSettings(bf16_mean_cosine=0)


def test_auto_is_bf16_for_images_only_and_only_on_native_bf16():
    from features.precision import native_bf16, resolve

    assert resolve("auto", "title") == "fp32"
    assert resolve("auto", "image") == ("bf16" if native_bf16() else "fp32")
    assert resolve("bf16", "title") == "bf16" and resolve("fp32", "image") == "fp32"
