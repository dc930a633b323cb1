"""Transparency: the shares of outputs carrying a disclaimer, an explanation, a consent and a score,
counted as pandas counts them, judged by the policy, raised once and restored."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pandas as pd
import pytest

from vigil.events import InferenceMade, TransparencyRestored, TransparencyViolation
from vigil.oversight import EVERYONE, Tally, count_inference, tallies_of, transitions
from vigil.policy import OversightPolicy, Policy, PolicyError, TransparencyPolicy
from vigil.rolling import RollingState
from vigil.transparency import assess_transparency, transparency_alert
from vigil.validation import parse
from vigil_hospital import Hospital

T0 = datetime(2026, 4, 6, 8, tzinfo=UTC)


def inferences(n: int = 900) -> list[InferenceMade]:
    events = [parse(e) for e in list(Hospital(seed=3, start=T0).stream(n))]
    return [e for e in events if isinstance(e, InferenceMade)]


def test_the_shares_equal_pandas_counts_on_the_demo_hospital() -> None:
    made = inferences()
    tallies, _ = tallies_of(made, [], OversightPolicy(), TransparencyPolicy(), T0, "deployment")
    frame = pd.DataFrame(
        {
            "deployment": [i.deployment for i in made],
            "explanation": [i.explanation_present for i in made],
            "consent": [i.consent_recorded for i in made],
            "score": [i.output.score is not None or bool(i.output.class_scores) for i in made],
            "facing": [i.patient_facing is not None for i in made],
            "disclaimer": [bool(i.patient_facing and i.patient_facing.disclaimer_shown) for i in made],
        }
    )
    for group, rows in [(EVERYONE, frame), *frame.groupby("deployment")]:
        t = tallies[str(group)]
        assert (t.outputs, t.explained, t.consented, t.scored) == (
            len(rows), rows.explanation.sum(), rows.consent.sum(), rows.score.sum()
        )  # fmt: skip
        assert (t.patient_facing, t.disclaimed) == (rows.facing.sum(), rows.disclaimer.sum())
    # The demo's front-end release dropped the disclaimer for some French-speaking patients.
    everyone = tallies[EVERYONE]
    assert 0 < everyone.disclaimed < everyone.patient_facing


def tally(outputs: int, facing: int = 0, disclaimed: int = 0, explained: int = 0) -> Tally:
    return Tally(outputs=outputs, patient_facing=facing, disclaimed=disclaimed, explained=explained, scored=outputs)


def test_only_the_policys_shares_are_judged_and_only_from_min_outputs() -> None:
    policy = TransparencyPolicy(min_outputs=20)  # by default: the disclaimer only, at 100 %
    [finding] = assess_transparency(tally(100, facing=40, disclaimed=39), policy)
    assert (finding.kind, finding.cases, finding.of, finding.violated) == ("disclaimer_shown", 1, 40, True)
    assert assess_transparency(tally(100, facing=19, disclaimed=10), policy) == []  # too few to judge
    assert assess_transparency(tally(100), policy) == []  # not patient-facing
    stricter = TransparencyPolicy(min_explanation_present=0.9, min_score_present=0.99)
    found = {f.kind: f for f in assess_transparency(tally(100, explained=85), stricter)}
    assert set(found) == {"explanation_present", "score_present"}
    assert found["explanation_present"].violated and found["explanation_present"].value == pytest.approx(0.85)
    assert not found["score_present"].violated


def test_risk_classes_set_their_own_shares() -> None:
    policy = Policy({"defaults": {"transparency": {"risk_classes": {
        "high": {"min_explanation_present": 0.95, "min_score_present": 1.0},
        "low": {"min_disclaimer_shown": None},
    }}}}).for_model("any").transparency  # fmt: skip
    high, medium, low = (policy.for_risk_class(c).limits() for c in ("high", "medium", "low"))
    assert (high["explanation_present"], high["score_present"], high["disclaimer_shown"]) == (0.95, 1.0, 1.0)
    assert medium == policy.limits() == policy.for_risk_class(None).limits()
    assert low["disclaimer_shown"] is None
    assert [f.kind for f in assess_transparency(tally(100, explained=90), policy.for_risk_class("high"))] == [
        "explanation_present", "score_present"]  # fmt: skip
    with pytest.raises(PolicyError, match="high: 'min_explanation' is not one of"):
        Policy({"defaults": {"transparency": {"risk_classes": {"high": {"min_explanation": 0.9}}}}})
    with pytest.raises(PolicyError, match="a share in"):
        Policy({"defaults": {"transparency": {"risk_classes": {"high": {"min_score_present": 1.5}}}}})


def test_a_missing_disclaimer_is_raised_once_named_by_example_then_restored() -> None:
    policy = TransparencyPolicy(min_outputs=10)
    state = RollingState()
    state.counted(T0, uuid.uuid4())
    chat = next(i for i in inferences(30) if i.patient_facing is not None)
    assert chat.patient_facing is not None
    hidden = chat.model_copy(
        update={"patient_facing": chat.patient_facing.model_copy(update={"disclaimer_shown": False})}
    )
    bad = Tally()
    for output in [chat] * 19 + [hidden]:
        count_inference(bad, output, OversightPolicy(), policy)
    [raised] = transitions(state, "symptom-chat", "0.9.1", bad, assess_transparency(bad, policy), 7)
    assert isinstance(raised, TransparencyViolation) and raised.kind == "disclaimer_shown"
    assert raised.inference_ids == [hidden.event_id] and (raised.cases, raised.of) == (1, 20)
    assert transitions(state, "symptom-chat", "0.9.1", bad, assess_transparency(bad, policy), 7) == []
    good = tally(20, facing=20, disclaimed=20)
    [restored] = transitions(state, "symptom-chat", "0.9.1", good, assess_transparency(good, policy), 7)
    assert isinstance(restored, TransparencyRestored) and restored.violation_event_id == raised.event_id
    alert = transparency_alert(raised)
    assert alert.alert_name == "TransparencyViolation" and alert.labels["kind"] == "disclaimer_shown"
    assert "disclaimer" in alert.summary and chat.patient_ref not in alert.model_dump_json()
    assert transparency_alert(restored).resolved and not alert.resolved
