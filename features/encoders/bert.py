"""Any transformers encoder (BERT family) by hub id or local directory.

Mean pooling over the attention mask, L2-normalised (the sentence-transformers recipe), with
dynamic padding to the longest title of the batch; max length from the tokenizer, capped at 512.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from features.encoders.base import Encoder, weights_unavailable
from features.settings import EncoderSpec

MAX_LENGTH_CAP = 512


class BertEncoder(Encoder):
    def __init__(self, encoder_id: str, model: torch.nn.Module, tokenizer) -> None:
        super().__init__(encoder_id, 0, "title")
        self.model = model
        self.tokenizer = tokenizer
        limits = [MAX_LENGTH_CAP, int(getattr(tokenizer, "model_max_length", MAX_LENGTH_CAP) or MAX_LENGTH_CAP)]
        pos = getattr(model.config, "max_position_embeddings", None)
        if pos:
            limits.append(int(pos))
        self.max_length = min(limits)

    def tokenize(self, titles: Sequence[str], pad_to_max: bool = False) -> dict[str, torch.Tensor]:
        return dict(
            self.tokenizer(
                list(titles),
                padding="max_length" if pad_to_max else "longest",
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            )
        )

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        hidden = self.model(**batch).last_hidden_state.float()
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return F.normalize(pooled, dim=-1)


def build(spec: EncoderSpec, encoder_id: str) -> Encoder:
    if spec.input != "title":
        raise ValueError(f"bert encodes titles, not {spec.input}")
    from transformers import AutoModel, AutoTokenizer

    src = str(Path(spec.checkpoint).expanduser()) if spec.checkpoint else spec.model
    local = Path(src).expanduser().exists()
    where = f"local directory {src}" if local else f"Hugging Face hub '{src}'" + (
        f" (revision {spec.pretrained})" if spec.pretrained and spec.pretrained != "hub" else ""
    )
    revision = spec.pretrained if (spec.pretrained and spec.pretrained != "hub" and not local) else None
    try:
        tokenizer = AutoTokenizer.from_pretrained(src, revision=revision)
        model = AutoModel.from_pretrained(src, revision=revision)
    except OSError as e:
        raise weights_unavailable(f"transformers encoder {spec.model}", where, e) from None
    return BertEncoder(encoder_id, model.eval(), tokenizer)
