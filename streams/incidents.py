"""Incidents: each one's state from its events, the regulatory clocks, and the inbox gauges."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import faust

from streams.app import Item, app, each_record, emit, log, settings, steady_timer
from vigil.events import INCIDENT_EVENTS, SURVEILLANCE_TOPIC
from vigil.incident_alerts import follow_ups
from vigil.incidents import Inbox, Incident, clock_alert, clock_events, evolve, inbox
from vigil_runtime.observability import INCIDENTS, PROCESSING_ERRORS, REPORT_NEXT_DUE, REPORTS_OVERDUE

# Incident events are keyed by incident_id on both topics, so the table is co-partitioned.
incident_events = app.topic(
    *settings.topics(("incident.v1", SURVEILLANCE_TOPIC)), value_serializer="raw", key_serializer="raw"
)
incident_table = app.Table("incidents", default=None, key_type=bytes, value_type=bytes)
# Clock events sent and not yet read back into their incident's state: the surveillance topic can
# lag a busy worker by many ticks, and each tick would send the same event again until then.
sent_clocks: set[UUID] = set()
# Alert follow-ups (resolutions, refreshes) sent: each tick computes them anew, each is sent once.
# After a restart they are sent once more; their ids are the same, so the store keeps them once.
sent_follow_ups: set[UUID] = set()


@app.agent(incident_events)
async def track_incidents(stream: faust.StreamT) -> None:
    await each_record(stream, "track_incidents", _track_incident)


async def _track_incident(item: Item) -> None:
    event = item.event
    if not isinstance(event, INCIDENT_EVENTS):
        return
    key = str(event.incident_id).encode()
    stored = incident_table.get(key)
    state = evolve(Incident.model_validate_json(stored) if stored else None, event)
    if state is not None:
        incident_table[key] = state.model_dump_json().encode()


@steady_timer(interval=settings.clock_interval)
async def run_clocks() -> None:
    """Raise ReportDueSoon / ReportOverdue (and an alert) for every open clock that is due; resolve
    or refresh the incidents' alerts; show the inbox."""
    now = datetime.now(UTC)
    states, due, following = [], set(), set()
    for key, value in list(incident_table.items()):
        try:
            state = Incident.model_validate_json(value)
            states.append(state)
            for event in clock_events(state, now):
                due.add(event.event_id)
                if event.event_id in sent_clocks:
                    continue
                await emit(event)
                await emit(clock_alert(event, state.model_id))
                sent_clocks.add(event.event_id)
                log.info("worker.clock", incident_id=str(state.incident_id), event_type=event.event_type)
            for alert in follow_ups(state, now, settings.alert_active_for):
                following.add(alert.event_id)
                if alert.event_id not in sent_follow_ups:
                    await emit(alert)
                    sent_follow_ups.add(alert.event_id)
        except Exception:
            PROCESSING_ERRORS.labels("run_clocks", SURVEILLANCE_TOPIC).inc()
            log.exception("worker.clock_error", incident_id=key.decode())
    sent_clocks.intersection_update(due)  # those read back are flagged in their state: not due any more
    sent_follow_ups.intersection_update(following)
    _show_inbox(inbox(states, now))


def _show_inbox(summary: Inbox) -> None:
    for (model_id, status), n in summary.by_status.items():
        INCIDENTS.labels(model_id, status).set(n)
    for regime, n in summary.overdue.items():
        REPORTS_OVERDUE.labels(regime).set(n)
    REPORT_NEXT_DUE.clear()
    for regime, seconds in summary.next_due.items():
        REPORT_NEXT_DUE.labels(regime).set(seconds)
