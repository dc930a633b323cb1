"""The model registry: each model's state folded from its `model.v1` events, and the rules its
commands obey (register, release a version, retire).

A model is registered once, with its label set, critical labels, risk class and intended use;
versions are released into it one at a time, each with what changed, what it was trained and
validated on and its known limitations; a retired model takes no new version and its later
inferences are refused (dead-lettered by the worker with the reason). A registration sent as a
raw event again replaces the earlier one (the latest wins, as the worker reads it); the commands
refuse that, so that a model's identity changes only by an explicit new model.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from pydantic import Field

from vigil.events import (
    Event,
    InferenceMade,
    ModelRegistered,
    ModelRetired,
    ModelVersionReleased,
    Record,
    ReviewRecorded,
)
from vigil.incidents import DomainError, InvalidInput
from vigil.validation import Rejected


class UnknownModel(InvalidInput):
    """No registration names the model (HTTP 404)."""


class ModelRecord(Record):
    """A model as its registry events describe it."""

    registration: ModelRegistered
    versions: list[ModelVersionReleased] = Field(default_factory=list)  # in release order
    retired: ModelRetired | None = None

    @property
    def model_id(self) -> str:
        return self.registration.model_id

    @property
    def current_version(self) -> str | None:
        return self.versions[-1].model_version if self.versions else None

    def version(self, name: str) -> ModelVersionReleased | None:
        return next((v for v in self.versions if v.model_version == name), None)


def fold_registry(events: Iterable[Event]) -> dict[str, ModelRecord]:
    """Every model's record from registry events in the order they were recorded. A release or a
    retirement of a model no registration names yet is kept for when it comes (topics are read in
    parallel; the API refuses them, raw events may still arrive in that order)."""
    models: dict[str, ModelRecord] = {}
    early: dict[str, list[ModelVersionReleased | ModelRetired]] = {}
    for event in events:
        if isinstance(event, ModelRegistered):
            known = models.get(event.model_id)
            record = ModelRecord(registration=event)
            if known is not None:
                record = known.model_copy(update={"registration": event})
            for waiting in early.pop(event.model_id, []):
                record = _with(record, waiting)
            models[event.model_id] = record
        elif isinstance(event, ModelVersionReleased | ModelRetired):
            if event.model_id in models:
                models[event.model_id] = _with(models[event.model_id], event)
            else:
                early.setdefault(event.model_id, []).append(event)
    return models


def _with(record: ModelRecord, event: ModelVersionReleased | ModelRetired) -> ModelRecord:
    if isinstance(event, ModelRetired):
        return record.model_copy(update={"retired": event})
    # A version released again (the same event read twice, or re-sent) replaces its earlier release.
    versions = [v for v in record.versions if v.model_version != event.model_version]
    return record.model_copy(update={"versions": [*versions, event]})


def check_registration(new: ModelRegistered, known: ModelRecord | None) -> None:
    """What a registration must say: refused with the reason (HTTP 422, or 409 for a model that
    exists)."""
    if known is not None:
        raise DomainError(
            f"model {new.model_id!r} is registered already (since {known.registration.occurred_at:%Y-%m-%d}); "
            "register a new model_id for a new model, or release a new version of this one"
        )
    if not new.intended_use.strip():
        raise InvalidInput("intended_use: state what the model is for, and for whom (WHO: intended use)")
    if len(set(new.labels)) != len(new.labels):
        raise InvalidInput("labels: each label once")
    if new.critical_labels and not new.labels:
        raise InvalidInput("critical_labels need the model's label set (labels) they are part of")
    if outside := [label for label in new.critical_labels if label not in new.labels]:
        raise InvalidInput(
            f"critical_labels {', '.join(map(repr, outside))} are not in the label set ({', '.join(new.labels)})"
        )


def check_release(release: ModelVersionReleased, known: ModelRecord | None) -> None:
    if known is None:
        raise UnknownModel(f"no model {release.model_id!r} is registered; register it before releasing a version")
    if known.retired is not None:
        raise DomainError(f"model {release.model_id!r} was retired on {known.retired.retired_at:%Y-%m-%d}")
    if known.version(release.model_version) is not None:
        raise DomainError(f"version {release.model_version} of {release.model_id!r} is released already")
    if known.versions and release.released_at < known.versions[-1].released_at:
        latest = known.versions[-1]
        raise InvalidInput(
            f"released_at {release.released_at.isoformat()} is before the release of {latest.model_version} "
            f"({latest.released_at.isoformat()}); versions are released in order"
        )
    data = release.training_data
    if data and data.period_start and data.period_end and data.period_start > data.period_end:
        raise InvalidInput("training_data: period_start is after period_end")


def check_retirement(retirement: ModelRetired, known: ModelRecord | None, now: datetime) -> None:
    if known is None:
        raise UnknownModel(f"no model {retirement.model_id!r} is registered")
    if known.retired is not None:
        raise DomainError(f"model {retirement.model_id!r} was retired already on {known.retired.retired_at:%Y-%m-%d}")
    if retirement.replaced_by == retirement.model_id:
        raise InvalidInput("replaced_by: a model cannot replace itself")
    if retirement.retired_at > now:
        raise InvalidInput("retired_at lies in the future; retire a model when it is taken out of service")


def refused_inference(inference: InferenceMade, retired: ModelRetired | None) -> Rejected | None:
    """An inference a retired model made after its retirement is not monitored: a dead letter."""
    if retired is None or inference.occurred_at < retired.retired_at:
        return None
    successor = f"; its successor is {retired.replaced_by!r}" if retired.replaced_by else ""
    return Rejected(
        f"model {inference.model_id!r} was retired at {retired.retired_at.isoformat()} ({retired.reason}){successor}; "
        "its later inferences are not monitored",
        "retired_model",
        "model_id",
    )


def refused_review(review: ReviewRecorded, model: ModelRegistered | None) -> Rejected | None:
    """A clinician's final label outside the model's label set cannot be compared with the truth."""
    if review.final_label is None or model is None or not model.labels or review.final_label in model.labels:
        return None
    return Rejected(
        f"final_label {review.final_label!r} is not in {model.model_id}'s label set ({', '.join(model.labels)})",
        "unknown_label",
        "final_label",
    )
