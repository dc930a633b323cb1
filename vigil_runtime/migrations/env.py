"""Alembic runs migrations on the same async engine (asyncpg) that the services use."""

import asyncio

from alembic import context
from sqlalchemy.ext.asyncio import create_async_engine

from vigil_runtime.settings import get_settings


def run(connection) -> None:
    context.configure(connection=connection, target_metadata=None)
    with context.begin_transaction():
        context.run_migrations()


async def main() -> None:
    url = context.config.attributes.get("url") or get_settings().database_url
    engine = create_async_engine(url)
    async with engine.connect() as connection:
        await connection.run_sync(run)
        await connection.commit()
    await engine.dispose()


asyncio.run(main())
