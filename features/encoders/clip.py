"""CLIP (open_clip): one loaded model gives both the image and the title encoder.

The model is cached in-process by (model, weights) so a config with a CLIP image encoder and a
CLIP title encoder loads it once. Titles are padded to the longest title of the batch rather than
to CLIP's context length (77): with CLIP's causal mask and EOT pooling, tokens after the EOT token
cannot change its output, so trimming the padding (and the positional embedding / mask with it)
gives the same vectors for a fraction of the work. Vectors are L2-normalised, as CLIP is used.
"""
from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from features.encoders.base import RANDOM, Encoder, WeightsUnavailable, weights_unavailable
from features.settings import EncoderSpec



@functools.lru_cache(maxsize=4)
def load_clip(model_name: str, pretrained: str, checkpoint: str | None) -> tuple[torch.nn.Module, Any, Any]:
    """(model in eval mode, eval image transform, tokenizer), loaded once per process."""
    import open_clip

    if model_name not in open_clip.list_models() and not model_name.startswith(("hf-hub:", "local-dir:")):
        raise ValueError(f"unknown open_clip model {model_name!r}; known: {', '.join(open_clip.list_models()[:20])}, ...")
    if checkpoint is not None:
        source, weights = f"local checkpoint {checkpoint}", checkpoint
        if not Path(checkpoint).exists():
            raise weights_unavailable(f"CLIP {model_name}", source, FileNotFoundError(checkpoint))
    elif pretrained == RANDOM:
        source, weights = "seeded random init", None
        torch.manual_seed(0)
    else:
        tags = open_clip.list_pretrained_tags_by_model(model_name)
        if pretrained not in tags:
            raise ValueError(f"open_clip model {model_name!r} has no pretrained tag {pretrained!r}; known tags: {tags}")
        cfg = open_clip.get_pretrained_cfg(model_name, pretrained)
        where = [f"Hugging Face hub '{cfg['hf_hub'].rstrip('/')}'" if cfg.get("hf_hub") else "", f"URL {cfg['url']}" if cfg.get("url") else ""]
        source, weights = f"open_clip tag '{pretrained}' (" + " / ".join(w for w in where if w) + ")", pretrained
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=weights)
    except (OSError, RuntimeError) as e:
        raise weights_unavailable(f"CLIP {model_name}", source, e) from None
    model.eval()
    return model, preprocess, open_clip.get_tokenizer(model_name)


def _can_trim(model: torch.nn.Module, tokenizer: Any) -> bool:
    """Trimming is exact only for open_clip's CLIP text tower with a causal mask and EOT pooling."""
    from open_clip.tokenizer import SimpleTokenizer

    return (
        hasattr(model, "token_embedding")
        and getattr(model, "attn_mask", None) is not None
        and getattr(model, "text_pool_type", None) in ("argmax", "eos")
        and isinstance(tokenizer, SimpleTokenizer)
    )


def encode_text_trimmed(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """open_clip's CLIP.encode_text on tokens of any length ≤ context length (mask/pos-emb cut to it)."""
    from open_clip.transformer import text_global_pool

    n = tokens.shape[1]
    cast_dtype = model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens).to(cast_dtype)
    x = x + model.positional_embedding[:n].to(cast_dtype)
    x = model.transformer(x, attn_mask=model.attn_mask[:n, :n])
    x = model.ln_final(x)
    x = text_global_pool(x, tokens, model.text_pool_type, eos_token_id=getattr(model, "text_eos_id", None))
    proj = model.text_projection
    if proj is not None:
        x = proj(x) if isinstance(proj, torch.nn.Linear) else x @ proj
    return x


class ClipImageEncoder(Encoder):
    def __init__(self, encoder_id: str, model: torch.nn.Module, preprocess: Any) -> None:
        super().__init__(encoder_id, 0, "image")
        self.model = model
        self._preprocess = preprocess

    @property
    def preprocess(self) -> Any:
        return self._preprocess

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.model.encode_image(batch).float(), dim=-1)


class ClipTextEncoder(Encoder):
    def __init__(self, encoder_id: str, model: torch.nn.Module, tokenizer: Any) -> None:
        super().__init__(encoder_id, 0, "title")
        self.model = model
        self.tokenizer = tokenizer
        self.trim = _can_trim(model, tokenizer)

    def tokenize(self, titles: Sequence[str], pad_to_max: bool = False) -> dict[str, torch.Tensor]:
        tokens = self.tokenizer(list(titles))  # [B, context_length], 0-padded, EOT kept on truncation
        if self.trim and not pad_to_max:
            used = (tokens != 0).any(dim=0).nonzero()
            n = int(used.max()) + 1 if used.numel() else 1
            tokens = tokens[:, :n].contiguous()
        return {"input_ids": tokens}

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        tokens = batch["input_ids"]
        if self.trim:
            x = encode_text_trimmed(self.model, tokens)
        else:
            x = self.model.encode_text(tokens)
        return F.normalize(x.float(), dim=-1)


def build(spec: EncoderSpec, encoder_id: str) -> Encoder:
    model, preprocess, tokenizer = load_clip(
        spec.model, spec.pretrained or "openai", str(Path(spec.checkpoint).expanduser()) if spec.checkpoint else None
    )
    if spec.input == "image":
        return ClipImageEncoder(encoder_id, model, preprocess)
    return ClipTextEncoder(encoder_id, model, tokenizer)


__all__ = ["build", "load_clip", "encode_text_trimmed", "WeightsUnavailable"]
