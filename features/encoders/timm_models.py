"""Any timm model by name, 'hf-hub:' name or local checkpoint: pooled features (num_classes=0).

Eval transforms come from the model's own data config (timm.data.resolve_data_config), so
resolution, crop and normalisation always match the weights.
"""
from __future__ import annotations

from pathlib import Path

import torch

from features.encoders.base import RANDOM, PooledImageEncoder, load_backbone_weights, load_state_dict_file, weights_unavailable
from features.settings import EncoderSpec



def _source(name: str) -> str:
    if name.startswith("hf-hub:"):
        return f"Hugging Face hub '{name.removeprefix('hf-hub:')}'"
    try:
        import timm.models

        cfg = timm.models.get_pretrained_cfg(name)
        hub = getattr(cfg, "hf_hub_id", None)
        url = getattr(cfg, "url", None)
        parts = [f"Hugging Face hub '{hub}'" if hub else "", f"URL {url}" if url else ""]
        return " / ".join(p for p in parts if p) or f"timm pretrained config of {name}"
    except Exception:
        return f"timm pretrained config of {name}"


def build(spec: EncoderSpec, encoder_id: str) -> Encoder:
    if spec.input != "image":
        raise ValueError(f"timm encodes images, not {spec.input}")
    import timm
    import timm.data

    pretrained = spec.checkpoint is None and spec.pretrained != RANDOM
    if spec.pretrained == RANDOM:
        torch.manual_seed(0)
    try:
        model = timm.create_model(spec.model, pretrained=pretrained, num_classes=0)
    except OSError as e:
        raise weights_unavailable(f"timm {spec.model}", _source(spec.model), e) from None
    except RuntimeError as e:
        if "Unknown model" in str(e):
            raise ValueError(f"timm has no model {spec.model!r}") from None
        raise weights_unavailable(f"timm {spec.model}", _source(spec.model), e) from None
    if spec.checkpoint is not None:
        head = model.pretrained_cfg.get("classifier", "classifier")
        heads = [head] if isinstance(head, str) else list(head)
        sd = load_state_dict_file(str(Path(spec.checkpoint).expanduser()), f"timm {spec.model}")
        load_backbone_weights(model, sd, [h + "." for h in heads], f"timm {spec.model}")
    cfg = timm.data.resolve_data_config({}, model=model)
    preprocess = timm.data.create_transform(**cfg, is_training=False)
    model = model.eval().to(memory_format=torch.channels_last)
    return PooledImageEncoder(encoder_id, model, preprocess)
