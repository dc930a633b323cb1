"""Streaming drift rules: windows, verdicts, detection and resolution, the policy file."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from vigil.drift_monitor import (
    DATASET,
    OWN_SIGNALS,
    MonitorState,
    Span,
    already_taken,
    closable,
    first_events,
    judge,
    let_time_pass,
    new_reference,
    place,
    signals,
    transitions,
    woke,
)
from vigil.drift_windows import from_record, profiles_of, to_record
from vigil.events import DriftResolved, InferenceMade
from vigil.join import Position
from vigil.policy import DriftPolicy, DriftWindow, Policy, PolicyError, load_policy

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
rng = np.random.default_rng(11)


def rows(n: int, shift: float = 0.0, language: str | None = None) -> list[dict]:
    return [
        {"contrast": float(x), "language": language or rng.choice(["de", "fr", "en"])}
        for x in rng.normal(0.6 + shift, 0.05, n)
    ]


def inference(**overrides) -> InferenceMade:
    fields = {
        "event_id": uuid.uuid4(), "occurred_at": T0, "model_id": "m", "model_version": "1", "deployment": "site",
        "use_case": "chat", "patient_ref": "pt_x", "features": {"contrast": 0.5},
        "output": {"label": "self_care", "score": 0.7, "text_length": 300, "refusal": True},
        "patient_facing": {"disclaimer_shown": True, "emergency_detected": True, "escalated": False},
        "resources": {"latency_ms": 800, "tokens_in": 40, "tokens_out": 120},
    } | overrides  # fmt: skip
    return InferenceMade.model_validate(fields)


def test_signals_cover_inputs_outputs_and_costs() -> None:
    measured = signals(inference())
    assert measured == {
        "contrast": 0.5, "output.score": 0.7, "output.label": "self_care", "output.refusal": "true",
        "output.length": 300, "output.escalated": "false", "resources.latency_ms": 800, "resources.tokens_in": 40,
        "resources.tokens_out": 120,
    }  # fmt: skip
    assert set(measured) - {"contrast"} == OWN_SIGNALS  # what an uploaded reference of input features lacks


def test_profile_survives_its_event_record() -> None:
    profiles = profiles_of(rows(500))
    again = [from_record(to_record(p)) for p in profiles]
    for a, b in zip(profiles, again, strict=True):
        assert (a.feature, a.kind, a.edges, a.categories, a.std) == (b.feature, b.kind, b.edges, b.categories, b.std)
        assert a.reference is not None and b.reference is not None
        assert (a.reference.counts == b.reference.counts).all()
        if a.reference.sketch is not None:
            assert b.reference.sketch is not None
            assert a.reference.sketch.get_quantiles([0.1, 0.5, 0.9]) == b.reference.sketch.get_quantiles(
                [0.1, 0.5, 0.9]
            )


def test_profiles_are_capped_and_typed() -> None:
    made = profiles_of(
        [{f"f{i}": float(i) for i in range(100)} | {"mixed": "a" if j else 1.0} for j in range(30)], max_features=10
    )
    assert len(made) == 10
    mixed = profiles_of([{"mixed": "a"}, {"mixed": 1.0}, {"mixed": None}])[0]
    assert mixed.kind == "categorical" and mixed.reference is not None and mixed.reference.missing == 1


def _fill(policy: DriftPolicy, state: MonitorState, profiles: dict, batch: list[dict], at: datetime, windows: dict):
    for row in batch:
        window_id = place(state, policy, at, at)
        for name, value in row.items():
            windows.setdefault(window_id, {}).setdefault(name, profiles[name].window()).add(profiles[name], value)


def _at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_time_windows_close_on_a_later_event_and_refuse_late_ones() -> None:
    policy = DriftPolicy(window=DriftWindow(kind="time", seconds=3600), grace_seconds=300)
    state = MonitorState()
    assert place(state, policy, _at(10), _at(10)) == T0.isoformat()
    assert closable(state, policy) == []
    place(state, policy, _at(64), _at(64))  # within the grace period of the first window
    assert closable(state, policy) == []
    place(state, policy, _at(65), _at(65))
    assert closable(state, policy) == [T0.isoformat()]
    state.open.pop(T0.isoformat())
    assert place(state, policy, _at(20), _at(66)) is None and state.late == 1


def test_time_windows_of_a_stream_that_stops_close_as_wall_clock_time_passes() -> None:
    policy = DriftPolicy(window=DriftWindow(kind="time", seconds=3600), grace_seconds=300)
    state = MonitorState()
    place(state, policy, _at(50), _at(50.5))  # received half a minute after it happened
    let_time_pass(state, _at(64))
    assert closable(state, policy) == []
    let_time_pass(state, _at(65.5))  # event time has gone on to 65 minutes
    assert closable(state, policy) == [T0.isoformat()]


def test_a_restarted_worker_gives_the_backlog_time_before_silence_counts() -> None:
    policy = DriftPolicy(window=DriftWindow(kind="time", seconds=3600), grace_seconds=300)
    state = MonitorState()
    place(state, policy, _at(50), _at(50))
    restarted = _at(50) + timedelta(hours=3)  # the worker was down for three hours
    woke(state, restarted)
    let_time_pass(state, restarted + timedelta(seconds=10))
    assert closable(state, policy) == [] and state.watermark == _at(50) + timedelta(seconds=10)


def test_a_replay_is_not_overtaken_by_wall_clock_time() -> None:
    policy = DriftPolicy(window=DriftWindow(kind="time", seconds=3600), grace_seconds=300)
    state = MonitorState()
    now = datetime(2027, 1, 1, tzinfo=UTC)  # a year after the events, replayed one a second
    for i in range(60):
        place(state, policy, _at(i), now + timedelta(seconds=i))
    let_time_pass(state, now + timedelta(seconds=70))
    assert closable(state, policy) == []
    assert state.watermark == _at(59) + timedelta(seconds=11)


def test_count_windows_close_when_full() -> None:
    policy = DriftPolicy(window=DriftWindow(kind="count", size=10))
    state = MonitorState()
    for i in range(25):
        place(state, policy, T0 + timedelta(seconds=i), T0 + timedelta(seconds=i))
    assert closable(state, policy) == ["count:0", "count:1"]
    assert state.open["count:1"].start == T0 + timedelta(seconds=10)
    assert state.open["count:1"].end == T0 + timedelta(seconds=19)


def test_judge_uses_evidently_defaults_and_agrees_with_scipy_on_counts() -> None:
    reference = rows(800)
    profiles = {p.feature: p for p in profiles_of(reference)}
    policy = DriftPolicy(min_sample=50)
    current = rows(400, shift=0.03, language="de")
    windows = {name: profiles[name].window() for name in profiles}
    for row in current:
        for name, value in row.items():
            windows[name].add(profiles[name], value)
    result = judge(profiles, windows, policy)
    by_name = {f.name: f for f in result.features}
    assert by_name["contrast"].method == "ks" and by_name["contrast"].drifted
    language = by_name["language"]
    assert language.method == "chisquare" and language.drifted
    language_reference = profiles["language"].reference
    assert language_reference is not None
    ref = language_reference.counts
    cur = windows["language"].counts
    seen = (ref > 0) | (cur > 0)
    expected = stats.chisquare(cur[seen], ref[seen] * cur.sum() / ref.sum()).pvalue
    assert language.score == pytest.approx(expected, rel=1e-12)
    assert result.dataset_drift and result.share_drifted == 1.0


def test_small_windows_are_not_judged_and_ignored_features_skipped() -> None:
    profiles = {p.feature: p for p in profiles_of(rows(300))}
    windows = {name: profiles[name].window() for name in profiles}
    windows["contrast"].add(profiles["contrast"], 0.9)
    policy = DriftPolicy.model_validate({"min_sample": 1, "features": {"language": {"ignore": True}}})
    assert [f.name for f in judge(profiles, windows, policy).features] == ["contrast"]
    assert judge(profiles, windows, DriftPolicy(min_sample=2)).features == []


def test_detection_is_raised_once_while_it_persists_then_resolved() -> None:
    profiles = {p.feature: p for p in profiles_of(rows(1000))}
    # p < 0.001: a 5 % test on fresh samples would raise a false alarm in about one run in ten.
    policy = DriftPolicy(
        min_sample=100, window=DriftWindow(kind="count", size=200), thresholds={"ks": 0.001, "chisquare": 0.001}
    )
    state = MonitorState()
    raised = []
    episodes = [0.0, 0.05, 0.05, 0.0]
    for shift in episodes:
        windows: dict = {}
        _fill(policy, state, profiles, rows(200, shift), T0, windows)
        _fill(policy, state, profiles, rows(1), T0, windows)  # opens the next window
        (window_id,) = closable(state, policy)
        span = state.open.pop(window_id)
        raised.append(transitions(state, "m", "1", window_id, span, judge(profiles, windows[window_id], policy)))
        state.position -= 1  # the opener is not part of the test's windows
        state.open.clear()
    kinds = [[(e.event_type, e.feature) for e in batch] for batch in raised]
    assert kinds[0] == []
    assert ("DriftDetected", "contrast") in kinds[1]
    assert all(feature != "contrast" for _, feature in kinds[2])  # still drifting: nothing new
    assert ("DriftResolved", "contrast") in kinds[3]
    resolved = next(e for e in raised[3] if e.feature == "contrast")
    detected = next(e for e in raised[1] if e.feature == "contrast")
    assert isinstance(resolved, DriftResolved) and resolved.detected_event_id == detected.event_id
    # The dataset verdict (1 of 2 features) reaches the 0.5 share as well.
    assert ("DriftDetected", DATASET) in kinds[1]


def test_event_ids_are_deterministic() -> None:
    profiles = {p.feature: p for p in profiles_of(rows(500))}
    windows = {name: profiles[name].window() for name in profiles}
    for row in rows(300, 0.1):
        for name, value in row.items():
            windows[name].add(profiles[name], value)
    result = judge(profiles, windows, DriftPolicy(min_sample=10))
    span = Span(start=T0, end=T0 + timedelta(hours=1))
    first = transitions(MonitorState(), "m", "1", "w", span, result)
    second = transitions(MonitorState(), "m", "1", "w", span, result)
    assert first and [e.event_id for e in first] == [e.event_id for e in second]


def test_text_for_a_numeric_feature_is_counted_not_coerced() -> None:
    profile = profiles_of(rows(100))[0]
    window = profile.window()
    window.add(profile, "0.5")
    assert (window.n, window.mismatched) == (0, 1)


def test_policy_merges_model_overrides_and_names_bad_paths(tmp_path) -> None:
    path = tmp_path / "policy.yml"
    path.write_text(
        "defaults:\n  drift:\n    min_sample: 150\n    window: {kind: count, size: 500}\n    thresholds: {ks: 0.01}\n"
        "models:\n  mammo:\n    drift:\n      window: {size: 200}\n      features:\n"
        "        contrast: {method: psi, threshold: 0.2}\n"
    )
    policy = load_policy(path)
    mammo = policy.for_model("mammo").drift
    assert (mammo.min_sample, mammo.window.kind, mammo.window.size) == (150, "count", 200)
    assert mammo.rule("contrast", "numeric", 5000) == ("psi", 0.2)
    assert mammo.rule("other", "numeric", 5000) == ("wasserstein", 0.1)
    assert policy.for_model("other").drift.window.size == 500
    assert mammo.rule("other", "numeric", 500) == ("ks", 0.01)
    with pytest.raises(PolicyError, match=r"models\.x.*drift\.windw"):
        Policy({"models": {"x": {"drift": {"windw": 1}}}})
    with pytest.raises(PolicyError, match="unknown top-level"):
        Policy({"model": {}})
    with pytest.raises(ValueError, match="does not apply to categorical"):
        DriftPolicy.model_validate({"features": {"lang": {"method": "ks"}}}).rule("lang", "categorical", 10)


def test_the_first_events_make_the_reference_and_a_new_reference_starts_the_windows_over() -> None:
    policy = DriftPolicy(reference_size=50)
    state, made = MonitorState(), []
    for i, row in enumerate(rows(120)):
        if reference := first_events(state, "m", "1", row, policy, T0 + timedelta(seconds=i)):
            made.append((i, reference))
            break
    ((i, reference),) = made
    assert i == 49 and len(state.reference_rows) == 50  # made by the 50th event, not before
    assert {p.feature for p in reference.profiles} == {"contrast", "language"}
    again = MonitorState()
    replayed = [first_events(again, "m", "1", row, policy, T0 + timedelta(seconds=49)) for row in state.reference_rows]
    assert replayed[-1] is not None and replayed[-1].event_id == reference.event_id  # a replay makes the same one
    for n in range(3):
        place(state, policy, T0 + timedelta(hours=n), T0)
    assert sorted(new_reference(state, reference)) == [(T0 + timedelta(hours=n)).isoformat() for n in range(3)]
    assert (state.open, state.position, state.reference_rows, state.reference_id) == ({}, 0, [], reference.event_id)
    assert state.reference == reference  # in the state itself, so a crash cannot part them


@given(st.lists(st.integers(0, 60), min_size=1, max_size=8))
def test_records_read_again_after_crashes_are_taken_once(restarts: list[int]) -> None:
    """A partition read from 0 to 60, the reading starting over after each crash from any earlier
    offset (where the last commit was): every offset is taken exactly once, in order."""
    state, taken = MonitorState(), []
    ends = [*sorted(restarts), 61]
    start = 0
    for end in ends:
        for offset in range(start, end):
            if not already_taken(state, Position("inference.v1", 3, offset)):
                taken.append(offset)
        start = max(0, end - 7)  # the crash: the last few were not committed, and are read again
    assert taken == list(range(61))
    assert already_taken(state, Position("inference.v1", 3, 60))
    assert not already_taken(state, Position("inference.v1", 1, 0))  # each partition is its own stream
