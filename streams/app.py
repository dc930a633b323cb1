"""The Faust worker: topics and thin agents. Each agent decodes, calls the core, emits."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import faust
import structlog

from services.observability import CONSUMER_LAG, DEAD_LETTERS, EVENTS_IN, EVENTS_OUT, LATENCY
from services.settings import get_settings
from vigil.events import DEADLETTER_TOPIC, INPUT_TOPICS
from vigil.validation import Rejected, dead_letter, decode

settings = get_settings()
log = structlog.get_logger("worker")

app = faust.App(
    settings.worker_id,
    broker=f"kafka://{settings.kafka_bootstrap}",
    store="memory://",
    web_enabled=False,
    topic_partitions=settings.topic_partitions,
    consumer_auto_offset_reset="earliest",
    producer_acks=-1,
    value_serializer="raw",
    key_serializer="raw",
)

inputs = app.topic(*settings.topics(INPUT_TOPICS), value_serializer="raw", key_serializer="raw")
deadletters = app.topic(settings.topic(DEADLETTER_TOPIC), value_serializer="raw", key_serializer="raw")


@app.agent(inputs)
async def validate(stream: faust.StreamT) -> None:
    """Every input record is either a valid event or a dead letter with its reason; never a crash."""
    async for record in stream.events():
        message = record.message
        topic = settings.logical_topic(message.topic)
        EVENTS_IN.labels("worker", topic).inc()
        try:
            decode(message.value, topic)
        except Rejected as rejected:
            letter = dead_letter(
                rejected, message.topic, message.partition, message.offset, message.value, datetime.now(UTC)
            )
            await deadletters.send(key=message.topic.encode(), value=letter.model_dump_json().encode())
            DEAD_LETTERS.labels(topic, rejected.kind).inc()
            EVENTS_OUT.labels("worker", DEADLETTER_TOPIC).inc()
            log.info(
                "worker.dead_lettered",
                topic=topic,
                partition=message.partition,
                offset=message.offset,
                reason_kind=rejected.kind,
                path=rejected.path,
            )
        LATENCY.labels("worker").observe(max(0.0, time.time() - message.timestamp))


@app.timer(interval=5.0)
async def report_lag() -> None:
    consumer = app.consumer
    for tp in consumer.assignment():
        position = await consumer.position(tp)
        if position is not None:
            lag = max(0, consumer.highwater(tp) - position)
            CONSUMER_LAG.labels("worker", settings.logical_topic(tp.topic), str(tp.partition)).set(lag)
