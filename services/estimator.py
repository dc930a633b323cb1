"""Estimator: the estimated performance (CBPE) of every model whose inferences or outcomes changed,
from the event store, as `PerformanceEstimated` events, a gauge and a warning alert.

It reads the store, not the stream: an estimate needs each pending output's score and the version's
first outcomes, which the store holds indexed and the worker's joins hold only partition by
partition. Every `VIGIL_ESTIMATE_INTERVAL` seconds it asks which models had inferences or outcomes
recorded since it last looked, and estimates those (services.models.performance_estimate). An event
is sent only when the estimate says something new (its id follows from what it says, so a restart
or a second estimator sends nothing twice); an alert when the estimate crosses the policy's
threshold, either way. A lost PostgreSQL or Kafka is waited out and shown."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

import structlog
from aiokafka import AIOKafkaProducer

from services.models import performance_estimate
from services.processes import until_stopped
from services.publish import publish
from services.store import reads
from vigil.events import Event, PerformanceEstimated
from vigil.performance_estimate import estimate_alert, estimated_event
from vigil.policy import Policy, load_policy
from vigil_runtime.database import engine_for
from vigil_runtime.observability import PERFORMANCE_ESTIMATED
from vigil_runtime.outages import waiting_out
from vigil_runtime.settings import Settings

log = structlog.get_logger("estimator")
COMPONENT = "estimator"
T = TypeVar("T")


class Estimator:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = engine_for(settings)
        self.policy: Policy = load_policy(settings.policy_file)
        self.producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
        self.stopping = asyncio.Event()
        self.seen = 0  # the store position up to which models were estimated
        self.last: dict[tuple[str, str, str], PerformanceEstimated] = {}  # model, version, label -> latest

    async def _through(self, dependency: str, call: Callable[[], Awaitable[T]]) -> T:
        return await waiting_out(COMPONENT, dependency, call, give_up=self.stopping.is_set)

    async def _remembered(self) -> None:
        """The latest estimate of each model version and label, as recorded: where the alerts stand."""
        async with self.engine.connect() as conn:
            for event in await reads.of_type(conn, PerformanceEstimated):
                self.last[(event.model_id, event.model_version, event.label)] = event

    async def estimate_changed(self, now: datetime) -> int:
        """One round; returns how many events it sent."""
        async with self.engine.connect() as conn:
            changed, seen = await reads.models_changed_after(conn, self.seen)
            known = await reads.registered(conn)
        sent: list[Event] = []
        for model_id in sorted(changed & set(known)):
            performance = self.policy.for_model(model_id).performance
            rules = performance.rules(known[model_id].risk_class)
            # Events and alerts are for everyone: no subgroups (depth 0).
            found = await performance_estimate(
                self.engine, self.policy, model_id, None, performance.window_days, now, depth=0
            )
            for version in found.versions:
                event = estimated_event(model_id, version, rules.metric, rules.threshold, found.window_days, now)
                if event is None:
                    continue
                for metric, value in event.estimates.items():
                    for bound, figure in (("estimate", value.value), ("low", value.low), ("high", value.high)):
                        PERFORMANCE_ESTIMATED.labels(model_id, version.model_version, version.label, metric,
                                                     bound).set(figure)  # fmt: skip
                key = (model_id, version.model_version, version.label)
                before = self.last.get(key)
                if before is not None and before.event_id == event.event_id:
                    continue  # nothing new
                sent.append(event)
                if alert := estimate_alert(event, before is not None and before.below_threshold):
                    sent.append(alert)
                self.last[key] = event
        if sent:
            await self._through("kafka", lambda: publish(self.producer, self.settings, sent, (), COMPONENT))
            log.info("estimator.sent", events=len(sent), models=len(changed))
        self.seen = seen  # only now: a round cut short by an outage is done again whole
        return len(sent)

    async def run(self) -> None:
        await self._through("kafka", self.producer.start)
        try:
            await self._through("postgres", self._remembered)
            while not self.stopping.is_set():
                await self._through("postgres", lambda: self.estimate_changed(datetime.now(UTC)))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), self.settings.estimate_interval)
        finally:
            await self.producer.stop()
            await self.engine.dispose()


async def run_estimator(settings: Settings) -> None:
    log.info("estimator.starting", interval=settings.estimate_interval)
    await until_stopped(Estimator(settings))
    log.info("estimator.stopped")
