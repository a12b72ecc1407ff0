"""Settings of the feature room: which encoders exist and how batches are run."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, NonNegativeInt

from warehouse.settings import Strict


class EncoderSpec(Strict):
    """One named encoder of the config, e.g. `image` or `title`."""

    family: Literal["clip", "resnet", "bert", "timm", "hashing", "colour", "columns"]
    model: str = Field(
        description="open_clip model name, torchvision resnet18/50, HF hub id or local dir, timm name, hashing `<analyzer>:<min>-<max>:<dim>`, "
        "colour `hsv:<h>x<s>x<v>+<grey>`, columns `cat=<col,...>;num=<col,...>;dim=<slots>`"
    )
    pretrained: str | None = Field(
        None, description="open_clip pretrained tag, torchvision weights enum name; None = the family default"
    )
    checkpoint: Path | None = Field(None, description="local weights file or directory (fingerprinted)")
    input: Literal["image", "title", "columns"] = Field(
        description="what is encoded: the photo, the title, or catalog columns (the columns family)"
    )
    batch_size: int | None = Field(None, ge=1, description="overrides encode.batch_size")


class EncodeSettings(Strict):
    batch_size: int = Field(64, ge=1)
    num_workers: NonNegativeInt | Literal["auto"] = Field(
        "auto",
        description="DataLoader worker processes that decode images; 0 decodes in the main process between "
        "forward passes; auto: one per core the model's threads leave free, 0 when they fill every core",
    )
    decode_priority: Literal["idle", "normal"] = Field(
        "idle",
        description="scheduling of the decoding workers: idle (SCHED_IDLE on Linux) keeps them from stalling "
        "the model's threads; normal when other busy processes share the machine and would starve them",
    )
    threads: int | None = Field(None, ge=1, description="torch intra-op threads (None: torch default)")
    chunk_rows: int = Field(2048, ge=1, description="rows committed atomically per Parquet file")
    shards: int = Field(1, ge=1, description="encode shards run as separate Prefect tasks")
    precision: Literal["fp32", "bf16", "auto"] = Field(
        "auto",
        description="forward-pass precision: bf16 (CPU autocast), fp32, or auto = bf16 for image encoders where the "
        "CPU has native bf16 (AVX-512 BF16 / AMX), else fp32 (titles run slower under autocast); bf16 vectors share the encoder id only within bf16_min_cosine",
    )
    bf16_mean_cosine: float = Field(
        0.998, gt=0, le=1,
        description="every bf16 run encodes its first batch in fp32 too: the mean cosine of its vectors to their "
        "fp32 twins must reach this (and none fall below bf16_min_cosine), else auto falls back to fp32 and bf16 stops",
    )
    bf16_min_cosine: float = Field(0.99, gt=0, le=1, description="the lowest cosine of one vector to its fp32 twin")


class IndexSettings(Strict):
    """The approximate index of `vitrine similar` (faiss IVF-Flat); exact search needs none of it."""

    mode: Literal["auto", "on", "off"] = Field(
        "auto",
        description="on: search through the index (exact search, with a message, while it is stale or missing); "
        "off: always exact; auto: through the index once an encoder has `auto_rows` vectors",
    )
    auto_rows: int = Field(200_000, ge=1, description="vectors of an encoder from which `auto` uses the index")
    nlist: int | None = Field(None, ge=1, description="IVF cells (None: 4 * sqrt(vectors), at most vectors / 39)")
    nprobe: int = Field(
        16, ge=1, description="cells a query scans; more is slower and finds more of the true neighbours (16: recall@10 "
        "0.965 at a million vectors, BENCHMARKS.md)",
    )
    candidates: int = Field(50, ge=1, description="neighbours fetched per encoder from the index, then re-ranked exactly")
    train_rows: int = Field(100_000, ge=1, description="vectors sampled to train the IVF cells")
    threads: int = Field(2, ge=1, description="faiss threads while building and updating")


class DuplicateSettings(Strict):
    """Near-duplicate listings: a pair is flagged when photo AND title are at least this similar."""

    image_encoder: str = Field("image", description="encoder whose cosine compares photos")
    title_encoder: str = Field("title", description="encoder whose cosine compares titles")
    image_threshold: float = Field(0.85, ge=-1, le=1)
    title_threshold: float = Field(0.9, ge=-1, le=1, description="0.85 / 0.9: recall 0.67, precision 0.61 on planted re-listings (BENCHMARKS.md)")
    nightly: bool = Field(False, description="the nightly flow looks for duplicates among new and changed products")


class SimilarSettings(Strict):
    """`vitrine similar`, `vitrine duplicates`, `vitrine groups`: search over the stored vectors."""

    encoders: dict[str, float] = Field(
        default_factory=lambda: {"image": 1.0, "title": 1.0},
        description="encoder name -> weight of its cosine similarity in the combined score (the default encoders)",
    )
    k: int = Field(5, ge=1, description="neighbours `vitrine similar` lists")
    index: IndexSettings = Field(default_factory=IndexSettings)
    duplicates: DuplicateSettings = Field(default_factory=DuplicateSettings)
    group_seed: int = Field(0, description="KMeans seed of `vitrine groups`")
