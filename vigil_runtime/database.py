"""Engine and migrations for the event store."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from vigil_runtime.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
# Inside the package, so that an installed Vigil (a wheel, the Docker image) migrates from anywhere.
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def engine_for(settings: Settings) -> AsyncEngine:
    # asyncpg prepares every statement, and after five runs PostgreSQL may plan a prepared statement
    # once for any parameters. Vigil's reads filter one model's events out of every model's, where
    # that generic plan can cost far more than a plan for the model at hand: a quarterly export of
    # the test database's 4 model cards took 33 s with it, 7.5 s without, and a card took 29 s where
    # the same card alone took 1 s. Each query is planned for its own parameters.
    return create_async_engine(
        settings.database_url, pool_size=5, pool_pre_ping=True,
        connect_args={"server_settings": {"plan_cache_mode": "force_custom_plan"}},
    )  # fmt: skip


def _alembic(settings: Settings) -> Config:
    config = Config()  # built here, not read from alembic.ini: no file outside the package is needed
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["url"] = settings.database_url
    return config


def migrate(settings: Settings, revision: str = "head") -> None:
    command.upgrade(_alembic(settings), revision)


def migrate_down(settings: Settings, revision: str) -> None:
    """Back to `revision`, through each later migration's downgrade."""
    command.downgrade(_alembic(settings), revision)
