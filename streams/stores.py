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

It also bounds what each database may hold in memory. Faust opens one database per table and
partition (44 for the worker's 11 tables on 4 partitions), each with up to three 64 MiB write
buffers and a block cache of its own of 2 GiB: the worker's RSS then grew faster with RocksDB than
with the memory store (P4, BENCHMARKS.md)."""

from __future__ import annotations

from typing import Any

from faust.stores import STORES
from faust.stores.rocksdb import Store

MIB = 1024 * 1024
# Per database (table and partition): at most 2 write buffers of 4 MiB and an 8 MiB block cache.
MEMORY = {"write_buffer_size": 4 * MIB, "max_write_buffer_number": 2, "block_cache_size": 8 * MIB,
          "block_cache_compressed_size": 8 * MIB}  # fmt: skip


class AnyPartitionStore(Store):
    def __init__(self, *args: Any, options: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, options={**MEMORY, **(options or {})}, **kwargs)

    def _get(self, key: bytes) -> bytes | None:
        found = self._get_bucket_for_key(key)
        return None if found is None else found[1]

    def _contains(self, key: bytes) -> bool:
        return self._get_bucket_for_key(key) is not None


STORES.aliases["vigil-rocksdb"] = f"{__name__}:AnyPartitionStore"
SCHEMES = {"memory": "memory", "rocksdb": "vigil-rocksdb"}  # VIGIL_WORKER_STORE -> Faust's store URL scheme
