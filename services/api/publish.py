"""Sending accepted events (and dead letters) to Kafka from a request: what /v1/events and
/v1/traces share."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from services.api.errors import Unavailable
from vigil.events import DEADLETTER_TOPIC, DeadLetter, Event
from vigil.validation import outgoing
from vigil_runtime.observability import EVENTS_IN, EVENTS_OUT
from vigil_runtime.settings import Settings


async def publish(
    producer: AIOKafkaProducer, settings: Settings, events: Sequence[Event], letters: Sequence[DeadLetter] = ()
) -> None:
    """All or nothing from the client's view: if Kafka does not take every record, the answer is
    503 and the client sends the batch again (event ids make that safe)."""
    records = [outgoing(event) for event in events]
    sends = []
    for record in records:
        EVENTS_IN.labels("api", record.topic).inc()
        sends.append(await producer.send(settings.topic(record.topic), record.value, key=record.key))
    for letter in letters:
        topic = settings.topic(DEADLETTER_TOPIC)
        sends.append(await producer.send(topic, letter.model_dump_json().encode(), key=letter.source_topic.encode()))
    try:
        await asyncio.gather(*sends)
    except KafkaError as error:
        raise Unavailable(f"Kafka did not take the events ({type(error).__name__}); retry") from None
    for record in records:
        EVENTS_OUT.labels("api", record.topic).inc()
    if letters:
        EVENTS_OUT.labels("api", DEADLETTER_TOPIC).inc(len(letters))
