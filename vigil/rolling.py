"""What a monitor remembers of one model version whose signals are judged over a rolling window of
daily buckets: the days it has buckets for, how far its events have come, and the signals that stand.
Event ids count the times a signal was raised, so reprocessing after a crash yields the same ids."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta

from pydantic import BaseModel


class RollingState(BaseModel):
    origin: uuid.UUID | None = None  # the first event counted: part of event ids, so another stream's differ
    days: list[date] = []  # days with a bucket
    latest: datetime | None = None  # latest event time counted
    standing: dict[str, uuid.UUID] = {}  # signal key -> the event that raised it
    raised: dict[str, int] = {}  # signal key -> times raised

    def counted(self, at: datetime, event_id: uuid.UUID) -> None:
        """An event at `at` was added to its day's bucket."""
        if at.date() not in self.days:
            self.days.append(at.date())
        self.latest = max(self.latest or at, at)
        self.origin = self.origin or event_id

    def window(self, window_days: int) -> list[date]:
        """Days in the rolling window that ends at the latest event; older days are forgotten."""
        if self.latest is None:
            return []
        first = (self.latest - timedelta(days=window_days)).date()
        self.days = sorted(d for d in self.days if d >= first)
        return self.days

    def next_id(self, namespace: uuid.UUID, model_id: str, version: str, key: str) -> uuid.UUID:
        self.raised[key] = self.raised.get(key, 0) + 1
        return uuid.uuid5(namespace, f"{model_id}/{version}/{self.origin}/{key}/{self.raised[key]}")
