"""encoder_id: the name under which an encoder's vectors are stored.

Family, model, weights tag and input, plus a fingerprint of a local weights file, so that a
changed encoder can never write into (or be read as) another encoder's vectors.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from features.settings import EncoderSpec

DEFAULT_WEIGHTS = {"clip": "openai", "resnet": "DEFAULT", "bert": "hub", "timm": "hub", "hashing": "none", "colour": "none", "columns": "none"}


def fingerprint(path: Path) -> str:
    """sha256 (12 hex) over a weights file, or over every file of a weights directory."""
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    if not files:
        raise FileNotFoundError(f"no weights at {path}")
    for f in files:
        h.update(str(f.relative_to(path) if f != path else f.name).encode())
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:12]


def encoder_id(spec: EncoderSpec) -> str:
    """`family:model:weights:input` (+ `:sha-<fingerprint>` for local weights)."""
    weights = spec.pretrained or DEFAULT_WEIGHTS[spec.family]
    parts = [spec.family, spec.model, weights, spec.input]
    local = spec.checkpoint
    if local is None and Path(spec.model).expanduser().exists():
        local = Path(spec.model).expanduser()
    if local is not None:
        parts.append("sha-" + fingerprint(Path(local).expanduser()))
    return ":".join(parts)
