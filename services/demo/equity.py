"""The demo's equity finding: ED triage misses more urgent arrivals at the low-resource site. The
worker's signals as recorded, then the performance table a safety officer would open."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from services.demo.incidents import wait_for
from services.models import performance
from services.performance_view import print_performance
from services.store import reads
from vigil.events import DisparityDetected
from vigil.performance import name_of
from vigil.policy import load_policy
from vigil_hospital import VERSIONS
from vigil_runtime.settings import Settings

MODEL = "ed-triage"


async def equity_finding(settings: Settings, engine: AsyncEngine, started: datetime, console: Console) -> None:
    async def disparity() -> list[DisparityDetected]:
        async with engine.connect() as conn:
            found = await reads.of_type(
                conn, DisparityDetected, model_id=MODEL, version=VERSIONS[MODEL], recorded_since=started
            )
        # Whether the gap is significant yet depends on how many outcomes have arrived: the latest says.
        return [d for d in found if d.attributes == ["resource_setting"]][-1:]

    found = await wait_for(disparity, 90, "the worker to flag the low-resource gap")
    table = Table(title=f"Equity signal of {MODEL} raised by the worker (the latest DisparityDetected)")
    for column in ("attributes", "best", "worst (95% CI)", "gap", "Fisher p", "significant"):
        table.add_column(column)
    for d in found:
        best, worst = d.best, d.worst
        table.add_row(
            ", ".join(d.attributes),
            f"{name_of(tuple(best.subgroup.items()))} {best.value:.3f}",
            f"{name_of(tuple(worst.subgroup.items()))} {worst.value:.3f} ({worst.ci_low:.3f}–{worst.ci_high:.3f})",
            f"{d.gap:.3f} > {d.limit:g}",
            f"{d.p_value:.3g}",
            "yes" if d.significant else "not yet",
        )
    console.print(table)
    version = VERSIONS[MODEL]
    policy = load_policy(settings.policy_file)
    result = await performance(engine, policy, MODEL, version, ["site"], None, datetime.now(UTC))
    print_performance(console, result, f"{MODEL} {version}: sensitivity for urgent arrivals by site (all outcomes)")
