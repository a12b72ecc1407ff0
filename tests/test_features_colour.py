"""The colour family: a histogram of the product's pixels, stored like any encoder's vectors."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from catalogs import write_fashion
from features.encode import encode
from features.encoders import load_encoder
from features.encoders.colour import histogram, parse_model
from features.settings import EncoderSpec
from flows.settings import Settings
from heads.train import train
from pipeline import shop_rows
from warehouse import open_warehouse
from warehouse.ingest import ingest

BINS = parse_model("hsv:12x3x3+4")


def product(colour, box, size=(60, 80)) -> Image.Image:
    """A studio shot: a coloured garment on a white background."""
    img = Image.new("RGB", size, (250, 250, 250))
    ImageDraw.Draw(img).rectangle(box, fill=colour)
    return img


def test_histogram_sees_the_product_not_the_background():
    small = histogram(product((200, 30, 30), (20, 25, 40, 55)), BINS)
    large = histogram(product((200, 30, 30), (5, 5, 55, 75)), BINS)
    blue = histogram(product((30, 30, 200), (20, 25, 40, 55)), BINS)
    hist = slice(0, 12 * 3 * 3 + 4)
    assert small[hist].sum() == pytest.approx(1.0) and len(small) == 12 * 3 * 3 + 4 + 3
    # the same red garment, small or large on the white page: the same colour histogram
    assert np.abs(small[hist] - large[hist]).sum() < 0.05
    assert small[-3] < large[-3]  # the region's share of the photo tells them apart
    # red and blue put their mass in different bins
    assert np.minimum(small[hist], blue[hist]).sum() < 0.05
    # a black garment is a grey-scale colour, not a hue
    black = histogram(product((10, 10, 10), (10, 10, 50, 70)), BINS)
    assert black[12 * 3 * 3:12 * 3 * 3 + 4].sum() > 0.95
    for bad in ("lab:4", "hsv:0x3x3+4"):
        with pytest.raises(ValueError):
            parse_model(bad)


def test_colour_encoder_is_stored_and_learns_base_colour_from_photos(tmp_path):
    enc = load_encoder(EncoderSpec(family="colour", model="hsv:12x3x3+4", input="image"))
    assert enc.dim == 12 * 3 * 3 + 4 + 3
    s = Settings.model_validate({
        "warehouse": {"path": str(tmp_path / "wh"), "lock_timeout_s": 0},
        "encoders": {"colour": {"family": "colour", "model": "hsv:12x3x3+4", "input": "image"}},
        "encode": {"batch_size": 16, "num_workers": 0, "threads": 1},
        "train": {"features": ["colour"], "classification_targets": ["base_colour"], "regression_targets": [],
                  "heads": ["mlp"], "min_class_count": 2, "label_folds": 0,
                  "mlp": {"max_epochs": 30, "patience": 5, "hidden": 32, "ensemble": 1, "threads": 1, "lr": 3e-3}},
    })
    wh = open_warehouse(s.warehouse.path)
    ingest(wh, write_fashion(tmp_path / "cat", shop_rows(120)), s.ingest)
    (report,) = encode(wh, s.encoders, s.encode, progress=False)
    assert report.encoded == 120 and report.dim == enc.dim
    assert encode(wh, s.encoders, s.encode, progress=False)[0].encoded == 0  # stored: nothing to redo
    (model,) = train(wh, s, progress=False)
    assert model.metrics["targets"]["base_colour"]["test"]["accuracy"] > 0.9  # the photo alone says the colour
