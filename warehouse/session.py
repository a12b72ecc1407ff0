"""A write session: the writer lock, the run's row, and fresh views once the write is done.

Every command and flow that changes the warehouse goes through here, so none of them can forget
the lock or leave a run without its final status.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

from warehouse.atomic import remove_stale_temporaries
from warehouse.layout import Warehouse
from warehouse.locks import writer_lock
from warehouse.runs import Run, tracked_run
from warehouse.tables import remove_stale_staging
from warehouse.similar_views import SimilarSQL
from warehouse.views import DEFAULT_RECLASS_THRESHOLD, refresh_catalog


@contextlib.contextmanager
def write_session(
    wh: Warehouse,
    flow: str,
    parameters: dict,
    lock_timeout_s: float = 0.0,
    run_id: str | None = None,
    reclass_threshold: float = DEFAULT_RECLASS_THRESHOLD,
    lock: bool = True,
    similar: SimilarSQL | None = None,
) -> Iterator[Run]:
    """Hold the writer lock (unless the caller already does) for one tracked run.

    Temporaries left by a killed writer are removed first: with the lock held, no live writer
    can own them.
    """
    held = writer_lock(wh, timeout=lock_timeout_s) if lock else contextlib.nullcontext()
    with held:
        if lock:
            remove_stale_temporaries(wh.root)
            remove_stale_staging(wh)
        try:
            with tracked_run(wh, flow, parameters, run_id) as run:
                yield run
        finally:
            refresh_catalog(wh, reclass_threshold, similar)
