"""The `models` registry table: what was trained, on what, how well, and which model is current.

One row per model. Exactly one model is current per target set (the sorted targets joined by
','). Writers call `register` while holding the warehouse writer lock (the CLI / flow takes it
around training); the table is replaced atomically so readers never see half of it.
"""
from __future__ import annotations

import json
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from warehouse import schemas
from warehouse.layout import Warehouse
from warehouse.tables import read_models, replace_models
from warehouse.errors import VitrineError


class UnknownModel(VitrineError, KeyError):
    """No model with this id in the registry."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


def target_set(targets: Sequence[str]) -> str:
    """The stable name of a set of targets."""
    return ",".join(sorted(set(targets)))


def _row(d: dict) -> dict:
    d = dict(d)
    try:
        d["metrics"] = json.loads(d["metrics"]) if d.get("metrics") else {}
    except json.JSONDecodeError:
        pass
    return d


def list_models(wh: Warehouse) -> list[dict]:
    """Every registered model, newest first, with metrics parsed from JSON."""
    rows = [_row(r) for r in read_models(wh).to_pylist()]
    return sorted(rows, key=lambda r: r["trained_at"], reverse=True)


def current_models(wh: Warehouse) -> list[dict]:
    """The current model of each target set."""
    return [r for r in list_models(wh) if r["is_current"]]


def get_model(wh: Warehouse, model_id: str) -> dict:
    t = read_models(wh)
    hit = t.filter(pc.equal(t["model_id"], model_id)) if t.num_rows else t
    if hit.num_rows == 0:
        known = ", ".join(t["model_id"].to_pylist()[-5:]) if t.num_rows else "none yet"
        raise UnknownModel(f"no model {model_id!r} in the registry (latest: {known}); see `vitrine models`")
    return _row(hit.to_pylist()[0])


def register(wh: Warehouse, rows: Sequence[dict], current_id: str | None) -> None:
    """Append `rows` (MODELS columns, metrics as dict or JSON) and make `current_id` current for its set.

    The caller holds the writer lock.
    """
    old = read_models(wh).to_pylist()
    new = []
    for r in rows:
        r = dict(r)
        if not isinstance(r.get("metrics"), str):
            r["metrics"] = json.dumps(r.get("metrics") or {}, default=float, sort_keys=True)
        r["is_current"] = False
        new.append(r)
    allrows = [r for r in old if r["model_id"] not in {n["model_id"] for n in new}] + new
    if current_id is not None:
        ts = next(r["target_set"] for r in allrows if r["model_id"] == current_id)
        for r in allrows:
            if r["target_set"] == ts:
                r["is_current"] = r["model_id"] == current_id
    replace_models(wh, pa.Table.from_pylist(allrows, schema=schemas.MODELS))


def set_current(wh: Warehouse, model_id: str) -> None:
    """Make a registered model the current one of its target set (caller holds the writer lock)."""
    get_model(wh, model_id)
    register(wh, [], model_id)
