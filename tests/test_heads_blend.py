"""The linear, nearest-neighbour and blend heads: on generated data whose answer is known.

Two inputs carry different halves of the signal: a dense "embedding" block separates the classes
by a linear boundary (a linear model's strength), a sparse block of hashed n-gram presence repeats
a product's twin (nearest neighbours' strength). The blend, weighted on validation rows, must be
at least as good as its best member there, a reloaded blend must predict identically, and
`train.heads: [blend]` must train, calibrate and register one end to end.
"""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from heads import registry
from heads.blend_head import BlendHead, score, simplex_grid
from heads.features import Block, Features
from heads.knn_head import KNNHead
from heads.linear_head import LinearHead
from heads.predict import load_model, predict_products
from heads.settings import BlendSettings, KNNSettings, LinearSettings, MLPSettings, TrainSettings
from heads.targets import TargetSpec
from heads.train import train

from test_heads_train import build_warehouse, make_settings

N, D_DENSE, D_HASH = 900, 8, 64
SPECS = [TargetSpec("kind", "classification", classes=["a", "b", "c", "d"]), TargetSpec("price", "regression", transform="log")]


def generated(seed: int = 0, sparse: bool = True) -> tuple[Features, dict[str, np.ndarray]]:
    """Class = linear in the dense block for half the rows; the other half are twins of a prototype,
    recognisable only from their sparse n-grams. Log price follows the same two halves."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, N)
    centers = rng.normal(0, 2.0, (4, D_DENSE))
    dense = (centers[y] + rng.normal(0, 1.5, (N, D_DENSE))).astype(np.float32)
    protos = (rng.random((40, D_HASH)) < 0.15).astype(np.float32)
    proto_class = rng.integers(0, 4, 40)
    which = rng.integers(0, 40, N)
    twin = rng.random(N) < 0.5
    y = np.where(twin, proto_class[which], y)
    hashed = np.where(twin[:, None], protos[which], (rng.random((N, D_HASH)) < 0.05)).astype(np.float32)
    hashed /= np.maximum(np.linalg.norm(hashed, axis=1, keepdims=True), 1e-9)
    log_price = 5.0 + 0.3 * dense[:, 0] + np.where(twin, 0.1 * which, 0.0) + rng.normal(0, 0.05, N)
    blocks = [Block("title", "synthetic:title", "title", D_DENSE), Block("title_chars", "synthetic:chars", "title", D_HASH)]
    mats = {"synthetic:title": dense, "synthetic:chars": sp.csr_matrix(hashed) if sparse else hashed}
    found = {k: np.ones(N, dtype=bool) for k in mats}
    found["synthetic:title"][::17] = False  # some rows lack the embedding
    mats["synthetic:title"][~found["synthetic:title"]] = 0.0
    return Features([f"p{i}" for i in range(N)], blocks, mats, found), {"kind": y, "price": log_price}


def settings(members=("linear", "knn")) -> TrainSettings:
    return TrainSettings(
        features=["title", "title_chars"], classification_targets=["kind"], regression_targets=["price"],
        linear=LinearSettings(C=[0.3, 3.0], alpha=[0.1, 1.0]), knn=KNNSettings(k=[1, 3, 8]),
        blend=BlendSettings(members=list(members), step=0.1, prior_tau=[0.0, 0.5, 1.0]),
        mlp=MLPSettings(hidden=32, max_epochs=15, patience=3, ensemble=1, threads=1, batch_size=64),
    )


ROWS = np.arange(N)
TRAIN, VAL, TEST = ROWS[:600], ROWS[600:750], ROWS[750:]


def test_simplex_grid_covers_every_member_alone():
    g = simplex_grid(3, 0.5)
    assert np.allclose(g.sum(axis=1), 1.0)
    assert {tuple(r) for r in g} >= {(1, 0, 0), (0, 1, 0), (0, 0, 1), (0.5, 0.5, 0)}


def test_blend_at_least_as_good_as_its_best_member_on_validation_and_beats_each_on_test():
    feats, y = generated()
    ts = settings()
    blend = BlendHead(ts, SPECS).fit(feats, y, TRAIN, VAL, log=lambda _m: None)
    val = feats.take(VAL)
    mixed = blend.predict(val)
    members = {name: m.predict(val) for name, m in blend.members}
    for s in SPECS:
        best_alone = max(score(s, y[s.name][VAL], out[s.name]) for out in members.values())
        assert score(s, y[s.name][VAL], mixed[s.name]) >= best_alone - 1e-12
        w = blend.weights[s.name]
        assert sum(w) == pytest.approx(1.0) and 0 < max(w) < 1  # both halves of the signal used
    # on rows neither the members nor the weights saw, the mix is better than either member
    test = feats.take(TEST)
    mixed, members = blend.predict(test), {name: m.predict(test) for name, m in blend.members}
    acc = {k: np.mean(v["kind"].argmax(axis=1) == y["kind"][TEST]) for k, v in members.items()}
    assert np.mean(mixed["kind"].argmax(axis=1) == y["kind"][TEST]) > max(acc.values())
    lin = LinearHead(ts, SPECS).fit(feats, y, TRAIN, VAL, log=lambda _m: None)
    assert lin.chosen["kind"] in (0.3, 3.0) and lin.chosen["price"] in (0.1, 1.0)


def test_linear_and_knn_take_dense_or_sparse_blocks_alike():
    dense_feats, y = generated(sparse=False)
    sparse_feats, _ = generated(sparse=True)
    ts = settings()
    for cls in (LinearHead, KNNHead):
        a = cls(ts, SPECS).fit(dense_feats, y, TRAIN, VAL, log=lambda _m: None).predict(dense_feats.take(TEST))
        b = cls(ts, SPECS).fit(sparse_feats, y, TRAIN, VAL, log=lambda _m: None).predict(sparse_feats.take(TEST))
        for s in SPECS:
            np.testing.assert_allclose(a[s.name], b[s.name], rtol=1e-6, atol=1e-9)
        p = a["price"]
        assert np.all(p[:, 1] <= p[:, 0]) and np.all(p[:, 0] <= p[:, 2])


def test_linear_features_narrow_the_blocks_the_linear_head_reads():
    """The twins' class is in the sparse block only: the linear model on the dense block alone
    reads one block and is clearly worse than on both; a name no block has falls back to every block."""
    feats, y = generated()
    ts = settings()
    both = LinearHead(ts, SPECS).fit(feats, y, TRAIN, VAL, log=lambda _m: None)
    ts.linear.features = ["title"]
    dense_only = LinearHead(ts, SPECS).fit(feats, y, TRAIN, VAL, log=lambda _m: None)
    assert dense_only.inputs.encoder_ids == ["synthetic:title"]
    assert both.inputs.encoder_ids == ["synthetic:title", "synthetic:chars"]
    test = feats.take(TEST)
    acc = {k: np.mean(h.predict(test)["kind"].argmax(axis=1) == y["kind"][TEST]) for k, h in
           (("both", both), ("dense", dense_only))}
    assert acc["dense"] < acc["both"] - 0.1, acc
    ts.linear.features = ["no_such_block"]
    assert LinearHead(ts, SPECS).fit(feats, y, TRAIN, VAL, log=lambda _m: None).inputs.encoder_ids == both.inputs.encoder_ids


def test_each_C_candidate_is_its_own_fit():
    """The C picked on validation gives the model a fresh fit at that C gives: no candidate is a
    copy of a smaller one (warm-started, lbfgs stopped at or near the last C's solution)."""
    from sklearn.linear_model import LogisticRegression

    feats, y = generated()
    ts = settings()
    ts.classification_targets, ts.regression_targets = ["kind"], []
    ts.linear.C = [0.01, 100.0]
    head = LinearHead(ts, SPECS[:1]).fit(feats, y, TRAIN, VAL, log=lambda _m: None)
    x = head.inputs.transform(feats)
    fresh = {c: LogisticRegression(C=c, max_iter=ts.linear.max_iter, random_state=ts.seed).fit(x[TRAIN], y["kind"][TRAIN])
             for c in ts.linear.C}
    assert not np.allclose(fresh[0.01].coef_, fresh[100.0].coef_, atol=1e-3)
    np.testing.assert_allclose(head.models["kind"].coef_, fresh[head.chosen["kind"]].coef_, rtol=1e-6, atol=1e-8)


def test_linear_optional_features_are_left_out_where_they_are_noise(tmp_path):
    """A third block that carries one target and is noise to the other: with it optional, each
    target's model keeps it or leaves it out on validation, and a reloaded head predicts the same."""
    feats, y = generated()
    rng = np.random.default_rng(1)
    shade = rng.integers(0, 3, N)
    noise = rng.normal(0, 1.0, (N, 40)).astype(np.float32)
    noise[:, :3] += 3.0 * np.eye(3, dtype=np.float32)[shade]  # "colour": shade is in it, kind is not
    feats = Features(feats.product_ids, [*feats.blocks, Block("colour", "synthetic:colour", "image", 40)],
                     {**feats.matrices, "synthetic:colour": noise}, {**feats.found, "synthetic:colour": np.ones(N, dtype=bool)})
    specs = [SPECS[0], TargetSpec("shade", "classification", classes=["x", "y", "z"])]
    y = {"kind": y["kind"], "shade": shade}
    ts = settings()
    ts.classification_targets, ts.regression_targets = ["kind", "shade"], []
    ts.linear.C = [30.0, 300.0]  # weakly penalised: the noise block costs the kind model
    plain = LinearHead(ts, specs).fit(feats, y, TRAIN, VAL, log=lambda _m: None)
    assert plain.narrow is None and set(plain.reads.values()) == {"all"}
    ts.linear.optional_features = ["colour"]
    lines = []
    head = LinearHead(ts, specs).fit(feats, y, TRAIN, VAL, log=lines.append)
    assert head.reads == {"kind": "narrow", "shade": "all"}, lines
    assert head.narrow.encoder_ids == ["synthetic:title", "synthetic:chars"]
    assert any("kind" in m and "without colour" in m for m in lines), lines
    test = feats.take(TEST)
    acc = {k: np.mean(h.predict(test)[t].argmax(axis=1) == y[t][TEST]) for k, h in (("plain", plain), ("optional", head))
           for t in ("kind",)}
    assert acc["optional"] >= acc["plain"], acc
    assert np.mean(head.predict(test)["shade"].argmax(axis=1) == shade[TEST]) > 0.9
    reloaded = LinearHead.load(tmp_path, ts, specs, head.save(tmp_path))
    for t in ("kind", "shade"):
        np.testing.assert_array_equal(reloaded.predict(test)[t], head.predict(test)[t])


def test_mlp_features_narrow_the_blocks_the_net_reads(tmp_path):
    """`mlp.features` leaves a block to the other members: the net on the dense block alone does not
    change its output when the sparse block changes, and is clearly worse on the twins that only
    the sparse block tells apart; a reloaded net reads the same blocks."""
    from heads.mlp_head import MLPHead

    feats, y = generated()
    ts = settings()
    both = MLPHead(ts, SPECS).fit(feats, y, TRAIN, VAL, log=lambda _m: None)
    ts.mlp.features = ["title"]
    dense_only = MLPHead(ts, SPECS).fit(feats, y, TRAIN, VAL, log=lambda _m: None)
    assert dense_only.block_order == ["synthetic:title"]
    assert both.block_order == ["synthetic:title", "synthetic:chars"]
    test = feats.take(TEST)
    acc = {k: np.mean(h.predict(test)["kind"].argmax(axis=1) == y["kind"][TEST]) for k, h in
           (("both", both), ("dense", dense_only))}
    assert acc["dense"] < acc["both"] - 0.1, acc
    shuffled = feats.take(TEST)
    shuffled.matrices["synthetic:chars"] = shuffled.matrices["synthetic:chars"][::-1]
    np.testing.assert_array_equal(dense_only.predict(shuffled)["kind"], dense_only.predict(test)["kind"])
    assert not np.array_equal(both.predict(shuffled)["kind"], both.predict(test)["kind"])
    reloaded = MLPHead.load(tmp_path, ts, SPECS, dense_only.save(tmp_path))
    np.testing.assert_array_equal(reloaded.predict(test)["kind"], dense_only.predict(test)["kind"])


def test_reloaded_blend_predicts_identically(tmp_path):
    feats, y = generated()
    ts = settings(members=("mlp", "linear", "knn"))
    feats.matrices["synthetic:chars"] = feats.matrices["synthetic:chars"].toarray()  # the MLP reads dense blocks
    blend = BlendHead(ts, SPECS).fit(feats, y, TRAIN, VAL, log=lambda _m: None)
    part = blend.save(tmp_path)
    again = BlendHead.load(tmp_path, ts, SPECS, part)
    a, b = blend.predict(feats.take(TEST)), again.predict(feats.take(TEST))
    assert [n for n, _ in again.members] == ["mlp", "linear", "knn"] and again.weights == blend.weights
    assert again.tau == blend.tau and set(again.log_prior) == set(blend.log_prior) == {"kind"}
    for s in SPECS:
        assert np.array_equal(a[s.name], b[s.name])


def test_train_heads_blend_from_config_end_to_end(tmp_path):
    s = make_settings(heads=["blend"], refit_all=False, label_folds=0,
                      blend=BlendSettings(members=["mlp", "linear"], step=0.25),
                      linear=LinearSettings(C=[1.0], alpha=[1.0]))
    wh, truth = build_warehouse(tmp_path / "wh", s)
    result = train(wh, s, progress=False)
    assert [m.head for m in result] == ["blend"]
    current = registry.current_models(wh)
    assert [c["model_id"] for c in current] == [result[0].model_id]
    t = result[0].metrics["targets"]
    assert t["gender"]["test"]["accuracy"] > 0.95
    assert t["price"]["test"]["r2_log"] > 0.8
    assert "price" in result[0].metrics["calibration"]["offsets"]  # the interval is conformalised on top
    model = load_model(wh, result[0].model_id)
    assert model.head == "blend" and model.spec["calibration"] == result[0].metrics["calibration"]["offsets"]
    ids = truth["ids"][:50]
    p1, p2 = predict_products(wh, model, ids), predict_products(wh, load_model(wh, result[0].model_id), ids)
    for name in p1:
        for attr in ("probs", "value", "lower", "upper"):
            a, b = getattr(p1[name], attr), getattr(p2[name], attr)
            assert (a is None and b is None) or np.array_equal(a, b)
    assert np.all(p1["price"].lower <= p1["price"].value) and np.all(p1["price"].value <= p1["price"].upper)


def test_prior_adjustment_lifts_macro_f1_without_losing_validation_accuracy():
    """Long tail, balanced validation rows: dividing by the prior recovers rare classes, and the
    chosen tau never costs validation accuracy."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    from heads.blend_head import adjust, choose_tau
    from test_heads_rare import COUNTS, long_tail

    x, y, n_tr = long_tail()
    p = LogisticRegression(max_iter=500).fit(x[:n_tr], y[:n_tr]).predict_proba(x[n_tr:])
    log_prior = np.log(np.asarray(COUNTS, dtype=np.float64) / sum(COUNTS))
    yv = y[n_tr:]
    tau, f1, acc = choose_tau(yv, p, log_prior, [0.25, 0.5, 1.0])
    plain = p.argmax(axis=1)
    assert tau > 0
    assert f1 > f1_score(yv, plain, average="macro") + 0.05
    assert acc >= np.mean(plain == yv)
    assert np.allclose(adjust(p, log_prior, tau).sum(axis=1), 1.0)
    assert adjust(p, log_prior, 0.0) is p
