"""glibc's allocator, set up for a long-running worker so that its RSS follows what it holds.

Measured (P4, BENCHMARKS.md): with glibc's defaults the worker's RSS grew by about 1.1 KB per
record read, on RocksDB too, where its tables are on disk and Python's own heap (by tracemalloc)
stayed flat. Two defaults make the growth: every thread that allocates (RocksDB's background
threads, the metrics server) may get an arena of its own, up to eight per core, each keeping what
was freed in it; and the threshold above which an allocation gets pages of its own (given back
to the system when freed) rises to the largest block freed so far, so that the worker's large
fetch and batch buffers, once freed, come from the heap instead and leave it fragmented. The same
settings as the environment variables MALLOC_ARENA_MAX and MALLOC_MMAP_THRESHOLD_, set from
inside the process before its threads start."""

from __future__ import annotations

import ctypes
import ctypes.util

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameters (malloc.h)
M_ARENA_MAX = -8
ARENAS = 2
MMAP_THRESHOLD = 128 * 1024  # glibc's initial value, held fixed


def bound_allocator() -> bool:
    """Sets both; whether it could (False where the C library is not glibc: nothing to set)."""
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c")).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_ARENA_MAX, ARENAS)) and bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
