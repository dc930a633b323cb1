"""The Prometheus alert rules load, and promtool's own rule tests (tests/prometheus/rules_test.yml)
show that a standing oversight violation or an overdue report keeps paging."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_alert_rules_load_and_fire_as_their_tests_say() -> None:
    checked = subprocess.run(["promtool", "check", "rules", "deploy/prometheus/rules.yml"], cwd=ROOT,
                             capture_output=True, text=True)  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run(["promtool", "test", "rules", "rules_test.yml"], cwd=ROOT / "tests" / "prometheus",
                            capture_output=True, text=True)  # fmt: skip
    assert tested.returncode == 0, tested.stdout + tested.stderr
