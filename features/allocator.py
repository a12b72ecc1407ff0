"""Keep freed heap memory in the process while encoding (glibc malloc; elsewhere a no-op).

A CNN's forward pass on a batch allocates activations of tens of MB and frees them at its end.
glibc's malloc serves blocks that large straight from the kernel (mmap) and hands them back on
free (munmap, or a trim of the heap top), so the next batch takes every page of its activations
from the kernel again: a page fault and a page of zeroing per 4 KiB, on the cores the model needs.
Raising the mmap and trim thresholds for the length of an encode run makes freed blocks stay in
the heap and be reused by the next batch. On this project's 2-core VM that sped the forward pass
itself up by tens of percent (BENCHMARKS.md, Encoding, the bare rows). The price is memory: blocks
are kept rather than returned, so the process holds its high-water mark, fragmentation included,
until the run ends (a few hundred MB more peak RSS, flat as the catalog grows: BENCHMARKS.md,
Memory); then the defaults come back and `malloc_trim` returns it.
"""
from __future__ import annotations

import ctypes
import platform
from collections.abc import Iterator
from contextlib import contextmanager

M_TRIM_THRESHOLD = -1  # mallopt parameters, <malloc.h>
M_MMAP_THRESHOLD = -3
GLIBC_DEFAULT_THRESHOLD = 128 * 1024
RETAIN_UP_TO = 1 << 30  # blocks below this come from the heap and go back to it
NEVER_TRIM = 2**31 - 1  # mallopt takes a C int


def _glibc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(None)
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


@contextmanager
def retained_heap() -> Iterator[bool]:
    """Within the block, freed memory stays in the process for reuse; yields whether that applies.

    On leaving, glibc's default thresholds come back (as fixed values: its adaptive mmap
    threshold is not restored) and the memory kept is returned to the system. The setting is the
    process's: of two runs at once in one process (threaded task runners), the first to finish
    restores the defaults for both, which costs the other speed, never correctness.
    """
    libc = _glibc()
    if libc is None:
        yield False
        return
    applied = bool(libc.mallopt(M_MMAP_THRESHOLD, RETAIN_UP_TO)) and bool(libc.mallopt(M_TRIM_THRESHOLD, NEVER_TRIM))
    try:
        yield applied
    finally:
        libc.mallopt(M_MMAP_THRESHOLD, GLIBC_DEFAULT_THRESHOLD)
        libc.mallopt(M_TRIM_THRESHOLD, GLIBC_DEFAULT_THRESHOLD)
        libc.malloc_trim(0)
