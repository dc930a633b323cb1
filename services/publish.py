"""Sending accepted events (and their dead letters) to Kafka: what /v1/events, /v1/traces and the
OTLP reader share."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from vigil.events import DEADLETTER_TOPIC, DeadLetter, Event
from vigil.validation import outgoing
from vigil_runtime.observability import EVENTS_IN, EVENTS_OUT
from vigil_runtime.outages import Unavailable
from vigil_runtime.settings import Settings


async def publish(
    producer: AIOKafkaProducer,
    settings: Settings,
    events: Sequence[Event],
    letters: Sequence[DeadLetter] = (),
    component: str = "api",
) -> None:
    """All or nothing from the sender's view: if Kafka does not take every record, `Unavailable`,
    and the sender sends the batch again (event ids make that safe)."""
    records = [outgoing(event) for event in events]
    sends = []
    for record in records:
        EVENTS_IN.labels(component, record.topic).inc()
        sends.append(await producer.send(settings.topic(record.topic), record.value, key=record.key))
    for letter in letters:
        topic = settings.topic(DEADLETTER_TOPIC)
        sends.append(await producer.send(topic, letter.model_dump_json().encode(), key=letter.source_topic.encode()))
    try:
        await asyncio.gather(*sends)
    except KafkaError as error:
        raise Unavailable(f"Kafka did not take the events ({type(error).__name__}); retry") from None
    for record in records:
        EVENTS_OUT.labels(component, record.topic).inc()
    if letters:
        EVENTS_OUT.labels(component, DEADLETTER_TOPIC).inc(len(letters))
