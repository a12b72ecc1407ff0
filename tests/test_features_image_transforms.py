"""The uint8-per-image / float-per-batch split gives exactly what the library's transform gives."""
from __future__ import annotations

import numpy as np
import open_clip
import pytest
import timm.data
import torch
from PIL import Image

from features.image_transforms import NormalizeBatch, split_for_batching
from features.reader import image_batches


def photos(tmp_path, n: int = 5) -> list[str]:
    """Noisy photos of several sizes and modes (catalog photos are small and not always RGB)."""
    rng = np.random.default_rng(0)
    paths = []
    for i, (w, h) in enumerate([(60, 80), (80, 60), (224, 224), (301, 97), (17, 33)][:n]):
        im = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        im = im.convert("L") if i == 3 else im
        paths.append(str(tmp_path / f"{i}.png"))
        im.save(paths[-1])
    return paths


TRANSFORMS = {
    "open_clip": lambda: open_clip.image_transform(224, is_train=False),
    "timm": lambda: timm.data.create_transform(input_size=(3, 224, 224), interpolation="bicubic", crop_pct=0.875,
                                               mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), is_training=False),
}


@pytest.mark.parametrize("library", sorted(TRANSFORMS))
def test_split_is_bit_exact(tmp_path, library):
    full = TRANSFORMS[library]()
    per_image, per_batch = split_for_batching(full)
    assert isinstance(per_batch, NormalizeBatch)
    images = [Image.open(p).convert("RGB") for p in photos(tmp_path)]
    crops = torch.stack([per_image(im) for im in images])
    assert crops.dtype == torch.uint8
    assert torch.equal(per_batch(crops), torch.stack([full(im) for im in images]))


@pytest.mark.parametrize("workers", [0, 1])
def test_reader_batches_equal_the_full_transform(tmp_path, workers):
    full = TRANSFORMS["open_clip"]()
    paths = photos(tmp_path)
    ids = [str(i) for i in range(len(paths))]
    batches = list(image_batches(ids, ids, paths, full, 2, workers))
    got = torch.cat([b.inputs for b in batches])
    assert got.dtype == torch.float32
    assert torch.equal(got, torch.stack([full(Image.open(p).convert("RGB")) for p in paths]))


def test_other_transforms_are_used_whole():
    def custom(image):
        return torch.zeros(3, 4, 4)

    assert split_for_batching(custom) == (custom, None)
    no_normalize = open_clip.image_transform(224, is_train=False).transforms[:-1]
    from torchvision import transforms as T

    kept = T.Compose(no_normalize)
    assert split_for_batching(kept) == (kept, None)
