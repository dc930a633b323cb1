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
    return create_async_engine(settings.database_url, pool_size=5, pool_pre_ping=True)


def migrate(settings: Settings, revision: str = "head") -> None:
    config = Config()  # built here, not read from alembic.ini: no file outside the package is needed
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["url"] = settings.database_url
    command.upgrade(config, revision)
