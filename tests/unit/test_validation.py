"""The shared gate: valid events pass, everything else is refused with what and where."""

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vigil.events import TOPIC_OF
from vigil.validation import (
    MAX_EVENT_BYTES,
    Rejected,
    canonical_json,
    check_depth,
    dead_letter,
    decode,
    loads,
    parse,
    surely_bounded,
)
from vigil_hospital import Hospital

NOW = datetime(2026, 3, 6, 10, 0, tzinfo=UTC)


def hospital_events(n: int = 60) -> list[dict]:
    h = Hospital(seed=1, start=NOW)
    return [*h.registry(), *h.stream(n)]


def test_every_synthetic_hospital_event_is_valid_on_its_topic() -> None:
    for event in hospital_events():
        parsed = parse(event, TOPIC_OF[event["event_type"]])
        assert str(parsed.event_id) == event["event_id"]


def test_canonical_json_round_trips_to_the_same_event() -> None:
    for event in hospital_events(12):
        parsed = parse(event)
        assert decode(canonical_json(parsed).encode()) == parsed


def inference(**changes) -> dict:
    event = next(e for e in hospital_events(3) if e["event_type"] == "InferenceMade")
    event.update(changes)
    return event


@pytest.mark.parametrize(
    ("raw", "kind", "path", "words"),
    [
        (b"{nope", "not_json", None, "not valid UTF-8 JSON"),
        (b"\xff\xfe", "not_json", None, "not valid UTF-8 JSON"),
        (b"[1, 2]", "not_an_object", None, "must be a JSON object, got list"),
        (b'{"event_type": "Nope"}', "unknown_type", "event_type", "unknown event_type 'Nope'"),
        (b'{"event_type": "InferenceMade", "schema_version": 2}', "unsupported_version", "schema_version", "version 2"),
    ],
)
def test_structural_problems_are_named(raw: bytes, kind: str, path: str | None, words: str) -> None:
    with pytest.raises(Rejected) as caught:
        decode(raw)
    assert caught.value.kind == kind
    assert caught.value.path == path
    assert words in caught.value.reason


def test_oversized_record_is_refused_before_parsing() -> None:
    with pytest.raises(Rejected, match=f"exceeds the limit of {MAX_EVENT_BYTES} bytes") as caught:
        decode(b" " * (MAX_EVENT_BYTES + 1))
    assert caught.value.kind == "oversized"


def test_schema_errors_carry_the_field_path() -> None:
    bad = inference(output={"label": "benign", "score": 1.7})
    with pytest.raises(Rejected) as caught:
        parse(bad)
    assert caught.value.kind == "schema"
    assert caught.value.path == "output.score"
    assert "less than or equal to 1" in caught.value.reason


def test_nan_and_infinity_are_refused() -> None:
    raw = json.dumps(inference(features={"patient_age": float("nan")})).encode()
    with pytest.raises(Rejected) as caught:
        decode(raw)
    assert caught.value.path is not None and caught.value.path.startswith("features.patient_age")


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(Rejected, match="extra_field: Extra inputs are not permitted"):
        parse(inference(extra_field=1))


def test_event_on_the_wrong_topic_is_refused() -> None:
    with pytest.raises(Rejected, match=r"belongs on topic inference\.v1, not outcome\.v1") as caught:
        parse(inference(), "outcome.v1")
    assert caught.value.kind == "wrong_topic"


def test_timestamps_must_carry_a_zone() -> None:
    with pytest.raises(Rejected, match="occurred_at"):
        parse(inference(occurred_at="2026-03-06T10:00:00"))


@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_crash_the_gate(raw: bytes) -> None:
    try:
        decode(raw)
    except Rejected as rejected:
        assert rejected.reason


@given(
    st.recursive(
        st.none() | st.booleans() | st.floats() | st.text(max_size=20),
        lambda c: st.lists(c) | st.dictionaries(st.text(max_size=10), c),
        max_leaves=20,
    )
)
def test_arbitrary_json_never_crashes_the_gate(value) -> None:
    try:
        parse(value)
    except Rejected as rejected:
        assert rejected.kind


def test_dead_letter_is_the_same_for_the_same_record_and_withholds_phi() -> None:
    rejected = Rejected("PHI guard: x", "phi", "x")
    first = dead_letter(rejected, "inference.v1", 2, 41, b"secret", NOW)
    again = dead_letter(rejected, "inference.v1", 2, 41, b"secret", NOW + timedelta(minutes=1))
    assert first.dead_letter_id == again.dead_letter_id
    assert first.payload_base64 is None
    assert first.payload_sha256 == again.payload_sha256
    kept = dead_letter(Rejected("nope", "not_json"), "inference.v1", 2, 42, b"{", NOW)
    assert kept.payload_base64 == "ew=="
    assert kept.dead_letter_id != first.dead_letter_id
    assert uuid.UUID(str(kept.dead_letter_id)).version == 5


@pytest.mark.parametrize("depth", [33, 1000, 100_000])
@pytest.mark.parametrize("opening", [b"[", b'{"a":'])
def test_deep_nesting_is_refused_with_its_reason_not_a_crash(depth: int, opening: bytes) -> None:
    closing = b"]" if opening == b"[" else b"}"
    raw = opening * depth + (b"" if opening == b"[" else b"1") + closing * depth
    with pytest.raises(Rejected) as caught:  # past the JSON decoder's own limit (loads), or below it (parse)
        parse(loads(raw, max_bytes=len(raw)))
    assert caught.value.kind == "too_deep"
    assert caught.value.reason == "nested deeper than 32 levels; events nest at most a few"


@pytest.mark.parametrize(
    ("field", "ahead", "refused"),
    [("occurred_at", timedelta(days=3650), True), ("occurred_at", timedelta(minutes=6), True),
     ("occurred_at", timedelta(minutes=4), False), ("occurred_at", -timedelta(days=30), False)],
)  # fmt: skip
def test_times_after_the_moment_of_sending_are_refused(field: str, ahead: timedelta, refused: bool) -> None:
    event = inference(**{field: (NOW + ahead).isoformat()})
    if not refused:
        assert parse(event, sent_at=NOW).event_id
        return
    with pytest.raises(Rejected) as caught:
        parse(event, sent_at=NOW)
    assert (caught.value.kind, caught.value.path) == ("future_timestamp", field)
    assert "after the record was sent" in caught.value.reason and "5 minutes" in caught.value.reason
    assert parse(event).event_id  # without a moment of sending (a stored event read back), no judgement


def test_every_time_an_emitter_states_is_judged() -> None:
    outcome = next(e for e in hospital_events(6) if e["event_type"] == "OutcomeObserved")
    at = datetime.fromisoformat(outcome["occurred_at"])
    with pytest.raises(Rejected) as caught:
        parse(outcome | {"observed_at": (at + timedelta(days=400)).isoformat()}, sent_at=at)
    assert caught.value.path == "observed_at"


def test_ingest_accepts_only_what_emitters_send() -> None:
    from vigil.events import INPUT_EVENTS

    trend = {"event_type": "TrendDetected", "event_id": str(uuid.uuid4()), "occurred_at": NOW.isoformat()}
    with pytest.raises(Rejected) as caught:
        parse(trend, accepted=INPUT_EVENTS)
    assert caught.value.kind == "unknown_type" and "derived by Vigil, not sent" in caught.value.reason
    assert "InferenceMade" in caught.value.reason


@pytest.mark.parametrize("event_type", [{}, [], 3, None, "TrendDetected", "Nope"])
def test_an_event_type_of_any_shape_is_refused_by_name(event_type: object) -> None:
    from vigil.events import INPUT_EVENTS

    with pytest.raises(Rejected) as caught:
        parse({"event_type": event_type}, accepted=INPUT_EVENTS)
    assert caught.value.kind == "unknown_type"


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet=st.sampled_from("ab\x00\\u0{[")),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=60,
)


@given(_json, st.integers(0, 40))
def test_what_the_bytes_show_bounded_the_full_walk_accepts(value, nest) -> None:
    """The fast path skips the walk only where the walk would find nothing."""
    for wrapped in (value, json.loads("[" * nest + json.dumps(value) + "]" * nest)):
        raw = json.dumps(wrapped).encode()
        if surely_bounded(raw):
            check_depth(wrapped)  # does not raise
