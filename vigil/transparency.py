"""Transparency of clinical outputs: do they carry what WHO asks them to carry?

A patient talking to an AI is told so (the disclaimer of a patient-facing output), outputs come
with an explanation and a score (the model's confidence), and consent is recorded where the
deployment asks for it. `InferenceMade` states each; the oversight tallies count them
(vigil.oversight.count_inference), so they are judged over the same rolling window of daily
buckets, and a finding stands and resolves as oversight's do (`TransparencyViolation`,
`TransparencyRestored`). The policy says which shares are judged and their lowest value
(`TransparencyPolicy`; by default only the disclaimer, at 100 %).
"""

from __future__ import annotations

from typing import TypeVar

from vigil.alerts import alert_for
from vigil.events import AlertRaised, TransparencyRestored
from vigil.oversight import Finding, OversightReport, Tally, TransparencySignal, carried
from vigil.policy import TransparencyPolicy

R = TypeVar("R", bound=OversightReport)
WHAT: dict[str, str] = {
    "disclaimer_shown": "the disclaimer that the patient is talking to an AI",
    "explanation_present": "an explanation",
    "consent_recorded": "a recorded consent",
    "score_present": "a score (the model's confidence)",
}


def assess_transparency(tally: Tally, policy: TransparencyPolicy) -> list[Finding]:
    """The policy's verdicts on a window: each judged share, from `min_outputs` outputs on."""
    found = []
    bounds = policy.limits()
    for kind, (k, n) in carried(tally).items():
        limit = bounds[kind]
        if limit is None or n < policy.min_outputs:
            continue
        share = k / n
        found.append(Finding(kind=kind, value=share, limit=limit, cases=n - k, of=n, violated=share < limit))
    return found


def describe_transparency(finding: Finding | TransparencySignal, span: str, ended: bool = False) -> str:
    f = finding
    where = "back at or above" if ended else "below"
    return f"{f.value:.1%} of {f.of} outputs carried {WHAT[f.kind]} ({where} {f.limit:.0%}; {f.cases} without, {span})"


def transparency_alert(event: TransparencySignal) -> AlertRaised:
    ended = isinstance(event, TransparencyRestored)
    return alert_for(
        event,
        "TransparencyViolation",
        "warning",
        f"{event.model_id} {event.model_version}: {describe_transparency(event, f'{event.window_days} days', ended)}",
        model_id=event.model_id,
        model_version=event.model_version,
        labels={"kind": event.kind},
        resolved=ended,
    )


def with_transparency(report: R, tally: Tally, policy: TransparencyPolicy, span: str) -> R:
    """An oversight report with the transparency findings on everyone and their verdict lines."""
    found = assess_transparency(tally, policy)
    lines = [f"{f.kind}: {describe_transparency(f, span)}" for f in found if f.violated]
    kept = [line for line in report.verdict if line != "within policy"]
    return report.model_copy(
        update={"findings": [*report.findings, *found], "verdict": [*kept, *lines] or ["within policy"]}
    )
