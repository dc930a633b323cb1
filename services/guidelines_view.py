"""The guideline audit as people read it, and the care team's list of cases as CSV."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from vigil.guidelines import Case, GuidelineAudit


def print_audit(out: Console, result: GuidelineAudit) -> None:
    table = Table(
        title=f"Guideline {result.guideline_id} ({result.title}), effective {result.effective_at[:16]}: "
        f"recommendations to re-review"
    )
    for column in ("model", "risk", "revalidated versions", f"open, last {result.lookback_days} days before",
                   "made since, unrevalidated", "labels", "deployments"):  # fmt: skip
        table.add_column(column)
    for row in result.models:
        table.add_row(
            row.model_id, row.risk_class, ", ".join(row.revalidated_versions) or "none",
            str(row.open_under_old_guideline), str(row.made_since_by_unrevalidated_version), _counts(row.labels),
            _counts(row.deployments),
        )  # fmt: skip
    out.print(table)
    for line in result.verdict:
        out.print(escape(line), style="green" if line.startswith("no recommendation") else "red")


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {n}" for k, n in counts.items()) or "—"


def write_cases(path: Path, cases: list[Case]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        f.write(cases_csv(cases))


def cases_csv(cases: list[Case]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, list(Case.model_fields))
    writer.writeheader()
    writer.writerows(case.model_dump() for case in cases)
    return out.getvalue()
