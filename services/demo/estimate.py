"""The demo's estimated performance: mammo-screen's screens whose pathology has not come back,
estimated from their calibrated scores (CBPE), and how far the estimate was off where it has."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from services.models import performance_estimate
from vigil.performance import name_of
from vigil.policy import Policy

MODEL = "mammo-screen"


async def estimate_of_the_demo(engine: AsyncEngine, policy: Policy, console: Console) -> None:
    found = await performance_estimate(engine, policy, MODEL, None, None, datetime.now(UTC), depth=1)  # each on its own
    table = Table(title=f"ESTIMATED performance of {MODEL} (CBPE): screens still waiting for their pathology")
    for column in ("version", "subgroup", "pending", "sensitivity est. (95%)", "specificity est.",
                   "later outcomes", "realised sensitivity", "estimate off by"):  # fmt: skip
        table.add_column(column)
    for each in found.versions:
        if each.not_estimable or each.overall is None:
            table.add_row(each.model_version, name_of(tuple(each.subgroup.items())), "—", each.not_estimable or "—")
            continue
        sens, spec = each.overall.metrics["sensitivity"], each.overall.metrics["specificity"]
        later = sum(t.estimate.n for t in each.backtest)
        real = [t.realised["sensitivity"] for t in each.backtest if t.realised["sensitivity"] is not None]
        errors = [(t.estimate.n, e) for t in each.backtest if (e := t.error["sensitivity"]) is not None]
        off = sum(n * e for n, e in errors) / sum(n for n, _ in errors) if errors else None
        table.add_row(
            each.model_version, name_of(tuple(each.subgroup.items())), str(each.overall.n),
            "—" if sens is None else f"{sens.value:.3f} ({sens.low:.3f}–{sens.high:.3f})",
            "—" if spec is None else f"{spec.value:.3f}", str(later),
            ", ".join(f"{r:.3f}" for r in real) or "—", "—" if off is None else f"{off:+.3f}",
        )  # fmt: skip
    console.print(table)
    console.print(
        "Calibrated on each version's first outcomes; an estimate, never a realised figure: the outcomes replace it "
        "as they arrive (`vigil performance estimate --model mammo-screen`)."
    )
