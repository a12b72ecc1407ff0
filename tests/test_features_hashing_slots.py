"""Hashed title n-grams stored as slot numbers (`max_ngrams`): collision-free presence, a fixed vocabulary."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from scipy import sparse as sp
from sklearn.feature_extraction.text import HashingVectorizer

from features.encoders import load_encoder
from features.identity import encoder_id
from features.settings import EncoderSpec
from features.store import EmbeddingStore
from heads.features import Block, FeatureMismatch, read_features
from warehouse.layout import open_warehouse

TITLES = ["Navy Blue Slim Fit Shirt", "Red Cotton Tee", "navy blue jeans", "Black Leather Watch",
          "red tee", "Navy Blue Shirt", "Blue Canvas Shoes", "White Linen Shirt"]
MODEL = "char_wb:2-4:1048576;max_ngrams=128"
SPEC = EncoderSpec(family="hashing", model=MODEL, input="title")


def _stored(titles: list[str]) -> np.ndarray:
    enc = load_encoder(SPEC)
    return enc.forward(enc.tokenize(titles)).numpy()


def _reference(titles: list[str]) -> sp.csr_matrix:
    """What the dense layout would hold at the same number of slots (binary presence, L2-normalised)."""
    return HashingVectorizer(analyzer="char_wb", ngram_range=(2, 4), n_features=1 << 20, binary=True,
                             alternate_sign=False, norm="l2").transform(titles).tocsr()


def _warehouse(tmp_path, titles):
    wh = open_warehouse(tmp_path / "wh")
    ids, hashes = [f"p{i}" for i in range(len(titles))], [f"t{i}" for i in range(len(titles))]
    EmbeddingStore(wh, encoder_id(SPEC)).write_chunk(ids, hashes, _stored(titles))
    return wh, pa.table({"product_id": ids, "title_sha256": hashes})


def test_encoder_stores_each_titles_slots_plus_one_ascending_and_zero_padded():
    enc = load_encoder(SPEC)
    assert enc.dim == 128 and encoder_id(SPEC) == f"hashing:{MODEL}:none:title"
    got = _stored(TITLES)
    ref = _reference(TITLES)
    for i in range(len(TITLES)):
        want = np.sort(ref.indices[ref.indptr[i]:ref.indptr[i + 1]]) + 1
        row = got[i]
        assert np.array_equal(row[:len(want)], want) and not row[len(want):].any()
    # a title with more distinct n-grams than max_ngrams keeps the smallest slots, a fixed subset
    small = load_encoder(EncoderSpec(family="hashing", model="char_wb:2-4:1048576;max_ngrams=5", input="title"))
    long = small.forward(small.tokenize([TITLES[0]])).numpy()[0]
    assert np.array_equal(long, np.sort(ref.indices[ref.indptr[0]:ref.indptr[1]])[:5] + 1)


@pytest.mark.parametrize("model", ["char_wb:2-4:16777216;max_ngrams=8", "char_wb:2-4:4096;max_ngrams=0",
                                   "char_wb:2-4:4096;max_ngram=8"])
def test_bad_slot_model_names_the_format(model):
    with pytest.raises(ValueError, match="hashing model"):
        load_encoder(EncoderSpec(family="hashing", model=model, input="title"))


def test_training_read_gives_the_dense_numbers_over_the_vocabulary_and_a_model_keeps_it(tmp_path):
    wh, products = _warehouse(tmp_path, TITLES)
    block = Block("title_chars", encoder_id(SPEC), "title")
    assert block.stores_slots and block.is_sparse
    ref = _reference(TITLES)
    df = np.asarray((ref > 0).sum(axis=0)).ravel()

    every = read_features(wh, products, [block], min_df=1)
    b1 = every.blocks[0]
    assert np.array_equal(b1.codes, np.flatnonzero(df))  # every n-gram of the rows read, none shared
    x = every.matrices[block.encoder_id]
    assert sp.issparse(x) and x.shape == (len(TITLES), b1.dim)
    np.testing.assert_allclose(x.toarray(), ref[:, np.flatnonzero(df)].toarray(), rtol=1e-6)

    twice = read_features(wh, products, [block], min_df=2).blocks[0]
    assert np.array_equal(twice.codes, np.flatnonzero(df >= 2))
    capped = read_features(wh, products, [block], min_df=1, max_codes=10).blocks[0]
    assert len(capped.codes) == 10 and df[list(capped.codes)].min() >= np.sort(df)[::-1][9]

    # a trained model reads new titles through its own vocabulary: same width, unseen n-grams have no input
    new_titles = ["Navy Blue Shirt", "Qqq Zzz"]
    wh2, products2 = _warehouse(tmp_path / "new", new_titles)
    again = read_features(wh2, products2, [twice])
    assert again.blocks[0] == twice and again.matrices[block.encoder_id].shape == (2, twice.dim)
    assert again.found[block.encoder_id].all()
    assert again.matrices[block.encoder_id][0].nnz > 0 and again.matrices[block.encoder_id][1].nnz == 0
    dense = read_features(wh2, products2, [twice], sparse=False).matrices[block.encoder_id]
    assert np.array_equal(dense, again.matrices[block.encoder_id].toarray())


def test_vectors_of_another_layout_are_refused(tmp_path):
    wh, products = _warehouse(tmp_path, TITLES)
    other = Block("title_chars", f"hashing:char_wb:2-4:1048576;max_ngrams=64:none:title", "title")
    EmbeddingStore(wh, other.encoder_id).write_chunk(["p0"], ["t0"], np.zeros((1, 32), np.float32))
    with pytest.raises(FeatureMismatch, match="keeps 64 n-grams"):
        read_features(wh, products, [other])
    empty = Block("title_words", "hashing:word:1-2:1048576;max_ngrams=16:none:title", "title")
    with pytest.raises(FeatureMismatch, match="run `vitrine encode` first"):
        read_features(wh, products, [empty])


@pytest.mark.parametrize("head_name", ["lightgbm", "mlp", "linear"])
def test_heads_learn_from_slot_blocks_and_reload_identically(tmp_path, head_name):
    """The class is which colour word a title holds: every head finds it through the n-gram vocabulary
    (LightGBM through a truncated SVD of the sparse rows), and a saved model predicts the same."""
    from heads.predict import HEADS
    from heads.settings import LightGBMSettings, MLPSettings, TrainSettings
    from heads.targets import TargetSpec

    rng = np.random.default_rng(3)
    colours, rest = ["crimson", "turquoise", "mustard"], ["shirt", "tee", "slim", "cotton", "classic", "kids", "bag"]
    c = rng.integers(0, 3, 240)
    titles = [" ".join([colours[k], *rng.choice(rest, 3)]) for k in c]
    wh, products = _warehouse(tmp_path, titles)
    feats = read_features(wh, products, [Block("title_chars", encoder_id(SPEC), "title")])
    ts = TrainSettings(lightgbm=LightGBMSettings(num_boost_round=20, reduce_dim=8, stack_dim=16, min_data_in_leaf=5,
                                                 stack_folds=3, num_threads=1),
                       mlp=MLPSettings(hidden=32, max_epochs=20, lr=1e-2, batch_size=32, threads=1, ensemble=1))
    specs = [TargetSpec("colour", "classification", colours)]
    idx = np.arange(240)
    head = HEADS[head_name](ts, specs).fit(feats, {"colour": c.astype(np.int64)}, idx[:160], idx[160:200],
                                         log=lambda m: None)
    if head_name == "lightgbm":
        assert type(head.pcas[encoder_id(SPEC)]).__name__ == "TruncatedSVD"
    out = head.predict(feats)["colour"]
    assert (out[200:].argmax(1) == c[200:]).mean() > 0.9
    part = head.save(tmp_path / "model")
    again = HEADS[head_name].load(tmp_path / "model", ts, specs, part).predict(feats)["colour"]
    assert np.array_equal(out, again)
