"""Field safety corrective actions and CAPA: each one's state from its events, and the commands' checks.

An action is started (linked to incidents, model versions and deployments), may have field safety
notices issued, and is checked for effectiveness, as often as the evidence warrants; the latest
check is its verdict. The MIR's corrective-action section, the FDA 3500A's remedial action and the
PSUR are filled from these states.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import Field

from vigil.events import (
    CorrectiveActionChecked,
    CorrectiveActionStarted,
    CorrectiveKind,
    Event,
    FieldSafetyNoticeIssued,
    Record,
)
from vigil.incidents import DomainError

ActionStatus = Literal["open", "notice_issued", "effective", "not_effective"]
KIND_TEXT: dict[CorrectiveKind, str] = {"fsca": "field safety corrective action", "capa": "CAPA"}


class UnknownAction(DomainError):
    pass


class CorrectiveAction(Record):
    started: CorrectiveActionStarted
    notices: list[FieldSafetyNoticeIssued] = Field(default_factory=list)
    checks: list[CorrectiveActionChecked] = Field(default_factory=list)

    @property
    def action_id(self) -> UUID:
        return self.started.action_id

    @property
    def status(self) -> ActionStatus:
        if self.checks:
            return "effective" if self.checks[-1].effective else "not_effective"
        return "notice_issued" if self.notices else "open"

    def describe(self) -> str:
        """One line for a report: what, since when, its notices and its verdict."""
        s = self.started
        notices = "; ".join(f"field safety notice {n.reference} ({n.occurred_at.date()})" for n in self.notices)
        verdict = {"open": "effectiveness not yet checked", "notice_issued": "effectiveness not yet checked",
                   "effective": "checked effective", "not_effective": "checked not effective"}[self.status]  # fmt: skip
        return (f"{KIND_TEXT[s.kind]} '{s.title}' started {s.occurred_at.date()}"
                + (f"; {notices}" if notices else "") + f"; {verdict}")  # fmt: skip


ActionEvent = CorrectiveActionStarted | FieldSafetyNoticeIssued | CorrectiveActionChecked
ACTION_EVENTS = (CorrectiveActionStarted, FieldSafetyNoticeIssued, CorrectiveActionChecked)


def fold_actions(events: Iterable[Event]) -> dict[UUID, CorrectiveAction]:
    """Every action's state from its events in the order they were recorded; a notice or check of
    an action not (yet) started is left out (the commands refuse them)."""
    actions: dict[UUID, CorrectiveAction] = {}
    for event in events:
        match event:
            case CorrectiveActionStarted() if event.action_id not in actions:
                actions[event.action_id] = CorrectiveAction(started=event)
            case FieldSafetyNoticeIssued() if event.action_id in actions:
                action = actions[event.action_id]
                actions[event.action_id] = action.model_copy(update={"notices": [*action.notices, event]})
            case CorrectiveActionChecked() if event.action_id in actions:
                action = actions[event.action_id]
                actions[event.action_id] = action.model_copy(update={"checks": [*action.checks, event]})
    return actions


def existing(actions: dict[UUID, CorrectiveAction], action_id: UUID) -> CorrectiveAction:
    if action_id not in actions:
        raise UnknownAction(f"no corrective action {action_id}; start one first")
    return actions[action_id]


def for_incident(actions: Iterable[CorrectiveAction], incident_id: UUID) -> list[CorrectiveAction]:
    return [a for a in actions if incident_id in a.started.incident_ids]


def started_within(actions: Iterable[CorrectiveAction], start: datetime, end: datetime) -> list[CorrectiveAction]:
    return [a for a in actions if start <= a.started.occurred_at < end]
