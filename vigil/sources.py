"""System integrity: is every deployment still sending?

A site whose integration breaks stops sending inferences, and nothing Vigil derives from a stream
notices an absence: drift, performance and oversight simply see less. The worker's second stage
keeps, per model and deployment, when it last received an inference and the recent gaps between
them (by when they were received: a backlog read in a burst has its real gaps, not its event
times'). On each clock tick, a deployment silent for longer than its policy allows (the median gap
of the last day times `gap_factor`, at least `min_silence_seconds`) raises `SourceSilent`; its
next inference raises `SourceResumed`.
"""

from __future__ import annotations

import statistics
import uuid
from datetime import datetime, timedelta

from pydantic import BaseModel, Field

from vigil.alerts import alert_for
from vigil.events import AlertRaised, SourceResumed, SourceSilent
from vigil.policy import SourcesPolicy

NAMESPACE = uuid.UUID("3e0d6c1a-5b7f-4d2e-8a9c-1f4b6d8e0a2c")
GAPS = 500  # recent gaps kept per deployment (those of the last day among them count)
DAY = timedelta(days=1)


class SourceState(BaseModel):
    """One deployment of one model: when its inferences were last received, the recent gaps."""

    last_seen: datetime
    gaps: list[tuple[datetime, float]] = Field(default_factory=list)  # (received, seconds since the one before)
    silent: SourceSilent | None = None  # the standing silence, if any


class ModelSources(BaseModel):
    partition: int  # the model's in the second stage, where its ticks come
    deployments: dict[str, SourceState] = Field(default_factory=dict)


def limit(state: SourceState, policy: SourcesPolicy) -> float:
    """Seconds of silence the deployment is allowed: from the median gap of its last day."""
    recent = [gap for at, gap in state.gaps if at >= state.last_seen - DAY]
    median = statistics.median(recent) if recent else 0.0
    return max(policy.min_silence_seconds, policy.gap_factor * median)


def received(sources: ModelSources, deployment: str, at: datetime, policy: SourcesPolicy) -> SourceResumed | None:
    """An inference of the deployment received at `at`; its resumption if it was silent. A
    deployment past `max_deployments` is not watched (labels and state stay bounded)."""
    state = sources.deployments.get(deployment)
    if state is None:
        if len(sources.deployments) < policy.max_deployments:
            sources.deployments[deployment] = SourceState(last_seen=at)
        return None
    if at > state.last_seen:
        state.gaps = [*state.gaps, (at, (at - state.last_seen).total_seconds())][-GAPS:]
        state.last_seen = at
    if (silence := state.silent) is None:
        return None
    state.silent = None
    return SourceResumed(
        **silence.model_dump(exclude={"event_id", "event_type", "occurred_at"}),
        event_id=uuid.uuid5(NAMESPACE, f"resumed/{silence.event_id}"),
        occurred_at=at,
        silent_event_id=silence.event_id,
        silent_seconds=(at - silence.last_seen).total_seconds(),
    )


def fallen_silent(sources: ModelSources, model_id: str, now: datetime, policy: SourcesPolicy) -> list[SourceSilent]:
    """The deployments silent for longer than allowed at `now`, not yet reported."""
    out = []
    for deployment, state in sorted(sources.deployments.items()):
        allowed = limit(state, policy)
        if state.silent is None and (now - state.last_seen).total_seconds() > allowed:
            state.silent = SourceSilent(
                event_id=uuid.uuid5(NAMESPACE, f"{model_id}/{deployment}/{state.last_seen.isoformat()}"),
                occurred_at=now, model_id=model_id, deployment=deployment, last_seen=state.last_seen,
                limit_seconds=allowed,
            )  # fmt: skip
            out.append(state.silent)
    return out


def source_alert(event: SourceSilent) -> AlertRaised:
    resumed = isinstance(event, SourceResumed)
    what = (
        f"sends again after {event.silent_seconds / 60:,.0f} minutes"
        if isinstance(event, SourceResumed)
        else f"has sent no inference since {event.last_seen:%Y-%m-%d %H:%M} UTC "
        f"(more than {event.limit_seconds / 60:,.0f} minutes)"
    )
    return alert_for(
        event, "SourceSilent", "warning", f"{event.model_id} at {event.deployment} {what}",
        model_id=event.model_id, labels={"deployment": event.deployment}, resolved=resumed,
    )  # fmt: skip
