"""Notifier: alert.v1 → Alertmanager's v2 API, which routes to on-call and the safety team.

At least once: the consumer group's offsets are committed only after Alertmanager accepted the
batch; Alertmanager itself merges repeats of an alert with the same labels.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import httpx
import structlog
from aiokafka import AIOKafkaConsumer
from pydantic import ValidationError
from tenacity import retry, retry_if_exception_type, stop_never, wait_exponential

from services.processes import until_stopped
from vigil.events import ALERT_TOPIC, AlertRaised
from vigil.plan import FALLBACK, PlanEntry
from vigil.policy import load_policy
from vigil_runtime.observability import EVENTS_IN, EVENTS_OUT
from vigil_runtime.settings import Settings

log = structlog.get_logger("notifier")


def alertmanager_alert(
    alert: AlertRaised, plan: Mapping[str, PlanEntry], runbooks: str, now: datetime, active_for: timedelta
) -> dict:
    """Labels are bounded and never carry patient data (AlertRaised.labels is built by the core).
    The model's monitoring plan adds who owns the alert (a label: Alertmanager routes by it), what
    they do and how often they review it, and where its runbook is. A firing alert stays active for
    `active_for` from when it is sent (an alert derived from late events still pages), a resolved
    one ends when its cause ended."""
    entry = plan.get(alert.alert_name, FALLBACK)
    labels = {"alertname": alert.alert_name, "severity": alert.severity, "owner": entry.owner, **alert.labels}
    if alert.model_id:
        labels["model_id"] = alert.model_id
    if alert.model_version:
        labels["model_version"] = alert.model_version
    ends = alert.occurred_at if alert.resolved else max(alert.occurred_at, now) + active_for
    return {
        "labels": labels,
        "annotations": {"summary": alert.summary, "vigil_event_id": str(alert.event_id), "action": entry.action,
                        "review_cadence": entry.cadence, "runbook_url": f"{runbooks}/{alert.alert_name}.md"},
        "startsAt": alert.occurred_at.isoformat(),
        "endsAt": ends.isoformat(),
    }  # fmt: skip


class Notifier:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.consumer = AIOKafkaConsumer(
            settings.topic(ALERT_TOPIC),
            bootstrap_servers=settings.kafka_bootstrap,
            group_id=f"{settings.worker_id}-notifier",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        self.client = httpx.AsyncClient(base_url=settings.alertmanager_url, timeout=10)
        self.policy = load_policy(settings.policy_file)
        self.stopping = asyncio.Event()

    @retry(retry=retry_if_exception_type(httpx.HTTPError), wait=wait_exponential(max=30), stop=stop_never, reraise=True)
    async def _post(self, payload: list[dict]) -> None:
        response = await self.client.post("/api/v2/alerts", json=payload)
        response.raise_for_status()

    async def run(self) -> None:
        await self.consumer.start()
        try:
            while not self.stopping.is_set():
                batches = await self.consumer.getmany(timeout_ms=500, max_records=200)
                payload = []
                for records in batches.values():
                    for record in records:
                        EVENTS_IN.labels("notifier", ALERT_TOPIC).inc()
                        try:
                            alert = AlertRaised.model_validate_json(record.value)
                            plan = self.policy.for_model(alert.model_id or "*").plan
                            payload.append(
                                alertmanager_alert(
                                    alert, plan, self.settings.runbook_base_url, datetime.now(UTC),
                                    self.settings.alert_active_for,
                                )
                            )  # fmt: skip
                        except ValidationError:
                            log.error("notifier.unreadable_alert", partition=record.partition, offset=record.offset)
                if payload:
                    await self._post(payload)
                    EVENTS_OUT.labels("notifier", "alertmanager").inc(len(payload))
                    log.info("notifier.sent", alerts=len(payload))
                if batches:
                    await self.consumer.commit()
        finally:
            await self.consumer.stop()
            await self.client.aclose()


async def run_notifier(settings: Settings) -> None:
    await until_stopped(Notifier(settings))
