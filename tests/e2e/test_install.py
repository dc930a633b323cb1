"""A plain (non-editable) install migrates from any directory: the wheel carries its migrations."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT, Settings

pytestmark = pytest.mark.integration


def test_a_wheel_installed_in_a_fresh_virtualenv_runs_vigil_init_elsewhere(settings: Settings, tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(ROOT)],
        check=True,
        cwd=tmp_path,
    )
    [wheel] = wheels.glob("vigil-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "vigil_runtime/migrations/env.py" in names and any(
        n.startswith("vigil_runtime/migrations/versions/0001") for n in names
    )

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    # The dependencies come from the test environment's site-packages (a path, not its .pth files,
    # so the editable checkout is not on it); Vigil itself only from the wheel.
    site = subprocess.run(
        [venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    Path(site, "deps-from-test-env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([venv / "bin" / "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True)

    elsewhere = tmp_path / "somewhere-else"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": ""}
    where = subprocess.run(
        [venv / "bin" / "python", "-c", "import services; print(services.__file__)"],
        cwd=elsewhere, env=env, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert str(venv) in where and str(ROOT) not in where, where
    result = subprocess.run(
        [venv / "bin" / "vigil", "init"], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
