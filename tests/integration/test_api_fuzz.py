"""schemathesis over the whole OpenAPI document, as every role: no operation answers a 5xx.

The path parameters point at data that exists (a registered model with outcomes, an incident, a
guideline), so the generated cases reach the queries and the incident commands, not only 404s.
The coverage phase runs as admin only (see PHASES). The run's figures are printed (`-s` shows
them) and summarised in RELIABILITY.md."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from tests.conftest import RUN, TOKENS, Pipeline
from tests.integration.helpers import hospital_events, wait_recorded

pytestmark = pytest.mark.integration
ST = Path(sys.executable).with_name("st")
EXAMPLES = {"admin": 20, "safety_officer": 5, "auditor": 5, "emitter": 5}
# The coverage phase (boundary values of every schema: some 4,300 cases whatever the examples)
# runs as admin, who may call every operation; the other roles reach the same handlers, so for
# them the examples and the fuzzing phase check what differs, their permissions (146 cases each
# instead of some 4,400).
PHASES = {"admin": "examples,coverage,fuzzing"}


async def seeded(pipeline: Pipeline, db) -> dict[str, str]:
    """A model with inferences and outcomes, a guideline and an incident, created over the API."""
    model_id = f"fuzz-{RUN}"
    made = hospital_events(60, seed=1005)
    for event in made:
        if "model_id" in event:
            event["model_id"] = model_id
    guideline = {
        "event_type": "GuidelineChanged", "event_id": str(uuid.uuid4()), "occurred_at": made[0]["occurred_at"],
        "guideline_id": f"fuzz-guideline-{RUN}", "title": "Fuzzed protocol", "effective_at": made[0]["occurred_at"],
        "affected_use_cases": ["mammography_screening"],
    }  # fmt: skip
    emitter = {"Authorization": f"Bearer {TOKENS['emitter']}"}
    answer = httpx.post(f"{pipeline.api_url}/v1/events", json=[*made, guideline], headers=emitter, timeout=30)
    assert answer.status_code == 202, answer.text
    # Accepted is not recorded: an incident names a model the store must know already.
    await wait_recorded(db, [e["event_id"] for e in [*made, guideline]], 60, "the fuzzing seed data")
    officer = {"Authorization": f"Bearer {TOKENS['safety_officer']}"}
    incident = {
        "model_id": model_id, "model_version": "2.3.0", "harm": "temporary", "description": "fuzzing seed",
        "country": "DE", "aware_at": made[0]["occurred_at"], "reporter_role": "radiologist",
    }  # fmt: skip
    answer = httpx.post(f"{pipeline.api_url}/v1/incidents", json=incident, headers=officer, timeout=30)
    assert answer.status_code in (200, 201, 202), answer.text
    version = next(e["model_version"] for e in made if e["event_type"] == "ModelVersionReleased")
    return {
        "model_id": model_id,
        "version": version,
        "guideline_id": guideline["guideline_id"],
        "incident_id": answer.json()["incident_id"],
    }


async def test_no_operation_answers_a_server_error_for_any_role(pipeline: Pipeline, db, tmp_path: Path) -> None:
    data = await seeded(pipeline, db)
    config = tmp_path / "schemathesis.toml"
    names = ("model_id", "version", "guideline_id", "incident_id")
    config.write_text("[parameters]\n" + "".join(f'"path.{name}" = "{data[name]}"\n' for name in names))
    figures = {}
    for role, examples in EXAMPLES.items():
        report = tmp_path / f"{role}.json"
        # One worker: with two threads, hypothesis (inside schemathesis) parses lambdas' source in
        # both at once, and CPython 3.11's ast is not safe for that ("AST constructor recursion
        # depth mismatch", cpython#106905): it broke schemathesis itself twice in a row once.
        argv: list[str | Path] = [
            ST, "--config-file", str(config), "run", f"{pipeline.api_url}/openapi.json",
            "-H", f"Authorization: Bearer {TOKENS[role]}", "--checks", "not_a_server_error",
            "--max-examples", str(examples), "--seed", "2026", "--workers", "1", "--phases",
            PHASES.get(role, "examples,fuzzing"), "--report", "json", "--report-json-path", str(report), "--no-color",
        ]  # fmt: skip
        result = subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd=tmp_path)
        out = result.stdout + result.stderr
        assert result.returncode == 0, out[-6000:]
        assert "Server error" not in out, out[-6000:]
        summary = out[out.rfind("API Operations:") :]
        figures[role] = summary.split("Test cases:")[1].splitlines()[1].strip() if "Test cases:" in summary else "?"
        assert "Tested: 13" in summary or "Tested:" in summary, summary
    print("\nschemathesis:", json.dumps(figures, indent=1))
