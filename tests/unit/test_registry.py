"""The model registry's rules: what a registration must say, releases in order, retirement."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vigil.events import InferenceMade, ModelRegistered, ModelRetired, ModelVersionReleased, TrainingData
from vigil.incidents import DomainError, InvalidInput
from vigil.registry import (
    UnknownModel,
    check_registration,
    check_release,
    check_retirement,
    fold_registry,
    refused_inference,
)
from vigil.validation import parse
from vigil_hospital import Hospital

T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)


def registered(**changes) -> ModelRegistered:
    fields = {
        "event_id": uuid.uuid4(), "occurred_at": T0, "model_id": "mammo-screen", "name": "MammoScreen",
        "manufacturer": "Acme", "use_case": "mammography_screening", "risk_class": "high",
        "intended_use": "Second reader for screening mammograms of women 40-74.",
        "labels": ["benign", "malignant"], "critical_labels": ["malignant"],
    }  # fmt: skip
    return ModelRegistered(**(fields | changes))


def released(version: str, at: datetime, model_id: str = "mammo-screen", **changes) -> ModelVersionReleased:
    return ModelVersionReleased(event_id=uuid.uuid4(), occurred_at=at, model_id=model_id, model_version=version,
                                released_at=at, **changes)  # fmt: skip


def retired(at: datetime, **changes) -> ModelRetired:
    fields = {"event_id": uuid.uuid4(), "occurred_at": at, "model_id": "mammo-screen", "retired_at": at,
              "reason": "replaced"}  # fmt: skip
    return ModelRetired(**(fields | changes))


def test_a_model_folds_into_its_registration_versions_and_retirement() -> None:
    events = [registered(), released("1.0", T0), released("1.1", T0 + timedelta(days=30)), retired(T0 + timedelta(90))]
    record = fold_registry(events)["mammo-screen"]
    assert [v.model_version for v in record.versions] == ["1.0", "1.1"]
    assert record.current_version == "1.1"
    assert record.retired is not None


def test_the_demo_hospitals_registry_folds_into_its_three_models() -> None:
    events = [parse(e) for e in Hospital(seed=7, start=T0).registry()]
    models = fold_registry(events)
    assert sorted(models) == ["ed-triage", "mammo-screen", "symptom-chat"]
    assert all(len(m.versions) == 1 and m.versions[0].training_data for m in models.values())


@given(st.permutations(range(4)))
def test_releases_read_before_their_registration_are_kept(order: list[int]) -> None:
    """Raw events on model.v1 may be read in any order relative to each other's partitions."""
    events = [registered(), released("1.0", T0), released("1.1", T0 + timedelta(days=1)), retired(T0 + timedelta(2))]
    record = fold_registry([events[i] for i in order])["mammo-screen"]
    assert {v.model_version for v in record.versions} == {"1.0", "1.1"}
    assert record.retired is not None


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"critical_labels": ["cancer"]}, re.escape("'cancer' are not in the label set (benign, malignant)")),
        ({"labels": [], "critical_labels": ["malignant"]}, "need the model's label set"),
        ({"labels": ["benign", "benign"], "critical_labels": []}, "each label once"),
        ({"intended_use": "   "}, "intended_use"),
    ],
)
def test_a_registration_must_say_what_the_model_is_for_and_which_labels_are_critical(changes, words) -> None:
    with pytest.raises(InvalidInput, match=words):
        check_registration(registered(**changes), None)


def test_a_model_is_registered_once() -> None:
    known = fold_registry([registered()])["mammo-screen"]
    with pytest.raises(DomainError, match="registered already"):
        check_registration(registered(), known)


def test_releases_need_a_registered_model_in_service_and_come_in_order() -> None:
    with pytest.raises(UnknownModel, match="register it before"):
        check_release(released("1.0", T0), None)
    known = fold_registry([registered(), released("1.0", T0 + timedelta(days=10))])["mammo-screen"]
    with pytest.raises(DomainError, match="released already"):
        check_release(released("1.0", T0 + timedelta(days=20)), known)
    with pytest.raises(InvalidInput, match="released in order"):
        check_release(released("1.1", T0), known)
    period = TrainingData(period_start=T0.date(), period_end=(T0 - timedelta(days=1)).date())
    with pytest.raises(InvalidInput, match="period_start is after period_end"):
        check_release(released("1.1", T0 + timedelta(days=20), training_data=period), known)
    check_release(released("1.1", T0 + timedelta(days=20)), known)
    gone = fold_registry([registered(), retired(T0 + timedelta(days=1))])["mammo-screen"]
    with pytest.raises(DomainError, match="was retired"):
        check_release(released("2.0", T0 + timedelta(days=20)), gone)


def test_a_model_is_retired_once_not_in_the_future_and_not_in_favour_of_itself() -> None:
    now = T0 + timedelta(days=5)
    with pytest.raises(UnknownModel):
        check_retirement(retired(T0), None, now)
    known = fold_registry([registered()])["mammo-screen"]
    with pytest.raises(InvalidInput, match="future"):
        check_retirement(retired(now + timedelta(hours=1)), known, now)
    with pytest.raises(InvalidInput, match="replace itself"):
        check_retirement(retired(T0, replaced_by="mammo-screen"), known, now)
    gone = fold_registry([registered(), retired(T0)])["mammo-screen"]
    with pytest.raises(DomainError, match="retired already"):
        check_retirement(retired(now), gone, now)


def test_a_retired_models_later_inferences_are_refused_with_the_reason() -> None:
    event = next(e for e in list(Hospital(seed=7, start=T0).stream(9)) if e["event_type"] == "InferenceMade")
    inference = parse(event)
    assert isinstance(inference, InferenceMade)
    before = retired(inference.occurred_at - timedelta(seconds=1), reason="recalled", replaced_by="mammo-2")
    refusal = refused_inference(inference, before)
    assert refusal is not None and refusal.kind == "retired_model" and refusal.path == "model_id"
    assert "recalled" in refusal.reason and "'mammo-2'" in refusal.reason
    assert refused_inference(inference, retired(inference.occurred_at + timedelta(seconds=1))) is None
    assert refused_inference(inference, None) is None
