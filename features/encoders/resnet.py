"""torchvision ResNet-18/50: pooled penultimate features (fc replaced by Identity), channels-last.

Weights come from a torchvision weights enum name ('IMAGENET1K_V2', 'DEFAULT', ...) or a local
checkpoint; the eval transforms always come from the enum (they need no download).
"""
from __future__ import annotations

from pathlib import Path

import torch
import torchvision

from features.encoders.base import RANDOM, PooledImageEncoder, load_backbone_weights, load_state_dict_file, weights_unavailable
from features.settings import EncoderSpec



def build(spec: EncoderSpec, encoder_id: str) -> Encoder:
    if spec.input != "image":
        raise ValueError(f"resnet encodes images, not {spec.input}")
    name = spec.model.lower()
    if not name.startswith("resnet"):
        raise ValueError(f"resnet family takes torchvision resnet18 / resnet50, not {spec.model!r}")
    try:
        enum = torchvision.models.get_model_weights(name)
    except ValueError:
        raise ValueError(f"torchvision has no model {spec.model!r}") from None
    tag = spec.pretrained or "DEFAULT"
    if spec.checkpoint is not None or tag == RANDOM:
        weights = None
        transforms = enum.DEFAULT.transforms()
    else:
        try:
            weights = enum[tag]
        except KeyError:
            raise ValueError(f"{name} has no weights {tag!r}; known: {[w.name for w in enum]} or DEFAULT") from None
        transforms = weights.transforms()
    if tag == RANDOM:
        torch.manual_seed(0)
    try:
        model = torchvision.models.get_model(name, weights=weights)
    except OSError as e:
        fname = weights.url.rsplit("/", 1)[-1]
        raise weights_unavailable(
            f"torchvision {name} {weights.name}", f"URL {weights.url} (cached as $TORCH_HOME/hub/checkpoints/{fname})", e
        ) from None
    model.fc = torch.nn.Identity()
    if spec.checkpoint is not None:
        sd = load_state_dict_file(str(Path(spec.checkpoint).expanduser()), f"torchvision {name}")
        load_backbone_weights(model, sd, ["fc."], f"torchvision {name}")
    model = model.eval().to(memory_format=torch.channels_last)
    return PooledImageEncoder(encoder_id, model, transforms)
