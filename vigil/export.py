"""The regulatory export: which period, and what of the surveillance record goes in it.

An export covers a calendar quarter (what a PSUR or a notified body asks for) or any span of time
(what the demo and an auditor's ad-hoc request need). It is a folder a regulator or notified body
can check on its own: every event of the period as stored (with its chain hashes), the signals
and incidents as tables, subgroup performance per model, a readable summary, and a manifest with
each file's SHA-256 and the chain head, so a later change to the store or the files shows.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

SIGNALS = (
    "DriftDetected", "DriftResolved", "ThresholdBreached", "ThresholdRestored", "DisparityDetected",
    "DisparityResolved", "OversightViolation", "OversightRestored", "TransparencyViolation", "TransparencyRestored",
    "SourceSilent", "SourceResumed", "DataQualityChanged", "DataQualityRestored", "ReaderFindingRaised",
    "ReaderFindingResolved", "TrendDetected",
    "IncidentCandidateRaised", "ReportOverdue",
)  # fmt: skip


class QuarterError(ValueError):
    pass


def quarter_bounds(quarter: str) -> tuple[datetime, datetime]:
    """'2026Q4' -> [2026-10-01, 2027-01-01) in UTC."""
    found = re.fullmatch(r"(\d{4})-?Q([1-4])", quarter.strip().upper())
    if not found:
        raise QuarterError(f"quarter must look like 2026Q4, not {quarter!r}")
    year, q = int(found.group(1)), int(found.group(2))
    start = datetime(year, 3 * q - 2, 1, tzinfo=UTC)
    end = datetime(year + (q == 4), 1 if q == 4 else 3 * q + 1, 1, tzinfo=UTC)
    return start, end


def current_quarter(now: datetime) -> str:
    return f"{now.year}Q{(now.month - 1) // 3 + 1}"


@dataclass(frozen=True)
class Period:
    """What an export covers: [start, end), named for its folder and its report."""

    name: str
    start: datetime
    end: datetime
    quarterly: bool

    @property
    def days(self) -> int:
        return max(1, round((self.end - self.start).total_seconds() / 86400))


def quarter(name: str) -> Period:
    start, end = quarter_bounds(name)
    return Period(name.strip().upper().replace("-", ""), start, end, quarterly=True)


def span(start: datetime, end: datetime) -> Period:
    if start.tzinfo is None or end.tzinfo is None:
        raise QuarterError("a period's bounds need a time zone")
    if end <= start:
        raise QuarterError(f"a period ends after it starts, not {start.isoformat()} .. {end.isoformat()}")
    name = f"{start.astimezone(UTC):%Y%m%dT%H%M}-{end.astimezone(UTC):%Y%m%dT%H%M}"
    return Period(name, start, end, quarterly=False)


def signal_row(event: Mapping[str, Any]) -> dict[str, str]:
    """One line of signals.csv: when, what, which model, and the figures that matter."""
    detail = {
        "DriftDetected": lambda e: (
            f"{e['feature']}: {e['method']} {e['score']:.4g} vs {e['threshold']:g} ({e['window']})"
        ),
        "DriftResolved": lambda e: f"{e['feature']}: {e['method']} {e['score']:.4g} ({e['window']})",
        "ThresholdBreached": lambda e: (
            f"{e['level']}: {e['metric']} {e['estimate']['value']:.3f} "
            f"[{e['estimate']['ci_low']:.3f}, {e['estimate']['ci_high']:.3f}] < {e['threshold']:g} "
            f"{_subgroup(e['estimate']['subgroup'])}"
        ),
        "DisparityDetected": lambda e: (
            f"{e['metric']} gap {e['gap']:.3f} across {','.join(e['attributes'])}: "
            f"{_subgroup(e['worst']['subgroup'])} {e['worst']['value']:.3f}, p={e['p_value']:.3g}"
        ),
        "OversightViolation": lambda e: (
            f"{e['kind']}: {e['value']:.4g} vs limit {e['limit']:g} ({e['cases']} of {e['of']} outputs, "
            f"{e['window_days']} days)"
        ),
        "TrendDetected": lambda e: (
            f"{e['count']} incidents in week of {e['week_start']} vs {e['expected']:.2f}, p={e['p_value']:.3g}"
        ),
        "IncidentCandidateRaised": lambda e: f"{e['source']}: incident {e['incident_id']}",
        "ReportOverdue": lambda e: f"{e['regime']} report of incident {e['incident_id']} due {e['due_at']}",
        "SourceSilent": lambda e: (
            f"{e['deployment']}: nothing since {e['last_seen']} (allowed {e['limit_seconds']:.0f} s)"
        ),
        "SourceResumed": lambda e: f"{e['deployment']}: sends again after {e['silent_seconds']:.0f} s",
        "DataQualityChanged": lambda e: (
            f"{e['feature']} {e['kind']}: missing in {e['window_missing']:.0%} of {e['events']} events "
            f"(reference {e['reference_missing']:.0%}), window {e['window']}"
        ),
    }
    detail["DataQualityRestored"] = detail["DataQualityChanged"]
    detail["ReaderFindingRaised"] = detail["ReaderFindingResolved"] = lambda e: e["summary"]
    detail["OversightRestored"] = detail["TransparencyViolation"] = detail["TransparencyRestored"] = detail[
        "OversightViolation"
    ]
    kind = event["event_type"]
    describe = detail.get(kind) or detail.get(kind.replace("Restored", "Breached").replace("Resolved", "Detected"))
    return {
        "occurred_at": event["occurred_at"],
        "event_type": kind,
        "model_id": event.get("model_id", ""),
        "model_version": event.get("model_version", ""),
        "detail": describe(event) if describe else "",
        "event_id": event["event_id"],
    }


def _subgroup(subgroup: Mapping[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in subgroup.items()) or "everyone"


def counts_by_model(rows: Iterable[tuple[str | None, str]]) -> dict[str, Counter[str]]:
    """(model_id, event_type) rows -> per model, events per type."""
    out: dict[str, Counter[str]] = {}
    for model_id, event_type in rows:
        out.setdefault(model_id or "(none)", Counter())[event_type] += 1
    return out
