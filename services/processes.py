"""Starting and stopping Vigil's own processes (worker, recorder, api...) in the background, and
running one of the smaller ones in the foreground until it is asked to stop."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

VIGIL = [sys.executable, "-m", "services.cli"]


@dataclass
class Background:
    """One background process with a pid file and a log file under `home`."""

    name: str
    argv: list[str]
    home: Path
    env: dict[str, str] | None = None

    @property
    def pidfile(self) -> Path:
        return self.home / "run" / f"{self.name}.pid"

    @property
    def logfile(self) -> Path:
        return self.home / "log" / f"{self.name}.log"

    def pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text())
            os.kill(pid, 0)
            return pid
        except (FileNotFoundError, ValueError, ProcessLookupError):
            return None

    def start(self) -> int:
        if pid := self.pid():
            return pid
        self.pidfile.parent.mkdir(parents=True, exist_ok=True)
        self.logfile.parent.mkdir(parents=True, exist_ok=True)
        with open(self.logfile, "ab") as log:
            process = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(self.env or {})},
                start_new_session=True,
                cwd=Path(__file__).resolve().parent.parent,
            )
        self.pidfile.write_text(str(process.pid))
        return process.pid

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        pid = self.pid()
        if pid is None:
            self.pidfile.unlink(missing_ok=True)
            return
        os.killpg(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if os.waitpid(pid, os.WNOHANG) != (0, 0):
                    break
            except ChildProcessError:  # not our child: poll for it
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
            time.sleep(0.1)
        else:
            os.killpg(pid, signal.SIGKILL)
        self.pidfile.unlink(missing_ok=True)

    def kill(self) -> None:
        """SIGKILL, as a crash would: no chance to clean up."""
        self.stop(signal.SIGKILL, timeout=5)


def services(home: Path, env: dict[str, str] | None = None) -> dict[str, Background]:
    return {
        name: Background(name, [*VIGIL, name], home, env)
        for name in ("worker", "recorder", "notifier", "estimator", "api")
    }


class Service(Protocol):
    stopping: asyncio.Event

    async def run(self) -> None: ...


async def until_stopped(service: Service) -> None:
    """Runs the service until SIGINT or SIGTERM asks it to stop: it finishes the batch in hand first."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, service.stopping.set)
    await service.run()
