"""Per-model operations over the event store: drift references (and, later, performance queries)."""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from services.event_service import EventService
from vigil.drift import DriftInputError
from vigil.drift_monitor import reference_event, rows_of
from vigil.drift_windows import profiles_of
from vigil.events import DriftReferenceSet
from vigil.policy import Policy


class ModelService(EventService):
    async def set_reference(
        self, policy: Policy, model_id: str, version: str, frame: pd.DataFrame, source_name: str, now: datetime
    ) -> DriftReferenceSet:
        """Profile a reference file and record it: the worker measures the version against it from now on."""
        await self.check_registered(model_id)
        drift = policy.for_model(model_id).drift
        profiles = profiles_of(rows_of(frame), drift.bins, drift.max_categories)
        if not profiles:
            raise DriftInputError("no column of the reference file has a value")
        event = reference_event(model_id, version, profiles, "upload", source_name, now)
        await self._publish_and_wait([event])
        return event
