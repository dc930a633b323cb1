"""The worker under a watchdog: `vigil worker` runs the Faust worker as a child process and starts
it again when it exits, or when its consumer group has stopped making progress (vigil/stall.py).

The watchdog asks Kafka, not the worker: every `VIGIL_WORKER_STALL_CHECK` seconds it reads the
group's committed offsets and the end offsets of those partitions with clients of its own, made
for each look so that a restarted broker finds nothing stale. A stalled worker is asked to stop
(SIGTERM, then SIGKILL after `STOP_SECONDS`), and a new one takes over from the committed offsets:
what the old one had not committed is read again, which the worker's joins and tallies count
once (README, "After a crash: counted once"). A worker that exits by itself is started again
after a pause that doubles, up to 30 s, while it keeps exiting within a minute of its start.

The rule is the group's: with several workers in a group, one that stands still while another
commits is not found here (Kafka hands its partitions on once its heartbeats stop). SIGINT and
SIGTERM stop the watchdog and its worker; SIGKILL of the process group (what the tests call a
crash) takes both at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from vigil.stall import Partition, StallWatch
from vigil_runtime.allocator import with_jemalloc
from vigil_runtime.settings import Settings

log = structlog.get_logger("worker")
CHILD = [sys.executable, "-m", "services.cli", "worker", "--no-watchdog"]
STOP_SECONDS = 30.0
ASK_SECONDS = 10.0


async def group_position(settings: Settings) -> tuple[dict[Partition, int], dict[Partition, int]]:
    """The worker group's committed offsets and the end offsets of the same partitions."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    try:
        await admin.start()
        offsets = await admin.list_consumer_group_offsets(settings.worker_id)
        committed = {(tp.topic, tp.partition): meta.offset for tp, meta in offsets.items() if meta.offset >= 0}
        if not committed:
            return {}, {}
        await consumer.start()
        ends = await consumer.end_offsets([TopicPartition(t, p) for t, p in committed])
        return committed, {(tp.topic, tp.partition): end for tp, end in ends.items()}
    finally:
        await admin.close()
        await consumer.stop()


class Watchdog:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.watch = StallWatch(settings.worker_stall_seconds)
        self.ends: dict[Partition, int] = {}
        self.stopping = asyncio.Event()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stopping.set)
        pause = 1.0
        while not self.stopping.is_set():
            child = await asyncio.create_subprocess_exec(*CHILD, env=with_jemalloc(os.environ))
            started = time.monotonic()
            self.watch.restarted()
            stalled = await self._until_exit_or_stall(child)
            await self._stop(child)
            if self.stopping.is_set():
                return
            if stalled is None:
                log.error("worker.exited", code=child.returncode)
                pause = 1.0 if time.monotonic() - started > 60 else min(2 * pause, 30.0)
            else:
                log.error("worker.stalled", seconds=round(stalled), lag=self.watch.lag(self.ends))
                pause = 1.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), pause)

    async def _until_exit_or_stall(self, child: asyncio.subprocess.Process) -> float | None:
        """None when the child exited or a stop was asked; the seconds it stood still when stalled."""
        exited = asyncio.ensure_future(child.wait())
        stop = asyncio.ensure_future(self.stopping.wait())
        try:
            while True:
                done, _ = await asyncio.wait({exited, stop}, timeout=self.settings.worker_stall_check)
                if done:
                    return None
                try:
                    committed, self.ends = await asyncio.wait_for(group_position(self.settings), ASK_SECONDS)
                except (KafkaError, OSError, TimeoutError):
                    self.watch.unknown()  # a lost broker is the worker's to wait out, not a stall
                    continue
                if (stalled := self.watch.observe(committed, self.ends, time.monotonic())) is not None:
                    return stalled
        finally:
            stop.cancel()
            if not exited.done():
                exited.cancel()

    async def _stop(self, child: asyncio.subprocess.Process) -> None:
        if child.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signal.SIGTERM)  # again, if the group got it too: Faust stops once
            child.send_signal(signal.SIGCONT)  # a stopped process (job control, a debugger) takes it only then
        try:
            await asyncio.wait_for(child.wait(), STOP_SECONDS)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                child.kill()
            await child.wait()
