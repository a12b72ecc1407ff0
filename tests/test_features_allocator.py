"""retained_heap: freed blocks stay in the process inside the block, and go back to the system after it."""
from __future__ import annotations

import os
import platform

import numpy as np
import pytest

from features.allocator import retained_heap

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc malloc only"
)

BLOCK = 256 * 2**20


def rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def rss_after_freeing_a_touched_block() -> tuple[int, int]:
    block = np.ones(BLOCK, dtype=np.uint8)  # malloc'd by NumPy, every page touched
    held = rss()
    del block
    return held, rss()


def test_freed_memory_is_kept_inside_and_returned_after():
    held, freed = rss_after_freeing_a_touched_block()
    assert held - freed > BLOCK // 2  # glibc's default: a block this size goes straight back
    with retained_heap() as applied:
        assert applied
        held, freed = rss_after_freeing_a_touched_block()
        assert held - freed < BLOCK // 4  # kept for the next batch
        kept = freed
    assert kept - rss() > BLOCK // 2  # returned when the block ends
    held, freed = rss_after_freeing_a_touched_block()
    assert held - freed > BLOCK // 2  # and large blocks go straight back again
