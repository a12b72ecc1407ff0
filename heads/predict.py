"""Load a saved model and predict for products, reading their embeddings in bulk.

The model decides which encoder ids it reads (those it was trained on), and each product's
current content hash of the encoder's input decides whether a stored vector is fresh. Features
from other encoder ids or dimensions are refused with `FeatureMismatch`.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from heads.conformal import apply_calibration
from heads.features import Block, Features, check_features, product_columns, read_features
from heads.blend_head import MEMBERS, BlendHead
from heads.settings import TrainSettings
from heads.targets import TargetSpec
from warehouse.layout import Warehouse
from warehouse.tables import product_column_names, read_products

SPEC_FILE = "model.json"
HEADS = {**MEMBERS, "blend": BlendHead}


@dataclass
class TargetPrediction:
    """Per target, rows aligned to `product_ids`.

    classification: labels (n, k) str and probs (n, k) float, best first.
    regression: value, lower, upper (n,) in the original unit (e.g. INR).
    `has_features` is False for products with no fresh vector of any encoder (a prior guess).
    """

    target: str
    kind: str
    product_ids: list[str]
    has_features: np.ndarray
    labels: np.ndarray | None = None
    probs: np.ndarray | None = None
    value: np.ndarray | None = None
    lower: np.ndarray | None = None
    upper: np.ndarray | None = None


@dataclass
class LoadedModel:
    model_id: str
    head: str
    directory: Path
    spec: dict
    targets: list[TargetSpec]
    blocks: list[Block]
    impl: object = field(repr=False)

    @property
    def encoder_ids(self) -> list[str]:
        return [b.encoder_id for b in self.blocks]

    def check_features(self, features: Features) -> None:
        check_features(features, self.blocks)

    def predict_features(self, features: Features) -> dict[str, np.ndarray]:
        """Raw outputs: probabilities (n, C), or log [value, lower, upper] (n, 3)."""
        self.check_features(features)
        return apply_calibration(self.impl.predict(features), self.spec.get("calibration") or {})


def save_spec(directory: Path, spec: dict) -> None:
    (directory / SPEC_FILE).write_text(json.dumps(spec, indent=2, default=str, sort_keys=False))


def load_model(wh: Warehouse, model_id: str) -> LoadedModel:
    from heads.registry import get_model

    row = get_model(wh, model_id)
    directory = Path(row["artifact_path"])
    if not (directory / SPEC_FILE).exists():
        directory = wh.model_dir(model_id)
    spec = json.loads((directory / SPEC_FILE).read_text())
    settings = TrainSettings.model_validate(spec["settings"])
    targets = [TargetSpec.from_dict(t) for t in spec["targets"]]
    blocks = [Block.from_dict(b) for b in spec["blocks"]]
    impl = HEADS[spec["head"]].load(directory, settings, targets, spec["head_part"])
    return LoadedModel(model_id, spec["head"], directory, spec, targets, blocks, impl)


def split_products(wh: Warehouse, model: LoadedModel, columns: Sequence[str] | None = None) -> tuple[pa.Table, np.ndarray]:
    """The products of the model's evaluation split in the split's order, and each one's part
    (train, val, calibration, test): what its reported figures were measured on."""
    import pyarrow.parquet as pq

    split = pq.read_table(model.directory / "split.parquet")
    products = read_products(wh, columns=list(columns) if columns else None)
    products = products.take(pc.index_in(split["product_id"], value_set=products["product_id"]))
    return products, np.array(split["split"].to_pylist())


def to_predictions(model: LoadedModel, raw: dict[str, np.ndarray], features: Features, top_k: int = 3) -> dict[str, TargetPrediction]:
    """Top-k labels with probabilities, or value and interval in the original unit."""
    has = features.any_found()
    out: dict[str, TargetPrediction] = {}
    for spec in model.targets:
        if spec.name not in raw:
            continue
        r = raw[spec.name]
        tp = TargetPrediction(spec.name, spec.kind, features.product_ids, has)
        if spec.kind == "classification":
            k = min(top_k, r.shape[1])
            order = np.argsort(-r, axis=1, kind="stable")[:, :k]
            tp.labels = np.asarray(spec.classes, dtype=object)[order].astype(str)
            tp.probs = np.take_along_axis(r, order, axis=1)
        else:
            tp.value, tp.lower, tp.upper = np.exp(r[:, 0]), np.exp(r[:, 1]), np.exp(r[:, 2])
        out[spec.name] = tp
    return out


def _products_for(wh: Warehouse, product_ids: Sequence[str] | None, blocks: Sequence[Block] = ()) -> pa.Table:
    have = set(product_column_names(wh))
    cols = ["product_id", "image_sha256", "title_sha256"] + [c for c in product_columns(blocks) if c in have]
    t = read_products(wh, columns=cols)
    if product_ids is None:
        return t
    ids = pa.array(list(product_ids), pa.string())
    pos = pc.index_in(ids, value_set=t["product_id"])
    if pos.null_count:
        missing = [p for p, i in zip(ids.to_pylist(), pos.to_pylist()) if i is None][:5]
        raise KeyError(f"products not in the warehouse: {missing}")
    return t.take(pos)


def predict_products(
    wh: Warehouse,
    model: LoadedModel | str,
    product_ids: Sequence[str] | None = None,
    products: pa.Table | None = None,
    top_k: int = 3,
) -> dict[str, TargetPrediction]:
    """Predict every target of `model` for the products, order kept.

    `products` (columns product_id, image_sha256, title_sha256, e.g. a batch of the products
    table) avoids re-reading the products table; otherwise `product_ids` are looked up there
    (None = every product).
    """
    if isinstance(model, str):
        model = load_model(wh, model)
    if products is None:
        products = _products_for(wh, product_ids, model.blocks)
    features = read_features(wh, products, model.blocks)
    return to_predictions(model, model.predict_features(features), features, top_k)
