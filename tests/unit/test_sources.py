"""System integrity: a deployment silent for longer than its recent gaps allow is reported once, and
its next inference resumes it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from vigil.events import SourceResumed
from vigil.policy import SourcesPolicy
from vigil.sources import ModelSources, fallen_silent, limit, received, source_alert

T0 = datetime(2026, 6, 1, 8, tzinfo=UTC)
POLICY = SourcesPolicy()  # 15 minutes at least, six times the median gap


def heard_every(minutes: float, n: int, sources: ModelSources, deployment: str = "st-mary") -> datetime:
    at = T0
    for i in range(n):
        at = T0 + timedelta(minutes=minutes * i)
        received(sources, deployment, at, POLICY)
    return at


def test_the_allowed_silence_follows_the_median_gap_of_the_last_day_with_a_floor() -> None:
    busy, sparse = ModelSources(partition=0), ModelSources(partition=0)
    heard_every(1, 100, busy)
    heard_every(10, 100, sparse)
    assert limit(busy.deployments["st-mary"], POLICY) == 900  # 6 x 1 min is below the 15-minute floor
    assert limit(sparse.deployments["st-mary"], POLICY) == 3600  # 6 x 10 min


def test_a_silent_deployment_is_reported_once_and_resumes_with_its_next_inference() -> None:
    sources = ModelSources(partition=0)
    last = heard_every(10, 50, sources, "city-east")
    assert fallen_silent(sources, "m", last + timedelta(minutes=59), POLICY) == []
    [silent] = fallen_silent(sources, "m", last + timedelta(minutes=61), POLICY)
    assert (silent.deployment, silent.last_seen, silent.limit_seconds) == ("city-east", last, 3600)
    assert fallen_silent(sources, "m", last + timedelta(minutes=90), POLICY) == []  # reported already
    back = received(sources, "city-east", last + timedelta(minutes=95), POLICY)
    assert isinstance(back, SourceResumed) and back.silent_event_id == silent.event_id
    assert back.silent_seconds == 95 * 60
    assert source_alert(silent).labels == {"deployment": "city-east"} and not source_alert(silent).resolved
    assert source_alert(back).resolved


def test_the_same_silence_has_the_same_id_and_deployments_are_bounded() -> None:
    a, b = ModelSources(partition=0), ModelSources(partition=0)
    for state in (a, b):
        heard_every(1, 10, state)
    late = T0 + timedelta(hours=2)
    assert fallen_silent(a, "m", late, POLICY)[0].event_id == fallen_silent(b, "m", late, POLICY)[0].event_id
    few = SourcesPolicy(max_deployments=2)
    bounded = ModelSources(partition=0)
    for site in ("a", "b", "c"):
        received(bounded, site, T0, few)
    assert sorted(bounded.deployments) == ["a", "b"]
