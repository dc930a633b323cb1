"""AI alone against the clinician with AI on the real stack: reviews with the clinician's final
label and outcomes through Kafka into the store; the readers query equals statsmodels' McNemar and
pandas' rates computed here; a final label outside the label set is a dead letter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.contingency_tables import mcnemar

from services.store import reads
from tests.conftest import RUN, TOKENS, Pipeline
from tests.integration.helpers import wait_recorded, wait_until
from vigil.events import AlertRaised, ReaderFindingRaised, ReaderFindingResolved

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


def post(pipeline: Pipeline, events: list[dict]) -> None:
    headers = {"Authorization": f"Bearer {TOKENS['emitter']}"}
    for start in range(0, len(events), 500):
        answer = httpx.post(pipeline.api_url + "/v1/events", json=events[start : start + 500], headers=headers)
        assert answer.status_code == 202, answer.text


async def test_the_readers_query_equals_mcnemar_and_a_bad_final_label_is_refused(pipeline: Pipeline, db) -> None:
    model = f"readers-{RUN}"
    registry: dict[str, Any] = {
        "event_type": "ModelRegistered", "event_id": str(uuid.uuid4()), "occurred_at": T0.isoformat(),
        "model_id": model, "name": "Second reader", "manufacturer": "Vigil tests", "use_case": "mammography_screening",
        "risk_class": "high", "intended_use": "Second reader.", "labels": ["benign", "malignant"],
        "critical_labels": ["malignant"],
    }  # fmt: skip
    rng = np.random.default_rng(21)
    events: list[dict] = [registry]
    rows = []
    for i in range(400):
        at, inference_id = T0 + timedelta(minutes=i), str(uuid.uuid4())
        truth = "malignant" if rng.uniform() < 0.3 else "benign"
        suggested = truth if rng.uniform() < 0.85 else ("benign" if truth == "malignant" else "malignant")
        final = truth if rng.uniform() < 0.5 else suggested  # the clinician corrects half of what is wrong
        decision = "accepted" if final == suggested else "overridden"
        site = "north" if i % 2 else "south"
        rows.append({"site": site, "truth": truth, "model": suggested, "final": final, "decision": decision})
        events += [
            {"event_type": "InferenceMade", "event_id": inference_id, "occurred_at": at.isoformat(), "model_id": model,
             "model_version": "1.0", "deployment": site, "use_case": "mammography_screening",
             "patient_ref": "pt_" + uuid.uuid4().hex[:24], "subgroup": {"site": site},
             "output": {"label": suggested, "score": 0.9 if suggested == "malignant" else 0.1}},
            {"event_type": "ReviewRecorded", "event_id": str(uuid.uuid4()), "occurred_at": at.isoformat(),
             "inference_id": inference_id, "model_id": model, "reviewer_role": "radiologist", "decision": decision,
             "reviewed_at": (at + timedelta(minutes=5)).isoformat(), "final_label": final},
            {"event_type": "OutcomeObserved", "event_id": str(uuid.uuid4()), "occurred_at": at.isoformat(),
             "inference_id": inference_id, "model_id": model, "observed_at": (at + timedelta(days=7)).isoformat(),
             "label": truth, "critical_condition": truth == "malignant", "source": "pathology"},
        ]  # fmt: skip
    post(pipeline, events[:1])
    await wait_recorded(db, [registry["event_id"]], 30)
    bad = {**events[2], "event_id": str(uuid.uuid4()), "final_label": "suspicious"}
    post(pipeline, [*events[1:], bad])
    await wait_recorded(db, [e["event_id"] for e in events], 90)

    headers = {"Authorization": f"Bearer {TOKENS['auditor']}"}
    answer = httpx.get(f"{pipeline.api_url}/v1/models/{model}/readers", params={"by": "site"}, headers=headers)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    frame = pd.DataFrame(rows)
    assert body["cases"] == 400
    for row in body["rows"]:
        part = frame if not row["subgroup"] else frame[frame.site == row["subgroup"]["site"]]
        positive = part[part.truth == "malignant"]
        m, c = positive.model == "malignant", positive.final == "malignant"  # right on a truth positive
        table = [[int((m & c).sum()), int((m & ~c).sum())], [int((~m & c).sum()), int((~m & ~c).sum())]]
        assert row["model_sensitivity"] == pytest.approx(m.mean())
        assert row["clinician_sensitivity"] == pytest.approx(c.mean())
        assert row["sensitivity_p"] == pytest.approx(mcnemar(table, exact=True).pvalue)
        wrong = part[(part.model == "malignant") != (part.truth == "malignant")]
        assert row["wrong_accepted"] == pytest.approx((wrong.decision == "accepted").mean())
    assert [r["subgroup"] for r in body["rows"]] == [{}, {"site": "north"}, {"site": "south"}]
    cli = subprocess.run([sys.executable, "-m", "services.cli", "performance", "show", "--model", model, "--by", "site",
                          "--window", "0", "--readers", "--json"], capture_output=True, text=True, env=os.environ,
                         check=True)  # fmt: skip
    assert json.loads(cli.stdout)["rows"] == body["rows"]

    async def refused() -> list:
        async with db.connect() as conn:
            letters = await reads.dead_letters_of(conn)
        return [d for d in letters if d.path == "final_label" and "'suspicious'" in d.reason]

    [letter] = await wait_until(refused, 60, "the review with a final label outside the label set dead-lettered")
    assert letter.reason_kind == "unknown_label" and "benign, malignant" in letter.reason


def case(model: str, at: datetime, site: str, truth: str, suggested: str, final: str, decision: str) -> list[dict]:
    inference_id = str(uuid.uuid4())
    return [
        {"event_type": "InferenceMade", "event_id": inference_id, "occurred_at": at.isoformat(), "model_id": model,
         "model_version": "1.0", "deployment": site, "use_case": "mammography_screening",
         "patient_ref": "pt_" + uuid.uuid4().hex[:24], "subgroup": {"site": site},
         "output": {"label": suggested, "score": 0.9 if suggested == "malignant" else 0.1}},
        {"event_type": "ReviewRecorded", "event_id": str(uuid.uuid4()), "occurred_at": at.isoformat(),
         "inference_id": inference_id, "model_id": model, "reviewer_role": "radiologist", "decision": decision,
         "reviewed_at": (at + timedelta(minutes=5)).isoformat(), "final_label": final},
        {"event_type": "OutcomeObserved", "event_id": str(uuid.uuid4()), "occurred_at": at.isoformat(),
         "inference_id": inference_id, "model_id": model, "observed_at": (at + timedelta(minutes=30)).isoformat(),
         "label": truth, "critical_condition": truth == "malignant", "source": "pathology"},
    ]  # fmt: skip


async def test_worse_readers_and_accepted_wrong_suggestions_are_raised_paged_and_resolved(
    pipeline: Pipeline, db
) -> None:
    model = f"reader-signal-{RUN}"
    registry: dict[str, Any] = {
        "event_type": "ModelRegistered", "event_id": str(uuid.uuid4()), "occurred_at": T0.isoformat(),
        "model_id": model, "name": "Second reader", "manufacturer": "Vigil tests", "use_case": "mammography_screening",
        "risk_class": "high", "intended_use": "Second reader.", "labels": ["benign", "malignant"],
        "critical_labels": ["malignant"],
    }  # fmt: skip
    post(pipeline, [registry])
    await wait_recorded(db, [registry["event_id"]], 30)
    # Recent times: Alertmanager shows an alert while it is active (a day from its event time).
    start = datetime.now(UTC) - timedelta(hours=2)
    first: list[dict] = []
    for i in range(60):  # cancers: the model finds 48, clinicians throw away 20 of those and keep its 12 misses
        suggested = "malignant" if i < 48 else "benign"
        final, decision = ("benign", "modified") if i < 20 else (suggested, "accepted")
        first += case(model, start + timedelta(seconds=i), "north" if i % 2 else "south", "malignant", suggested,
                      final, decision)  # fmt: skip
    for i in range(40):
        first += case(model, start + timedelta(seconds=60 + i), "north", "benign", "benign", "benign", "accepted")
    post(pipeline, first)

    async def signals() -> list:
        async with db.connect() as conn:
            return await reads.of_type(conn, ReaderFindingRaised, ReaderFindingResolved, AlertRaised, model_id=model)

    async def raised() -> dict[str, ReaderFindingRaised]:
        found: dict[str, ReaderFindingRaised] = {
            e.kind: e for e in await signals() if type(e) is ReaderFindingRaised and not e.subgroup
        }
        return found if len(found) == 2 else {}

    found = await wait_until(raised, 90, "both reader findings for everyone")
    worse, accepted = found["clinician_less_sensitive"], found["wrong_suggestions_accepted"]
    # The worker raises a finding at the first judgement where it holds, which on a loaded machine
    # may come before every case has arrived: its figures are those of the cases it had then. The
    # finding's statistic is checked against McNemar on exactly those counts; the complete figures
    # are the readers query's (test above).
    assert worse.model_sensitivity is not None and worse.clinician_sensitivity is not None
    assert worse.model_sensitivity > worse.clinician_sensitivity and worse.sensitivity_p is not None
    assert worse.sensitivity_p < 0.05
    assert accepted.wrong_accepted == 1.0 and accepted.wrong_suggestions >= 1
    if worse.cases == 100:  # everything had arrived: the figures of the whole batch
        assert (worse.model_sensitivity, worse.clinician_sensitivity) == (pytest.approx(48 / 60),
                                                                          pytest.approx(28 / 60))  # fmt: skip
        assert worse.sensitivity_p == pytest.approx(mcnemar([[28, 20], [0, 12]], exact=True).pvalue)

    def paged() -> list[dict]:
        active = httpx.get(f"{pipeline.settings.alertmanager_url}/api/v2/alerts").json()
        names = ("ClinicianLessSensitive", "WrongSuggestionsAccepted")
        return [a for a in active if a["labels"].get("model_id") == model and a["labels"]["alertname"] in names
                and a["labels"].get("subgroup") == "everyone"]  # fmt: skip

    async def in_alertmanager() -> list[dict]:
        alerts = paged()
        return alerts if {a["labels"]["alertname"] for a in alerts} >= {"ClinicianLessSensitive",
                                                                       "WrongSuggestionsAccepted"} else []  # fmt: skip

    for alert in await wait_until(in_alertmanager, 60, "both findings in Alertmanager"):
        assert alert["labels"]["owner"] == "clinical-safety" and alert["labels"]["label"] == "malignant"
        assert alert["annotations"]["runbook_url"].endswith(f"/{alert['labels']['alertname']}.md")
        assert "automation bias" in alert["annotations"]["action"] or "workflow" in alert["annotations"]["action"]

    # Then clinicians catch 200 cancers the model missed: neither finding holds over the window.
    later = [e for i in range(200) for e in case(model, start + timedelta(minutes=10, seconds=i), "north" if i % 2
             else "south", "malignant", "benign", "malignant", "overridden")]  # fmt: skip
    post(pipeline, later)

    async def resolved() -> list:
        found = await signals()
        ended = {e.raised_event_id for e in found if isinstance(e, ReaderFindingResolved)}
        standing = {e.event_id for e in found if type(e) is ReaderFindingRaised}
        closed = [e for e in found if isinstance(e, AlertRaised) and e.resolved]
        return found if standing and standing <= ended and len(closed) == len(standing) else []

    found_all = await wait_until(resolved, 90, "every reader finding resolved, with its alert")
    [back] = [e for e in found_all if isinstance(e, ReaderFindingResolved) and e.raised_event_id == worse.event_id]
    # Resolved by the first batch after which the window no longer shows it: its figures are that window's.
    assert back.clinician_sensitivity is not None and back.model_sensitivity is not None and back.sensitivity_p
    assert back.clinician_sensitivity >= back.model_sensitivity or back.sensitivity_p >= 0.05
    assert 100 < back.cases <= 300
