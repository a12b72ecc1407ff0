"""A run's row in `runs`: written when it starts, rewritten when it ends, whatever the ending."""
from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from warehouse.layout import Warehouse
from warehouse.tables import now_utc, record_run


def new_run_id(flow: str) -> str:
    return f"{flow}-{now_utc().strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"


@dataclass
class Run:
    run_id: str
    flow: str
    parameters: dict
    started_at: datetime
    counts: dict = field(default_factory=dict)


@contextlib.contextmanager
def tracked_run(wh: Warehouse, flow: str, parameters: dict, run_id: str | None = None) -> Iterator[Run]:
    """Record the run as running, then completed or failed (with the error message)."""
    run = Run(run_id or new_run_id(flow), flow, parameters, now_utc())
    record_run(wh, run.run_id, flow, parameters, run.started_at, "running")
    try:
        yield run
    except BaseException as e:
        record_run(wh, run.run_id, flow, parameters, run.started_at, "failed", run.counts, now_utc(), f"{type(e).__name__}: {e}")
        raise
    record_run(wh, run.run_id, flow, parameters, run.started_at, "completed", run.counts, now_utc())
