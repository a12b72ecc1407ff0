"""Writer locks: one writer per warehouse at a time, readers never blocked.

Readers need no lock because every write is an atomic rename (warehouse.atomic).
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from filelock import FileLock, Timeout

from warehouse.errors import VitrineError
from warehouse.layout import Warehouse


class WarehouseBusy(VitrineError):
    """Another process holds the writer lock longer than we were willing to wait."""


@contextlib.contextmanager
def writer_lock(wh: Warehouse, name: str = "writer", timeout: float = 0.0) -> Iterator[None]:
    """Hold the warehouse writer lock named `name`.

    `timeout` 0 fails at once, a negative value waits forever. Whoever holds it is written into a
    side file so that the message can say who is in the way.
    """
    wh.lock_dir.mkdir(parents=True, exist_ok=True)
    path = wh.lock_dir / f"{name}.lock"
    holder = wh.lock_dir / f"{name}.holder"
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=timeout)
    except Timeout:
        who = holder.read_text().strip() if holder.exists() else "another process"
        raise WarehouseBusy(
            f"warehouse {wh.root} is busy: the '{name}' lock is held by {who}. "
            f"Wait for it to finish (or raise warehouse.lock_timeout_s to wait longer)."
        ) from None
    try:
        holder.write_text(f"pid {os.getpid()}")
        yield
    finally:
        holder.unlink(missing_ok=True)
        lock.release()
