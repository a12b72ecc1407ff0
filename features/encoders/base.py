"""What every encoder family hands to the runner: one small object, whatever the library.

The runner (reader → mapper → writer) only ever sees an `Encoder`: images go through its
`preprocess` in the reader's DataLoader (in worker processes or inline), titles through its
`tokenize` in the main process, and `forward` turns a batch into float32 vectors. Families differ
only in how they build one.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
from warehouse.errors import VitrineError


class WeightsUnavailable(VitrineError, RuntimeError):
    """Weights that cannot be had (offline, no cache, no file); the message says how to supply them."""


def offline_hint() -> str:
    return (
        "To run offline, pre-fill the cache on a machine with internet (HF_HOME for Hugging Face "
        "downloads, TORCH_HOME for torchvision ones) and set HF_HOME=<that dir> HF_HUB_OFFLINE=1, "
        "or set `checkpoint:` of this encoder in the config to a local weights file or directory."
    )


def weights_unavailable(what: str, source: str, cause: BaseException) -> WeightsUnavailable:
    """One wording for every family: which weights, from where, how to supply them offline."""
    return WeightsUnavailable(
        f"cannot load the weights of {what} from {source}: {type(cause).__name__}: {cause}\n{offline_hint()}"
    )


class Encoder(ABC):
    """One loaded encoder for one input kind ('image' or 'title').

    `channels_last` marks CNNs whose image batches are converted to channels-last memory format
    before the forward pass (faster convolutions on CPU).
    """

    encoder_id: str
    dim: int
    input: Literal["image", "title"]
    channels_last: bool = False

    def __init__(self, encoder_id: str, dim: int, input: Literal["image", "title"]) -> None:
        self.encoder_id = encoder_id
        self.dim = dim
        self.input = input

    # image side -----------------------------------------------------------------------------
    @property
    def preprocess(self) -> Callable[[Any], torch.Tensor]:
        """PIL image → tensor [C, H, W], the model's own eval transforms; must be picklable."""
        raise TypeError(f"{self.encoder_id} encodes titles, not images")

    # text side ------------------------------------------------------------------------------
    def tokenize(self, titles: Sequence[str], pad_to_max: bool = False) -> dict[str, torch.Tensor]:
        """Titles → model inputs padded to the longest title of the batch (or to the model max)."""
        raise TypeError(f"{self.encoder_id} encodes images, not titles")

    @abstractmethod
    def forward(self, batch: Any) -> torch.Tensor:
        """A batch (image tensor or tokenize() output) → float32 [B, dim]; call under inference_mode."""

    def prepare(self, batch: Any) -> Any:
        """Put an image batch into the memory format the model wants (channels-last for CNNs)."""
        if self.channels_last and isinstance(batch, torch.Tensor) and batch.dim() == 4:
            return batch.contiguous(memory_format=torch.channels_last)
        return batch


def check_weightless(spec, family: str, input: str, what: str) -> None:
    """The spec checks of a family with no weights: the one input it encodes, and no checkpoint."""
    if spec.input != input:
        raise ValueError(f"{family} encodes {what}: set `input: {input}`, not {spec.input}")
    if spec.checkpoint is not None:
        raise ValueError(f"{family} has no weights: leave `checkpoint` unset")


RANDOM = "random"  # `pretrained: random`: seeded random weights of the real architecture (benchmarks, tests)


class PooledImageEncoder(Encoder):
    """A CNN whose forward already ends in pooled features (torchvision fc=Identity, timm num_classes=0)."""

    channels_last = True

    def __init__(self, encoder_id: str, model: torch.nn.Module, preprocess) -> None:
        super().__init__(encoder_id, 0, "image")
        self.model = model
        self._preprocess = preprocess

    @property
    def preprocess(self):
        return self._preprocess

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.model(batch).float()


def load_state_dict_file(path: str, what: str) -> dict[str, torch.Tensor]:
    """A state dict from a .safetensors / .pt / .pth file, unwrapping common checkpoint layouts."""
    try:
        if str(path).endswith(".safetensors"):
            from safetensors.torch import load_file

            sd: Any = load_file(str(path))
        else:
            sd = torch.load(str(path), map_location="cpu", weights_only=True)
    except FileNotFoundError as e:
        raise weights_unavailable(what, f"local checkpoint {path}", e) from None
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
            sd = sd[key]
    if not isinstance(sd, dict):
        raise WeightsUnavailable(f"{path} holds no state dict for {what} (found {type(sd).__name__})")
    return {k.removeprefix("module."): v for k, v in sd.items()}


def load_backbone_weights(model: torch.nn.Module, sd: dict[str, torch.Tensor], head_prefixes: Sequence[str], what: str) -> None:
    """Load a checkpoint into a headless model: classifier keys may be extra, nothing may be missing."""
    sd = {k: v for k, v in sd.items() if not any(k.startswith(p) for p in head_prefixes)}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise WeightsUnavailable(
            f"checkpoint does not fit {what}: missing keys {list(missing)[:5]}, unexpected keys {list(unexpected)[:5]}"
        )
