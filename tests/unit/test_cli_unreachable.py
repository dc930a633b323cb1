"""A query with the stack down says what it could not reach, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys


def test_a_query_without_postgresql_names_what_is_unreachable() -> None:
    env = {**os.environ, "VIGIL_DATABASE_URL": "postgresql+asyncpg://vigil:vigil@127.0.0.1:9/vigil", "COLUMNS": "200"}
    for command in (["oversight", "show", "--model", "ed-triage"], ["guideline", "audit", "triage-2026"]):
        done = subprocess.run([sys.executable, "-m", "services.cli", *command], env=env, capture_output=True, text=True)
        assert done.returncode == 1
        assert "cannot reach PostgreSQL at 127.0.0.1:9/vigil; is the stack up?" in done.stderr + done.stdout
        assert "Traceback" not in done.stderr + done.stdout


def test_the_drift_method_choices_are_the_cores() -> None:
    from typing import get_args

    from services.cli.common import MethodChoice
    from vigil.drift import Method

    assert [m.value for m in MethodChoice] == list(get_args(Method))


def test_status_prints_one_row_per_server_and_process(tmp_path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "VIGIL_HOME": str(tmp_path), "VIGIL_STACK_HOME": str(tmp_path / "stack"), "COLUMNS": "120"}
    done = subprocess.run([sys.executable, "-m", "services.cli", "status"], capture_output=True, text=True, env=env,
                          check=True)  # fmt: skip
    out = done.stdout + done.stderr  # the console writes to stderr
    rows = [line for line in out.splitlines() if line.startswith("│")]
    names = [row.split("│")[1].strip() for row in rows]
    assert names == [
        "kafka",
        "postgres",
        "prometheus",
        "alertmanager",
        "worker",
        "recorder",
        "notifier",
        "estimator",
        "api",
    ], out
    assert all(row.split("│")[2].strip() in ("up", "down", "online", "absent") for row in rows), out


def test_a_backwards_export_period_is_refused_before_any_server_is_asked(tmp_path) -> None:
    import os
    import subprocess
    import sys

    args = ["export", "period", "--since", "2026-12-01T08:00", "--until", "2026-11-01", "--out", str(tmp_path)]
    done = subprocess.run([sys.executable, "-m", "services.cli", *args], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200"})  # fmt: skip
    assert done.returncode == 2 and "ends after it starts" in done.stdout + done.stderr
