"""Shared fixtures. Integration and e2e tests run on the real local stack (deploy/local/stack.sh).

Each test session gets its own topic prefix, Faust consumer group and a freshly migrated
`vigil_test` database, so a session never sees another's events, and a running demo on the
default ports is left alone.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

RUN = uuid.uuid4().hex[:8]
ROOT = Path(__file__).resolve().parent.parent
TOKENS = {"emitter": "test-emitter", "safety_officer": "test-safety", "auditor": "test-auditor", "admin": "test-admin"}
PEOPLE = {"safety_officer": "dr-meyer", "auditor": "audit-kim"}
TEST_ENV = {
    "VIGIL_TOPIC_PREFIX": f"t{RUN}.",
    "VIGIL_DATABASE_URL": "postgresql+asyncpg://vigil:vigil@127.0.0.1:5432/vigil_test",
    "VIGIL_WORKER_ID": f"vigil-test-{RUN}",
    "VIGIL_API_PORT": "18000",
    "VIGIL_WORKER_METRICS_PORT": "19101",
    "VIGIL_RECORDER_METRICS_PORT": "19102",
    "VIGIL_ESTIMATOR_METRICS_PORT": "19104",
    "VIGIL_ESTIMATE_INTERVAL": "15",
    "VIGIL_API_TOKENS": json.dumps(
        {token: f"{role}:{PEOPLE[role]}" if role in PEOPLE else role for role, token in TOKENS.items()}
    ),
    "VIGIL_CLOCK_INTERVAL": "1",
    "VIGIL_REGISTRY_GRACE": "2",
    "VIGIL_WORKER_STALL_SECONDS": "60",  # a worker that stops making progress is started again within ~70 s
    "VIGIL_WORKER_STALL_CHECK": "5",
    "VIGIL_WORKER_SESSION_TIMEOUT": "10",  # a killed worker's partitions are handed on within seconds
    "VIGIL_POLICY_FILE": str(ROOT / "tests" / "policy.yml"),
    # Alerts live 40 s in Alertmanager unless re-sent: a test can watch one outlive that time.
    "VIGIL_ALERT_ACTIVE_FOR": "PT40S",
    "VIGIL_LOG_FORMAT": "json",
}
os.environ.update(TEST_ENV)

from services.processes import Background, services  # noqa: E402
from vigil_runtime.settings import Settings  # noqa: E402


def stack(action: str, *parts: str) -> None:
    env = {**os.environ, "VIGIL_PG_EXTRA_DBS": "vigil_test vigil_migrations"}
    subprocess.run(["bash", str(ROOT / "deploy/local/stack.sh"), action, *parts], check=True, env=env)


@pytest.fixture(scope="session")
def settings() -> Iterator[Settings]:
    """The stack is up, the test topics exist and the test database is empty and migrated."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from vigil_runtime.database import migrate
    from vigil_runtime.topics import delete_topics, ensure_topics

    stack("up", "kafka", "postgres", "alertmanager")
    s = Settings()

    async def reset() -> None:
        engine = create_async_engine(s.database_url)
        async with engine.begin() as conn:
            await conn.execute(text("DROP SCHEMA public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
        await engine.dispose()
        await ensure_topics(s)

    asyncio.run(reset())
    migrate(s)
    yield s
    # Each session's topics go with it: a broker with a small heap runs out of it after a few
    # hundred sessions' worth of partitions.
    asyncio.run(delete_topics(s, (s.topic_prefix, s.worker_id)))


class Pipeline:
    """Vigil's own processes (worker, recorder, api) for a test, with crash and restart."""

    def __init__(self, settings: Settings, home: Path) -> None:
        self.settings = settings
        self.processes: dict[str, Background] = services(home)
        self.api_url = f"http://127.0.0.1:{settings.api_port}"

    def start(self, *names: str) -> None:
        for name in names or self.processes:
            self.processes[name].start()

    def kill(self, *names: str) -> None:
        for name in names:
            self.processes[name].kill()

    def stop(self) -> None:
        for process in self.processes.values():
            process.stop()

    def logs(self) -> str:
        return "\n".join(
            f"== {n}\n{p.logfile.read_text()[-3000:]}" for n, p in self.processes.items() if p.logfile.exists()
        )

    def wait_for_api(self, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.api_url + "/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        raise AssertionError("API did not come up\n" + self.logs())


@pytest.fixture(scope="session")
def pipeline(settings: Settings) -> Iterator[Pipeline]:
    # A fixed place for pid files, so that processes orphaned by an interrupted session are found.
    p = Pipeline(settings, settings.home / "test-processes")
    p.stop()
    for process in p.processes.values():  # each session's logs, not every session's since the first
        process.logfile.unlink(missing_ok=True)
    p.start()
    p.wait_for_api()
    yield p
    p.stop()


@pytest.fixture(scope="session")
async def db(settings: Settings) -> AsyncIterator[object]:
    from vigil_runtime.database import engine_for

    engine = engine_for(settings)
    yield engine
    await engine.dispose()
