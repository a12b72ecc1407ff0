"""The whole config: every room's section composed, loaded from YAML, errors made readable."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from features.settings import EncodeSettings, EncoderSpec, SimilarSettings
from heads.settings import ScoreSettings, TrainSettings
from warehouse.errors import VitrineError
from warehouse.settings import IngestSettings, Strict, WarehouseSettings

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


class ScheduleSettings(Strict):
    cron: str = "0 2 * * *"
    timezone: str = "UTC"
    source: Path | None = Field(None, description="catalog snapshot the nightly run ingests")


class RunnerSettings(Strict):
    task_runner: Literal["threads", "dask"] = "threads"
    dask_address: str | None = Field(None, description="scheduler address; None starts a local cluster")
    dask_workers: int = Field(2, ge=1)
    retries: int = Field(2, ge=0)
    retry_delay_s: float = Field(5.0, ge=0)


class ReviewSettings(Strict):
    """The review page (`vitrine review serve`)."""

    reviewer: str | None = Field(None, description="name stored in decided_by; the page asks when unset")
    host: str = Field("127.0.0.1", description="interface the page binds to (localhost only by default)")
    port: int = Field(8765, ge=1, le=65535)
    page_size: int = Field(50, ge=1, le=500, description="cards per page")
    similar_k: int = Field(
        0, ge=0, le=20, description="nearest products (similar.encoders) listed on each card with their label; "
        "0 = none. Each card costs one exact search over the catalog's vectors",
    )


def _default_encoders() -> dict[str, EncoderSpec]:
    return {
        "image": EncoderSpec(family="clip", model="ViT-B-32", pretrained="laion2b_s34b_b79k", input="image"),
        "title": EncoderSpec(family="clip", model="ViT-B-32", pretrained="laion2b_s34b_b79k", input="title"),
        "title_words": EncoderSpec(family="hashing", model="word:1-2:4096", input="title"),
        "title_chars": EncoderSpec(family="hashing", model="char_wb:2-4:4096", input="title"),
    }


class Settings(Strict):
    warehouse: WarehouseSettings = Field(default_factory=WarehouseSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    encoders: dict[str, EncoderSpec] = Field(default_factory=_default_encoders)
    encode: EncodeSettings = Field(default_factory=EncodeSettings)
    train: TrainSettings = Field(default_factory=TrainSettings)
    score: ScoreSettings = Field(default_factory=ScoreSettings)
    schedule: ScheduleSettings = Field(default_factory=ScheduleSettings)
    runner: RunnerSettings = Field(default_factory=RunnerSettings)
    review: ReviewSettings = Field(default_factory=ReviewSettings)
    similar: SimilarSettings = Field(default_factory=SimilarSettings)

    @model_validator(mode="after")
    def _features_are_encoders(self) -> "Settings":
        unknown = [f for f in self.train.features if f not in self.encoders]
        if unknown:
            raise ValueError(
                f"train.features names {unknown}, which are not in encoders ({sorted(self.encoders)})"
            )
        targets = set(self.train.classification_targets) | set(self.train.regression_targets)
        for target, names in self.train.target_features.items():
            if target not in targets:
                raise ValueError(f"train.target_features names target {target!r}, which is in neither "
                                 f"train.classification_targets nor train.regression_targets")
            unknown = [f for f in names if f not in self.encoders]
            if unknown or not names:
                raise ValueError(f"train.target_features.{target} names {unknown or 'no encoder'}; "
                                 f"it needs encoders from {sorted(self.encoders)}")
        if "encoders" not in self.similar.model_fields_set:
            # the built-in default (image, title) fits configs that name those; others compare what they have
            kept = {n: w for n, w in self.similar.encoders.items() if n in self.encoders}
            self.similar.encoders = kept or {n: 1.0 for n in self.encoders}
        unknown = [n for n in self.similar.encoders if n not in self.encoders]
        if unknown:
            raise ValueError(f"similar.encoders names {unknown}, which are not in encoders ({sorted(self.encoders)})")
        bad = [n for n, w in self.similar.encoders.items() if not w > 0]
        if bad:
            raise ValueError(f"similar.encoders: the weights of {bad} must be positive")
        if not self.similar.encoders:
            raise ValueError("similar.encoders must name at least one encoder")
        return self


class ConfigError(VitrineError):
    """A config that cannot be used; the message names the file and the key."""


def _format_errors(path: Path | None, err: ValidationError) -> str:
    where = str(path) if path else "built-in defaults"
    lines = [f"invalid config {where}:"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        lines.append(f"  {key}: {msg}" + (f" (got {e['input']!r})" if e["type"] != "extra_forbidden" and "input" in e and not isinstance(e["input"], dict) else ""))
    return "\n".join(lines)


def similar_sql(settings: Settings):
    """The config's encoder names, ids and similarity weights, for the warehouse file's SQL macros."""
    from features.identity import encoder_id
    from warehouse.similar_views import SimilarSQL

    return SimilarSQL(
        encoders={n: (encoder_id(spec), spec.input) for n, spec in settings.encoders.items()},
        weights=dict(settings.similar.encoders),
    )


def write_session_for(settings: Settings, flow: str, parameters: dict):
    """A warehouse write session with the config's lock timeout, reclassification threshold and macros."""
    from warehouse import open_warehouse
    from warehouse.session import write_session

    return write_session(
        open_warehouse(settings.warehouse.path), flow, parameters, settings.warehouse.lock_timeout_s,
        reclass_threshold=settings.score.reclass_threshold, similar=similar_sql(settings),
    )


def load_settings(path: str | Path | None = None, warehouse: str | Path | None = None) -> Settings:
    """Settings from a YAML file (or defaults), with `warehouse` overriding warehouse.path.

    `path` and `warehouse` fall back to VITRINE_CONFIG and VITRINE_WAREHOUSE.
    """
    path = path or os.environ.get("VITRINE_CONFIG") or None
    warehouse = warehouse or os.environ.get("VITRINE_WAREHOUSE") or None
    data: dict = {}
    p = Path(path) if path else None
    if p is not None:
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            loaded = yaml.safe_load(p.read_text())
        except yaml.YAMLError as e:
            raise ConfigError(f"config {p} is not valid YAML: {e}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"config {p}: the top level must be a mapping of sections")
        data = loaded
    try:
        settings = Settings.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_errors(p, e)) from None
    if warehouse:
        settings.warehouse.path = Path(warehouse)
    return settings
