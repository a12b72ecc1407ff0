"""Encoder families: tiny real models through the same registry the runner uses."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from conftest_features import (  # noqa: F401  (fixtures)
    TINY_CLIP, bert_spec, tiny_bert_dir, tiny_clip_ckpt, tiny_timm_ckpt, timm_spec, title_of, write_image,
)
from features.encoders import WeightsUnavailable, load_encoder
from features.encoders.clip import load_clip
from features.identity import encoder_id
from features.settings import EncoderSpec

TITLES = [title_of(i) for i in range(12)] + ["red", "an unknown wordpiece zzzq title"]


def test_bert_dynamic_padding_equals_max_length_and_single(tiny_bert_dir):
    enc = load_encoder(bert_spec(tiny_bert_dir))
    assert enc.dim == 32 and enc.max_length == 32
    with torch.inference_mode():
        dyn = enc.forward(enc.tokenize(TITLES))
        full = enc.forward(enc.tokenize(TITLES, pad_to_max=True))
        one = torch.cat([enc.forward(enc.tokenize([t])) for t in TITLES])
    assert enc.tokenize(TITLES)["input_ids"].shape[1] < 32 == enc.tokenize(TITLES, pad_to_max=True)["input_ids"].shape[1]
    torch.testing.assert_close(dyn, full, atol=1e-5, rtol=0)
    torch.testing.assert_close(dyn, one, atol=1e-5, rtol=0)
    torch.testing.assert_close(dyn.norm(dim=1), torch.ones(len(TITLES)), atol=1e-5, rtol=0)


def test_clip_trimmed_text_equals_encode_text_and_model_loaded_once(tiny_clip_ckpt):
    load_clip.cache_clear()
    img = load_encoder(EncoderSpec(family="clip", model=TINY_CLIP, checkpoint=tiny_clip_ckpt, input="image"))
    txt = load_encoder(EncoderSpec(family="clip", model=TINY_CLIP, checkpoint=tiny_clip_ckpt, input="title"))
    assert load_clip.cache_info().misses == 1 and img.model is txt.model
    assert img.dim == txt.dim == 32 and txt.trim
    assert img.encoder_id != txt.encoder_id and "sha-" in img.encoder_id
    import open_clip

    tok = open_clip.get_tokenizer(TINY_CLIP)(TITLES)
    batch = txt.tokenize(TITLES)
    assert batch["input_ids"].shape[1] < 77
    with torch.inference_mode():
        ours = txt.forward(batch)
        theirs = F.normalize(txt.model.encode_text(tok), dim=-1)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)


def test_timm_checkpoint_equals_direct_forward(tiny_timm_ckpt, tmp_path):
    import timm
    import timm.data

    enc = load_encoder(timm_spec(tiny_timm_ckpt))
    model = timm.create_model("test_efficientnet", pretrained=False)
    model.load_state_dict(torch.load(tiny_timm_ckpt, weights_only=True))
    model.reset_classifier(0)
    model.eval()
    tf = timm.data.create_transform(**timm.data.resolve_data_config({}, model=model))
    write_image(tmp_path / "a.jpg", 1)
    x = tf(Image.open(tmp_path / "a.jpg").convert("RGB")).unsqueeze(0)
    with torch.inference_mode():
        torch.testing.assert_close(enc.forward(enc.prepare(x)), model(x), atol=1e-5, rtol=0)
    assert enc.dim == model.num_features


def test_resnet_checkpoint_pooled_penultimate(tmp_path):
    import torchvision

    torch.manual_seed(3)
    ref = torchvision.models.resnet18(weights=None).eval()
    torch.save(ref.state_dict(), tmp_path / "r18.pth")
    enc = load_encoder(EncoderSpec(family="resnet", model="resnet18", checkpoint=tmp_path / "r18.pth", input="image"))
    assert enc.dim == 512 and enc.channels_last
    ref.fc = torch.nn.Identity()
    x = torch.rand(2, 3, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(enc.forward(enc.prepare(x)), ref(x), atol=1e-5, rtol=0)


def test_encoder_id_changes_with_weights(tiny_timm_ckpt, tmp_path):
    from conftest_features import save_timm_checkpoint

    other = save_timm_checkpoint(tmp_path / "other.pth", seed=1)
    a, b = encoder_id(timm_spec(tiny_timm_ckpt)), encoder_id(timm_spec(other))
    assert a != b and a.startswith("timm:test_efficientnet:hub:image:sha-")


def test_missing_weights_say_which_and_how(tmp_path):
    spec = EncoderSpec(family="timm", model="test_efficientnet", checkpoint=tmp_path / "nope.pth", input="image")
    with pytest.raises(WeightsUnavailable) as e:
        from features.encoders import timm_models

        timm_models.build(spec, "x")
    msg = str(e.value)
    assert "nope.pth" in msg and "HF_HUB_OFFLINE=1" in msg and "checkpoint:" in msg


def test_missing_hub_weights_offline(monkeypatch):
    """A hub id not in the cache, offline: a WeightsUnavailable naming the hub id, not a traceback."""
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsUnavailable) as e:
        load_encoder(EncoderSpec(family="bert", model="vitrine-test/not-cached-anywhere", input="title"))
    assert "vitrine-test/not-cached-anywhere" in str(e.value) and "HF_HOME" in str(e.value)


def test_unknown_family_input_mismatch():
    with pytest.raises(ValueError):
        load_encoder(EncoderSpec(family="resnet", model="resnet18", pretrained="random", input="title"))


def test_hashing_words_equal_sklearn_and_store_through_runner(tmp_path):
    from sklearn.feature_extraction.text import HashingVectorizer

    from conftest_features import make_catalog, settings
    from features.encode import encode
    from features.store import EmbeddingStore

    spec = EncoderSpec(family="hashing", model="word:1-2:64", input="title")
    enc = load_encoder(spec)
    assert enc.dim == 64 and encoder_id(spec) == "hashing:word:1-2:64:none:title"
    ref = HashingVectorizer(ngram_range=(1, 2), n_features=64, binary=True, alternate_sign=False, norm="l2")
    with torch.inference_mode():
        ours = enc.forward(enc.tokenize(TITLES)).numpy()
    np.testing.assert_allclose(ours, ref.transform(TITLES).toarray(), atol=1e-6)
    # same words in another order share their unigrams; another colour changes the vector
    a, b, c = (enc.tokenize([t]).numpy()[0] for t in ["navy blue shirt", "shirt navy blue", "red shirt"])
    assert 0.5 < a @ b < 1.0 and a @ c < a @ b

    wh, rows = make_catalog(tmp_path, 7)
    first = encode(wh, {"title_words": spec}, settings(batch_size=3, chunk_rows=4), progress=False)
    assert (first[0].encoded, first[0].dim) == (7, 64)
    stored, found = EmbeddingStore(wh, first[0].encoder_id).read_matrix([r["product_id"] for r in rows])
    assert found.all()
    np.testing.assert_allclose(stored, ref.transform([r["title"] for r in rows]).toarray(), atol=1e-6)
    assert encode(wh, {"title_words": spec}, settings(), progress=False)[0].encoded == 0


@pytest.mark.parametrize("model", ["words:1-2:64", "word:2-1:64", "word:1-2", "word:1-2:1"])
def test_hashing_bad_model_string_names_the_format(model):
    with pytest.raises(ValueError, match="hashing model"):
        load_encoder(EncoderSpec(family="hashing", model=model, input="title"))
