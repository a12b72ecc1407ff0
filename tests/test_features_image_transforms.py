"""The uint8-per-image / float-per-batch split gives what the library's transform gives.

The batch normalisation is bit-exact; resampling only the centre crop may round a pixel to the
neighbouring uint8 level, once per resampling pass, and on few pixels.
"""
from __future__ import annotations

import numpy as np
import open_clip
import pytest
import timm.data
import torch
import torchvision
from PIL import Image
from torchvision import transforms as T
from torchvision.transforms import functional as F

from features.image_transforms import NormalizeBatch, ResizedCenterCrop, ToHWCTensor, split_for_batching
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
    "torchvision": lambda: torchvision.models.ResNet50_Weights.DEFAULT.transforms(),
}


def levels_apart(ours: torch.Tensor, theirs: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """|ours − theirs| in uint8 levels, for two normalised image batches."""
    return ((ours - theirs).abs() * std.view(1, -1, 1, 1) * 255).round()


def assert_rounding_only(ours: torch.Tensor, theirs: torch.Tensor, std: torch.Tensor) -> None:
    """Resampling only the crop may flip a pixel's rounding once per pass (two passes), on few pixels."""
    apart = levels_apart(ours, theirs, std)
    assert apart.max() <= 2
    assert (apart > 0).float().mean() < 0.02


@pytest.mark.parametrize("library", sorted(TRANSFORMS))
def test_split_matches_the_library_transform(tmp_path, library):
    full = TRANSFORMS[library]()
    per_image, per_batch = split_for_batching(full)
    assert isinstance(per_batch, NormalizeBatch)
    assert any(isinstance(step, ResizedCenterCrop) for step in per_image.transforms)
    images = [Image.open(p).convert("RGB") for p in photos(tmp_path)]
    crops = torch.stack([per_image(im) for im in images])
    assert crops.dtype == torch.uint8
    assert_rounding_only(per_batch(crops), torch.stack([full(im) for im in images]), per_batch.std)


@pytest.mark.parametrize("library", sorted(TRANSFORMS))
def test_batch_normalisation_is_bit_exact(tmp_path, library):
    """Crops made by the library's own resize and crop, normalised per batch: exactly its output."""
    full = TRANSFORMS[library]()
    _, per_batch = split_for_batching(full)
    if isinstance(full, T.Compose):
        crop = T.Compose([*full.transforms[:-2], ToHWCTensor()])
    else:  # torchvision's ImageClassification preset
        crop = T.Compose([T.Resize(full.resize_size, interpolation=full.interpolation), T.CenterCrop(full.crop_size), ToHWCTensor()])
    images = [Image.open(p).convert("RGB") for p in photos(tmp_path)]
    assert torch.equal(per_batch(torch.stack([crop(im) for im in images])), torch.stack([full(im) for im in images]))


def test_channels_last_batches_hold_the_same_values_in_cnn_memory_order(tmp_path):
    full = TRANSFORMS["timm"]()
    per_image, plain = split_for_batching(full)
    _, cnn = split_for_batching(full, channels_last=True)
    crops = torch.stack([per_image(Image.open(p).convert("RGB")) for p in photos(tmp_path)])
    a, b = plain(crops), cnn(crops)
    assert a.shape == b.shape == (len(crops), 3, 224, 224)
    assert a.is_contiguous() and not b.is_contiguous()
    assert b.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(a, b)


@pytest.mark.parametrize("interpolation", [T.InterpolationMode.BICUBIC, T.InterpolationMode.BILINEAR])
@pytest.mark.parametrize("size,crop", [(256, (224, 224)), (224, (224, 224)), (232, (224, 224)), (240, (200, 180))])
def test_resized_center_crop_is_torchvisions_resize_then_crop(tmp_path, interpolation, size, crop):
    fused = ResizedCenterCrop(size, crop, interpolation)
    for p in photos(tmp_path):
        im = Image.open(p).convert("RGB")
        ours = F.pil_to_tensor(fused(im))
        theirs = F.pil_to_tensor(F.center_crop(F.resize(im, [size], interpolation=interpolation), list(crop)))
        assert ours.shape == theirs.shape == (3, *crop)
        apart = (ours.int() - theirs.int()).abs()
        assert apart.max() <= 2 and (apart > 0).float().mean() < 0.05


def test_a_crop_larger_than_the_resized_image_is_padded_as_torchvision_pads(tmp_path):
    fused = ResizedCenterCrop(64, (96, 96), T.InterpolationMode.BICUBIC)
    im = Image.open(photos(tmp_path)[0]).convert("RGB")
    expected = F.center_crop(F.resize(im, [64], interpolation=T.InterpolationMode.BICUBIC), [96, 96])
    assert torch.equal(F.pil_to_tensor(fused(im)), F.pil_to_tensor(expected))


@pytest.mark.parametrize("workers", [0, 1])
def test_reader_batches_equal_the_full_transform(tmp_path, workers):
    full = TRANSFORMS["open_clip"]()
    paths = photos(tmp_path)
    ids = [str(i) for i in range(len(paths))]
    batches = list(image_batches(ids, ids, paths, full, 2, workers))
    got = torch.cat([b.inputs for b in batches])
    assert got.dtype == torch.float32
    assert_rounding_only(got, torch.stack([full(Image.open(p).convert("RGB")) for p in paths]), split_for_batching(full)[1].std)


def test_other_transforms_are_used_whole():
    def custom(image):
        return torch.zeros(3, 4, 4)

    assert split_for_batching(custom) == (custom, None)
    no_normalize = open_clip.image_transform(224, is_train=False).transforms[:-1]
    from torchvision import transforms as T

    kept = T.Compose(no_normalize)
    assert split_for_batching(kept) == (kept, None)
