"""A Faust agent that only reads and decodes: the floor under the worker's cost per record.

    python -m benchmarks.bare_faust worker   (started by benchmarks.worker_throughput)

The same input topics, consumer settings and batches as `vigil worker`'s agent, and nothing done
with a record but `json.loads`: what Faust itself costs on this machine.
"""

from __future__ import annotations

import json

import faust
from faust.worker import Worker

from streams.app import CONSUMER_TUNING
from vigil.events import INPUT_TOPICS
from vigil_runtime.settings import get_settings

settings = get_settings()
app = faust.App(settings.worker_id, broker=f"kafka://{settings.kafka_bootstrap}", store="memory://",
                web_enabled=False, consumer_auto_offset_reset="earliest", datadir=str(settings.home / "bare-data"),
                **CONSUMER_TUNING)  # fmt: skip
inputs = app.topic(*settings.topics(INPUT_TOPICS), value_serializer="raw", key_serializer="raw")


@app.agent(inputs)
async def read(stream: faust.StreamT) -> None:
    async for batch in stream.take_events(2000, within=1.0):  # type: ignore[attr-defined]  # not in its hints
        for record in batch:
            json.loads(record.message.value)


if __name__ == "__main__":
    process = Worker(app, loglevel="warning", redirect_stdouts=False)
    process.spinner = None
    process.execute_from_commandline()
