"""The worker's memory allocator: jemalloc where the system has it, else glibc's, bounded.

Measured (P4, BENCHMARKS.md): with glibc's allocator the worker's RSS kept growing while Python's
heap did not, on RocksDB too, where its tables are on disk: by about 1.1 KB per record with
glibc's defaults, and in steps of its arenas with the bounds below (633 -> 1,126 MiB from 200,000
to 1,000,000 records): fragmentation, which others running RocksDB under glibc saw too and left
for jemalloc. On jemalloc, with freed pages given back after a second (`JEMALLOC_CONF`), two runs
of the same went from 675 to 712 and from 650 to 896 MiB. jemalloc has to be in the process
before it starts (`LD_PRELOAD`): the watchdog starts its worker so (`with_jemalloc`), and the
worker says which allocator it runs on at its start (`worker.allocator` in its log).

Without jemalloc, two of glibc's defaults make the growth worse, and are set from inside the
process before its threads start (as MALLOC_ARENA_MAX and MALLOC_MMAP_THRESHOLD_ would): every
thread that allocates (RocksDB's background threads, the metrics server) may get an arena of its
own, up to eight per core, each keeping what was freed in it; and the threshold above which an
allocation gets pages of its own (given back to the system when freed) rises to the largest block
freed so far, so that the worker's large fetch and batch buffers, once freed, come from the heap
instead and leave it fragmented."""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Mapping

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameters (malloc.h)
M_ARENA_MAX = -8
ARENAS = 2
MMAP_THRESHOLD = 128 * 1024  # glibc's initial value, held fixed
# Freed pages go back to the system after a second, purged by a thread of jemalloc's own, rather
# than after ten seconds by whichever thread allocates next.
JEMALLOC_CONF = "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0"


def with_jemalloc(env: Mapping[str, str]) -> dict[str, str]:
    """`env` for a worker process, with jemalloc preloaded where the system has it (Debian's
    libjemalloc2) and `env` preloads nothing else already."""
    library = ctypes.util.find_library("jemalloc")
    if library is None or env.get("LD_PRELOAD"):
        return dict(env)
    return {**env, "LD_PRELOAD": library, "MALLOC_CONF": env.get("MALLOC_CONF", JEMALLOC_CONF)}


def set_up_allocator() -> str:
    """Which allocator this process runs on ("jemalloc", "glibc" or "other"); glibc's is bounded
    (above). Called before the worker starts its threads."""
    if hasattr(ctypes.CDLL(None), "mallctl"):  # a symbol only jemalloc defines
        return "jemalloc"
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c")).mallopt
    except (OSError, AttributeError):
        return "other"
    bounded = bool(mallopt(M_ARENA_MAX, ARENAS)) and bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    return "glibc" if bounded else "other"
