"""The worker's RocksDB store: Faust's, reading a key from whichever partition holds it.

Faust's RocksDB store looks a key up only in the database of the partition of the event being
processed (faust/stores/rocksdb.py, `_get` and `_contains`). The worker reads keys of other
partitions by design: at the end of a batch it judges every model the batch touched, a tick on
one partition reads state another record wrote, and the second stage's loops run after the last
record of the batch. Faust's memory store has one dict for all partitions, so there the same
reads work; with RocksDB they returned None (a registration "missing", a model's oversight state
started afresh). This store reads as Faust does without an event: through its key index, else
every partition's database (bloom filters make the misses cheap). Writes still go to the current
event's partition (`streams.app.writing_for`).

It also bounds what the databases hold in memory, together. Faust opens one database per table
and partition (48 for the worker's 12 tables on 4 partitions), each with up to three 64 MiB write
buffers and a block cache of its own of 2 GiB: the worker's RSS then grew faster with RocksDB than
with the memory store (P4, BENCHMARKS.md). Here every database reads through one block cache of
`VIGIL_WORKER_ROCKSDB_MEMORY` MiB, which also holds their index and filter blocks and to which
their write buffers are charged (RocksDB's write buffer manager): one budget for the store."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import rocksdict
from faust.stores import STORES
from faust.stores.rocksdb import RocksDBOptions, Store

from vigil_runtime.settings import get_settings

MIB = 1024 * 1024
# Per database: write buffers of 4 MiB, at most two (the shared budget flushes them sooner when full).
WRITE_BUFFERS = {"write_buffer_size": 4 * MIB, "max_write_buffer_number": 2}


@lru_cache(maxsize=1)
def _budget() -> tuple[rocksdict.Cache, rocksdict.WriteBufferManager]:
    """The process's one block cache, and the write buffer manager that charges memtables to it and
    flushes them when they take half of it."""
    budget = get_settings().worker_rocksdb_memory * MIB
    cache = rocksdict.Cache(budget)
    return cache, rocksdict.WriteBufferManager.new_write_buffer_manager_with_cache(budget // 2, False, cache)


class SharedBudgetOptions(RocksDBOptions):
    def as_options(self) -> rocksdict.Options:
        options = super().as_options()
        cache, write_buffers = _budget()
        table = rocksdict.BlockBasedOptions()  # Faust's table options, on the shared cache
        table.set_bloom_filter(self.bloom_filter_size, block_based=True)
        table.set_index_type(rocksdict.BlockBasedIndexType.binary_search())
        table.set_block_cache(cache)
        table.set_cache_index_and_filter_blocks(True)
        options.set_block_based_table_factory(table)
        options.set_write_buffer_manager(write_buffers)
        return options


class AnyPartitionStore(Store):
    def __init__(self, *args: Any, options: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, options={**WRITE_BUFFERS, **(options or {})}, **kwargs)
        self.rocksdb_options = SharedBudgetOptions(**(self.options or {}), use_rocksdict=True)

    def _get(self, key: bytes) -> bytes | None:
        found = self._get_bucket_for_key(key)
        return None if found is None else found[1]

    def _contains(self, key: bytes) -> bool:
        return self._get_bucket_for_key(key) is not None


STORES.aliases["vigil-rocksdb"] = f"{__name__}:AnyPartitionStore"
SCHEMES = {"memory": "memory", "rocksdb": "vigil-rocksdb"}  # VIGIL_WORKER_STORE -> Faust's store URL scheme
