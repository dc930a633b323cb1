"""The monitoring plan: every alert has an owner, a cadence, an action and a runbook; the notifier
carries them to Alertmanager, which routes by owner; the policy file overrides them."""

from __future__ import annotations

import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from services.notifier.service import alertmanager_alert
from vigil.events import AlertRaised
from vigil.plan import ALERT_NAMES, DEFAULT_PLAN
from vigil.policy import Policy, PolicyError

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy/prometheus/rules.yml"
ALERTMANAGER = ROOT / "deploy/alertmanager/alertmanager.yml"


def test_every_alert_has_a_plan_entry_and_a_runbook() -> None:
    assert set(DEFAULT_PLAN) == set(ALERT_NAMES)
    for name in ALERT_NAMES:
        page = ROOT / "docs/runbooks" / f"{name}.md"
        assert page.exists(), f"no runbook for {name}"
        assert page.read_text().startswith(f"# {name}\n")
    assert {p.stem for p in (ROOT / "docs/runbooks").glob("*.md")} == set(ALERT_NAMES)


def test_every_prometheus_rule_is_in_the_plan_with_its_owner_and_runbook() -> None:
    rules = [r for group in yaml.safe_load(RULES.read_text())["groups"] for r in group["rules"]]
    for rule in rules:
        name = rule["alert"]
        assert name in ALERT_NAMES
        assert rule["labels"]["owner"] == DEFAULT_PLAN[name].owner
        assert rule["annotations"]["runbook_url"] == f"docs/runbooks/{name}.md"


def alert(name: str = "TransparencyViolation", model_id: str = "symptom-chat") -> AlertRaised:
    return AlertRaised(event_id=uuid.uuid4(), occurred_at=datetime(2026, 5, 4, tzinfo=UTC), alert_name=name,
                       severity="warning", model_id=model_id, model_version="0.9.1", summary="s",
                       labels={"kind": "disclaimer_shown"})  # fmt: skip


SENT = datetime(2026, 5, 6, 12, 0, tzinfo=UTC)


def test_the_notifier_sends_the_owner_as_a_label_and_the_action_cadence_and_runbook_as_annotations() -> None:
    policy = Policy({"models": {"symptom-chat": {"plan": {"TransparencyViolation": {"owner": "digital-front-door"}}}}})
    sent = alertmanager_alert(
        alert(), policy.for_model("symptom-chat").plan, "https://wiki.example/runbooks", SENT, timedelta(hours=24)
    )
    assert sent["labels"]["owner"] == "digital-front-door"  # overridden for this model
    assert sent["annotations"]["action"] == DEFAULT_PLAN["TransparencyViolation"].action  # the rest kept
    assert sent["annotations"]["runbook_url"] == "https://wiki.example/runbooks/TransparencyViolation.md"
    other = alertmanager_alert(
        alert(model_id="ed-triage"), policy.for_model("ed-triage").plan, "docs/runbooks", SENT, timedelta(hours=24)
    )
    assert other["labels"]["owner"] == "clinical-safety"


def test_a_firing_alert_stays_active_for_its_time_from_when_it_is_sent_and_a_resolved_one_ends() -> None:
    """An alert derived from late events (occurred days before it is sent) still pages."""
    plan = Policy({}).for_model("symptom-chat").plan
    late = alertmanager_alert(alert(), plan, "docs/runbooks", SENT, timedelta(hours=24))
    assert late["endsAt"] == (SENT + timedelta(hours=24)).isoformat()
    ended = alertmanager_alert(alert().model_copy(update={"resolved": True}), plan, "docs/runbooks", SENT,
                               timedelta(hours=24))  # fmt: skip
    assert ended["endsAt"] == datetime(2026, 5, 4, tzinfo=UTC).isoformat()


def test_a_plan_naming_an_unknown_alert_is_refused_with_the_known_ones() -> None:
    with pytest.raises(PolicyError, match=r"no alert is named 'FeatureDrfit'.*FeatureDrift"):
        Policy({"defaults": {"plan": {"FeatureDrfit": {"owner": "x"}}}}).for_model("m")


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        ({"owner": "clinical-safety", "severity": "warning"}, "clinical-safety"),
        ({"owner": "clinical-safety", "severity": "critical"}, "on-call,clinical-safety"),
        ({"owner": "ml-engineering", "severity": "warning"}, "ml-engineering"),
        ({"owner": "vigil-operators", "severity": "critical"}, "on-call,vigil-operators"),
        ({"owner": "somebody-else", "severity": "warning"}, "vigil-operators"),
    ],
)
def test_alertmanager_routes_by_owner_and_pages_on_call_for_critical_alerts(labels: dict, receivers: str) -> None:
    pairs = [f"{k}={v}" for k, v in labels.items()]
    routed = subprocess.run(["amtool", "config", "routes", "test", f"--config.file={ALERTMANAGER}", *pairs],
                            capture_output=True, text=True, check=True)  # fmt: skip
    assert routed.stdout.strip() == receivers
