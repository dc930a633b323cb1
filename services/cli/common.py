"""What the command groups share: the options with fixed values, running a query on the event
store or a use case with its producer, reading a table file, and the one table from domain errors
to exit codes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Any, NoReturn, get_args

import typer
from pydantic import BaseModel

from services.progress import console
from vigil.events import Harm, ReportType, RiskClass
from vigil.regulatory import REGIMES, RULES
from vigil_runtime.database import engine_for
from vigil_runtime.settings import get_settings


def choices(name: str, values: Iterable[str]) -> Any:
    """An Enum of fixed values, so that typer lists them in --help and names them in its error."""
    return Enum(name, {v: v for v in dict.fromkeys(values)}, type=str)


ISO = [
    "%Y-%m-%d",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%dT%H:%M%z",
    "%Y-%m-%dT%H:%M:%S%z",
    "%Y-%m-%dT%H:%M:%S.%f%z",
]  # the last as Python's isoformat() writes an aware time

# Options with a fixed set of values list them in --help.
RegimeChoice = choices("RegimeChoice", REGIMES)
CategoryChoice = choices("CategoryChoice", (c for _, c in RULES))
HarmChoice = choices("HarmChoice", get_args(Harm))
ReportTypeChoice = choices("ReportTypeChoice", (*get_args(ReportType), "final_non_reportable"))
RiskClassChoice = choices("RiskClassChoice", get_args(RiskClass))
# vigil.drift.Method's values, written out: importing vigil.drift (numpy, scipy) would slow every command.
MethodChoice = choices("MethodChoice", ("psi", "ks", "wasserstein", "jensenshannon", "chisquare"))
FormatChoice = choices("FormatChoice", ("mir", "fda-3500a"))
CardFormat = choices("CardFormat", ("md", "html", "json", "pdf"))


def exit_code(error: BaseException) -> int | None:
    """What `vigil` exits with for a domain error, as services/api/errors.py answers one over HTTP:
    1 when what was asked for is not there (404 there) or the chain is broken, 2 when the input is
    wrong or not allowed (422, 409); None for anything else. Imported only when an error comes, so
    that no command pays for the modules the table names."""
    from services.export import ChainBroken
    from services.guidelines import UnknownGuideline
    from services.incidents import UnknownIncident
    from vigil.incidents import DomainError
    from vigil.registry import UnknownModel

    codes: dict[type[BaseException], int] = {
        UnknownIncident: 1, UnknownModel: 1, UnknownGuideline: 1, ChainBroken: 1, DomainError: 2, ValueError: 2,
    }  # fmt: skip
    return next((code for cls, code in codes.items() if isinstance(error, cls)), None)


@contextmanager
def domain_errors() -> Iterator[None]:
    """A domain error inside says what was wrong and exits with its code, instead of a traceback."""
    try:
        yield
    except Exception as error:
        code = exit_code(error)
        if code is None:
            raise
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(code) from None


def with_service(service_class, run):
    """Runs `run(service)` with a service (IncidentService, ModelService) on its own producer and engine."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaConnectionError

    async def go():
        settings = get_settings()
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
        try:
            await producer.start()
        except KafkaConnectionError:
            await producer.stop()
            unreachable("Kafka", settings.kafka_bootstrap)
        engine = engine_for(settings)
        try:
            return await run(service_class(settings, engine, producer))
        finally:
            await producer.stop()
            await engine.dispose()

    return store_reachable(lambda: asyncio.run(go()))


def with_engine(run):
    """Runs `run(engine)` for a query that only reads the event store: no Kafka needed."""

    async def go():
        engine = engine_for(get_settings())
        try:
            return await run(engine)
        finally:
            await engine.dispose()

    return store_reachable(lambda: asyncio.run(go()))


def store_reachable(call):
    from sqlalchemy.exc import ProgrammingError

    try:
        return call()
    except ConnectionRefusedError:
        unreachable("PostgreSQL", get_settings().database_url.rsplit("@", 1)[-1])
    except ProgrammingError as error:
        if getattr(error.orig, "pgcode", None) != "42P01":  # undefined_table: not migrated
            raise
        where = get_settings().database_url.rsplit("@", 1)[-1]
        console.print(f"[red]the event store at {where} has no tables yet; create them with `vigil init`[/red]")
        raise typer.Exit(1) from None


def unreachable(what: str, where: str) -> NoReturn:
    console.print(f"[red]cannot reach {what} at {where}; is the stack up? (`vigil up`, `vigil status`)[/red]")
    raise typer.Exit(1)


def incident_service(run):
    from services.incidents import IncidentService

    return with_service(IncidentService, run)


def print_json(result: BaseModel) -> None:
    """What `--json` prints: the document the API answers for the same query."""
    print(result.model_dump_json(indent=2))


def read_table(path: Path):
    import pandas as pd

    if not path.exists():
        console.print(f"[red]{path}: no such file[/red]")
        raise typer.Exit(2)
    return pd.read_parquet(path) if path.suffix in (".parquet", ".pq") else pd.read_csv(path)


def ask_model(ask):
    """`ask(engine, policy, now)` of a query over the event store; an unknown model exits 1 with its message."""
    from datetime import UTC, datetime

    from vigil.policy import load_policy

    policy = load_policy(get_settings().policy_file)
    with domain_errors():
        return with_engine(lambda engine: ask(engine, policy, datetime.now(UTC)))
