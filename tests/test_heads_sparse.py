"""Sparse feature blocks: the hashed title encoders held as CSR give the same model as dense ones."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse as sp

from features.encoders.hashing import HashingEncoder
from features.store import EmbeddingStore
from heads.features import Block, dense_rows, from_arrays, read_features
from heads.predict import HEADS
from heads.settings import LightGBMSettings, MLPSettings, TrainSettings
from heads.targets import TargetSpec
from warehouse.layout import open_warehouse

WORDS = ["red", "blue", "navy", "black", "white", "shirt", "tee", "jeans", "shoe", "bag", "watch",
         "men", "women", "kids", "casual", "formal", "sport", "cotton", "slim", "classic"]


def _hashed(titles: list[str]) -> np.ndarray:
    """The hashing encoder's own vectors (what `vitrine encode` stores for a title_words encoder)."""
    enc = HashingEncoder("hashing:word:1-2:512:none:title", "word:1-2:512")
    return enc.forward(enc.tokenize(titles)).numpy()


def _titles(rng: np.random.Generator, n: int) -> tuple[list[str], np.ndarray]:
    """Titles of 3-6 words; the class is which of the first three words the title starts with."""
    c = rng.integers(0, 3, n)
    titles = [" ".join([WORDS[k]] + list(rng.choice(WORDS[3:], rng.integers(2, 6)))) for k in c]
    return titles, c


def _problem(sparse: bool):
    """A hashed word block (CSR or dense) beside a dense 8-d block, 3 classes and a log price."""
    rng = np.random.default_rng(7)
    n = 300
    titles, c = _titles(rng, n)
    words = _hashed(titles).astype(np.float32)
    dense = (rng.normal(0, 1, (n, 8)) + c[:, None] * 0.3).astype(np.float32)
    found = rng.random(n) > 0.2
    dense[~found] = 0
    blocks = [Block("title_words", "hashing:word:1-2:512:none:title", "title", 512),
              Block("image", "timm:x:hub:image", "image", 8)]
    assert blocks[0].is_sparse and not blocks[1].is_sparse
    arrays = {blocks[0].encoder_id: (sp.csr_matrix(words) if sparse else words, np.ones(n, bool)),
              blocks[1].encoder_id: (dense, found)}
    feats = from_arrays([f"p{i}" for i in range(n)], blocks, arrays)
    specs = [TargetSpec("cls", "classification", ["a", "b", "c"]), TargetSpec("price", "regression", transform="log")]
    y = {"cls": c.astype(np.int64), "price": 3 + 0.4 * c + 0.1 * dense[:, 0].astype(np.float64)}
    return feats, specs, y


@pytest.mark.parametrize("head_name", ["mlp", "lightgbm"])
def test_sparse_blocks_train_the_same_model_as_dense_ones(head_name):
    ts = TrainSettings(lightgbm=LightGBMSettings(num_boost_round=20, reduce_dim=4, stack_dim=8, min_data_in_leaf=5,
                                                 stack_folds=3, num_threads=1),
                       mlp=MLPSettings(hidden=32, max_epochs=15, lr=1e-2, batch_size=32, threads=1, ensemble=1))
    idx = np.arange(300)
    out = {}
    for sparse in (True, False):
        feats, specs, y = _problem(sparse)
        assert sp.issparse(feats.matrices["hashing:word:1-2:512:none:title"]) is sparse
        head = HEADS[head_name](ts, specs).fit(feats, y, idx[:220], idx[220:260], log=lambda m: None)
        out[sparse] = head.predict(feats)
    for k in out[True]:
        assert np.array_equal(out[True][k], out[False][k]), k
    acc = (out[True]["cls"][260:].argmax(1) == _problem(True)[2]["cls"][260:]).mean()
    assert acc > 0.9  # the model learnt the class from the title words, not just agreed with itself


def test_store_reads_csr_equal_to_dense_and_streams_in_chunks(tmp_path):
    wh = open_warehouse(tmp_path / "wh")
    rng = np.random.default_rng(0)
    titles, _ = _titles(rng, 50)
    vectors = _hashed(titles).astype(np.float32)
    store = EmbeddingStore(wh, "hashing:word:1-2:512:none:title")
    ids = [f"p{i}" for i in range(50)]
    store.write_chunk(ids[:30], [f"h{i}" for i in range(30)], vectors[:30])
    store.write_chunk(ids[30:], [f"h{i}" for i in range(30, 50)], vectors[30:])
    want = ["nobody"] + ids[::-1]
    hashes = ["h0"] + [f"h{i}" if i % 7 else "stale" for i in range(49, -1, -1)]
    dense, mask = store.read_matrix(want, hashes, chunk_rows=4)
    csr, mask_s = store.read_matrix(want, hashes, sparse=True, chunk_rows=4)
    assert sp.issparse(csr) and csr.shape == dense.shape == (51, 512)
    assert np.array_equal(mask, mask_s)
    assert np.array_equal(csr.toarray(), dense)
    assert not mask[0] and mask.sum() == 50 - 8  # unknown product and the 8 stale hashes are missing
    assert np.array_equal(dense[2], vectors[48]) and not dense[1].any()  # p49 is stale
    assert csr.nnz == np.count_nonzero(dense)


def test_read_features_gives_csr_for_hashing_blocks_only(tmp_path):
    import pyarrow as pa

    wh = open_warehouse(tmp_path / "wh")
    rng = np.random.default_rng(1)
    titles, _ = _titles(rng, 20)
    hashed = Block("title_words", "hashing:word:1-2:512:none:title", "title")
    dense_b = Block("title", "bert:x:hub:title", "title")
    ids, hashes = [f"p{i}" for i in range(20)], [f"t{i}" for i in range(20)]
    EmbeddingStore(wh, hashed.encoder_id).write_chunk(ids, hashes, _hashed(titles))
    EmbeddingStore(wh, dense_b.encoder_id).write_chunk(ids, hashes, rng.normal(0, 1, (20, 6)))
    products = pa.table({"product_id": ids, "title_sha256": hashes})
    f_sparse = read_features(wh, products, [hashed, dense_b])
    f_dense = read_features(wh, products, [hashed, dense_b], sparse=False)
    assert sp.issparse(f_sparse.matrices[hashed.encoder_id]) and not sp.issparse(f_sparse.matrices[dense_b.encoder_id])
    assert not sp.issparse(f_dense.matrices[hashed.encoder_id])
    for eid in f_dense.matrices:
        assert np.array_equal(dense_rows(f_sparse.matrices[eid]), f_dense.matrices[eid])
    part = f_sparse.take(np.array([3, 1]))
    assert np.array_equal(dense_rows(part.matrices[hashed.encoder_id]), f_dense.matrices[hashed.encoder_id][[3, 1]])
