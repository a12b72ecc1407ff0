"""Encoder registry: a config's EncoderSpec → a loaded `Encoder`, one builder per family.

Like open_clip's factory, one entry point turns a model name plus a weights tag or local path
into a model and its own eval transforms (or tokenizer). A family is a module with
`build(spec, encoder_id) -> Encoder`; `register_family` adds one without touching the runner.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable

import torch
from PIL import Image

from features.encoders.base import Encoder, WeightsUnavailable
from features.identity import encoder_id as make_encoder_id
from features.settings import EncoderSpec

Builder = Callable[[EncoderSpec, str], Encoder]

_FAMILIES: dict[str, str | Builder] = {
    "clip": "features.encoders.clip",
    "resnet": "features.encoders.resnet",
    "bert": "features.encoders.bert",
    "timm": "features.encoders.timm_models",
    "hashing": "features.encoders.hashing",
    "colour": "features.encoders.colour",
    "columns": "features.encoders.columns",
}


def register_family(name: str, builder: Builder) -> None:
    _FAMILIES[name] = builder


def _builder(family: str) -> Builder:
    b = _FAMILIES.get(family)
    if b is None:
        raise ValueError(f"unknown encoder family {family!r}; known: {sorted(_FAMILIES)}")
    if isinstance(b, str):
        return importlib.import_module(b).build
    return b


def _probe_dim(enc: Encoder) -> int:
    """The vector dimension, read off one tiny forward pass (same code path as real batches)."""
    with torch.inference_mode():
        if enc.input == "image":
            x = enc.preprocess(Image.new("RGB", (64, 64), (127, 127, 127))).unsqueeze(0)
            out = enc.forward(enc.prepare(x))
        else:
            out = enc.forward(enc.tokenize(["probe"]))
    return int(out.shape[-1])


def load_encoder(spec: EncoderSpec, threads: int | None = None, encoder_id: str | None = None) -> Encoder:
    """Build the encoder a spec names; WeightsUnavailable when its weights cannot be had.

    `threads` sets torch's intra-op thread count first; `encoder_id` saves re-fingerprinting
    a local checkpoint when the caller has computed it already.
    """
    if threads:
        torch.set_num_threads(threads)
    eid = encoder_id or make_encoder_id(spec)
    enc = _builder(spec.family)(spec, eid)
    enc.dim = _probe_dim(enc)
    return enc


def clear_cache() -> None:
    """Forget models cached in-process (CLIP's shared image/text model)."""
    from features.encoders import clip

    clip.load_clip.cache_clear()


__all__ = ["Encoder", "WeightsUnavailable", "load_encoder", "register_family", "clear_cache"]
