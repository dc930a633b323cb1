"""Alerts and incident candidates raised from derived events: the one place that builds them and
derives their ids.

Ids are name-based UUIDs of what raised them, so a derived event read again after a crash or in a
replay raises the same alert and the same candidate, and the store keeps each once.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime

from vigil.events import AlertRaised, CandidateSource, Counting, Event, IncidentCandidateRaised, Severity
from vigil.plan import AlertName

NAMESPACE = uuid.UUID("6d1f4b2e-8a3c-4e5d-9b7f-0c2a4e6d8b1f")
UNKNOWN_COUNTRY = "ZZ"  # ISO 3166 user-assigned: no regime applies until someone says where


def alert_for(
    cause: Event,
    name: AlertName,
    severity: Severity,
    summary: str,
    *,
    model_id: str | None,
    model_version: str | None = None,
    labels: Mapping[str, str] | None = None,
    resolved: bool = False,
    about: str | None = None,
) -> AlertRaised:
    """The alert a derived event raises (or, `resolved`, ends). `about` tells apart the alerts one
    event raises for several things: a guideline change, one per model it concerns."""
    return AlertRaised(
        event_id=uuid.uuid5(NAMESPACE, f"alert/{cause.event_id}" + (f"/{about}" if about else "")),
        occurred_at=cause.occurred_at,
        alert_name=name,
        severity=severity,
        model_id=model_id,
        model_version=model_version,
        summary=summary,
        labels=dict(labels or {}),
        caused_by=cause.event_id,
        resolved=resolved,
    )


def follow_up(alert: AlertRaised, *, at: datetime, resolved: bool, about: str) -> AlertRaised:
    """The same alert (the same labels, so Alertmanager takes it for the same one) sent again:
    resolved, or refreshed before Alertmanager lets it expire. `about` names which follow-up it is,
    so that each has an id of its own and is stored once however often it is computed."""
    return alert.model_copy(
        update={"event_id": uuid.uuid5(NAMESPACE, f"{alert.event_id}/{about}"), "occurred_at": at, "resolved": resolved}
    )


def incident_id_for(source: CandidateSource, cause: uuid.UUID) -> uuid.UUID:
    """The incident a cause proposes (a confirmed breach, the inference whose emergency was missed):
    the same cause always proposes the same incident."""
    return uuid.uuid5(NAMESPACE, f"{source}/{cause}")


def incident_candidate(
    source: CandidateSource,
    cause: uuid.UUID,
    *,
    occurred_at: datetime,
    model_id: str,
    model_version: str,
    summary: str,
    country: str | None,
    counting: Counting,
    inference_ids: Sequence[uuid.UUID] = (),
) -> IncidentCandidateRaised:
    """An incident proposed for triage, aware from when it was found; its clocks counted by the
    policy's rule (`counting`)."""
    incident_id = incident_id_for(source, cause)
    return IncidentCandidateRaised(
        event_id=uuid.uuid5(NAMESPACE, f"candidate/{incident_id}"),
        occurred_at=occurred_at,
        incident_id=incident_id,
        model_id=model_id,
        model_version=model_version,
        source=source,
        summary=summary,
        inference_ids=list(inference_ids),
        country=country or UNKNOWN_COUNTRY,
        aware_at=occurred_at,
        counting=counting,
    )
