"""Every registration and retirement, on every worker: what the first stage checks an outcome's
label against, a review's final label, and a retired model's later inferences (refused: dead
letters with the reason).

The first stage joins an outcome to its inference on the inference's partition, where the model's
registry events are not (they are keyed by model). An outcome whose label is outside its model's
label set must be refused before it joins, or it would take the place of the right outcome that
comes later. Registrations are few and small, so each worker reads all of `model.v1` itself, from
the start and outside the group, as Kafka Streams reads a global table. Until a model's
registration has been read, its outcomes join, and the second stage judges them when it counts
(as it does for a model not yet registered)."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.app import ADMISSION, app, log, settings
from vigil.events import Event, InferenceMade, ModelRegistered, ModelRetired, ReviewRecorded
from vigil.registry import refused_inference, refused_review
from vigil.validation import Rejected, decode

_registered: dict[str, ModelRegistered] = {}
_retired: dict[str, ModelRetired] = {}


def registration(model_id: str) -> ModelRegistered | None:
    """The model's latest registration read so far, if any."""
    return _registered.get(model_id)


@app.task
async def follow_registry() -> None:
    """Reads `model.v1` from its start and then as it grows; a lost broker is waited out."""
    topic = settings.topic("model.v1")
    while True:
        consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
        try:
            await consumer.start()
            partitions = [TopicPartition(topic, p) for p in range(settings.topic_partitions)]
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            while True:
                for records in (await consumer.getmany(timeout_ms=1000, max_records=1000)).values():
                    for record in records:
                        _take(record.value)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the broker gone for longer than the client waits: start over
            log.warning("worker.registry_follow_failed", error=type(error).__name__)
            await asyncio.sleep(2)
        finally:
            await consumer.stop()


def _take(raw: bytes | None) -> None:
    try:
        event = decode(raw, "model.v1")
    except Rejected:  # the one agent dead-letters it
        return
    if isinstance(event, ModelRegistered):
        _registered[event.model_id] = event
    elif isinstance(event, ModelRetired):
        _retired[event.model_id] = event


def _against_registry(event: Event) -> Rejected | None:
    """A retired model's later inference, a review's final label outside its model's label set."""
    if isinstance(event, InferenceMade):
        return refused_inference(event, _retired.get(event.model_id))
    if isinstance(event, ReviewRecorded):
        return refused_review(event, _registered.get(event.model_id))
    return None


ADMISSION.append(_against_registry)
