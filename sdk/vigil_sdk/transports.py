"""How events reach Vigil: straight to Kafka, or through the HTTP ingest API."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any, Protocol

import httpx

# Which topic carries which event type. Mirrors vigil.events.TOPIC_OF (a test keeps them equal);
# copied so that the SDK does not depend on the server package.
TOPIC_OF = {
    "InferenceMade": "inference.v1",
    "OutcomeObserved": "outcome.v1",
    "ReviewRecorded": "review.v1",
    "IncidentReported": "incident.v1",
    "ModelRegistered": "model.v1",
    "ModelVersionReleased": "model.v1",
    "ModelRetired": "model.v1",
    "GuidelineChanged": "model.v1",
    "DriftReferenceSet": "model.v1",
}


def partition_key(event: dict[str, Any]) -> bytes:
    """The record key. Mirrors vigil.events.partition_key (a test keeps them equal): an inference,
    its outcome and its reviews share the inference id, where the worker joins them."""
    if event["event_type"] == "InferenceMade":
        return str(event["event_id"]).encode()
    if event["event_type"] in ("OutcomeObserved", "ReviewRecorded"):
        return str(event["inference_id"]).encode()
    return str(event.get("incident_id") or event.get("model_id") or event["event_id"]).encode()


class Unavailable(Exception):
    """Vigil could not be reached; the events are worth sending again later."""


class InvalidEvents(Exception):
    """Vigil refused events as invalid; sending them again will not help."""

    def __init__(self, problems: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(f"event {p.get('index')}: {p.get('reason')}" for p in problems))
        self.problems = problems


class Transport(Protocol):
    async def send(self, events: list[dict[str, Any]]) -> None: ...
    async def close(self) -> None: ...


class HttpTransport:
    def __init__(self, api_url: str, token: str, timeout: float) -> None:
        self.client = httpx.AsyncClient(base_url=api_url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout)

    async def send(self, events: list[dict[str, Any]]) -> None:
        for start in range(0, len(events), 1000):
            chunk = events[start : start + 1000]
            try:
                response = await self.client.post("/v1/events", json=chunk)
            except httpx.TransportError as error:
                raise Unavailable(str(error)) from error
            if response.status_code == 422:
                problems = response.json()["detail"]
                for p in problems:
                    p["index"] = start + p["index"] if p.get("index") is not None else None
                raise InvalidEvents(problems)
            if response.status_code >= 500 or response.status_code == 429:
                raise Unavailable(f"HTTP {response.status_code}")
            response.raise_for_status()

    async def close(self) -> None:
        await self.client.aclose()


class KafkaTransport:
    def __init__(self, bootstrap: str, timeout: float, topic_prefix: str = "") -> None:
        self.bootstrap, self.timeout, self.topic_prefix = bootstrap, timeout, topic_prefix
        self.producer: Any = None

    async def _producer(self) -> Any:
        from aiokafka import AIOKafkaProducer  # the `kafka` extra

        if self.producer is None:
            producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap,
                acks="all",
                enable_idempotence=True,
                linger_ms=5,
                request_timeout_ms=int(self.timeout * 1000),
            )
            try:
                await asyncio.wait_for(producer.start(), self.timeout)
            except Exception as error:
                await self._discard(producer)
                raise Unavailable(f"Kafka at {self.bootstrap}: {error!r}") from error
            self.producer = producer
        return self.producer

    async def _discard(self, producer: Any) -> None:
        # stop() waits for in-flight batches; against a dead broker that can take very long.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(producer.stop(), self.timeout)

    async def _send_all(self, producer: Any, events: list[dict[str, Any]]) -> None:
        futures = [
            await producer.send(
                self.topic_prefix + TOPIC_OF[e["event_type"]],
                json.dumps(e, separators=(",", ":")).encode(),
                key=partition_key(e),
            )
            for e in events
        ]
        await asyncio.gather(*futures)

    async def send(self, events: list[dict[str, Any]]) -> None:
        producer = await self._producer()
        try:
            await asyncio.wait_for(self._send_all(producer, events), self.timeout * 2)
        except Exception as error:
            # A producer that lost its broker is rebuilt on the next send.
            self.producer = None
            await self._discard(producer)
            raise Unavailable(f"Kafka at {self.bootstrap}: {error!r}") from error

    async def close(self) -> None:
        if self.producer is not None:
            await self._discard(self.producer)
