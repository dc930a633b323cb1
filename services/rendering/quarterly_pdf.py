"""The quarterly export's readable summary: what was recorded, what Vigil raised, the incidents."""

from __future__ import annotations

import io
from collections import Counter
from datetime import UTC

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import cm
from reportlab.platypus import Image, Paragraph, SimpleDocTemplate, Spacer, Table

from services.rendering.incident_pdf import STYLES, TABLE, cell
from vigil.export import Period
from vigil.footprint import Footprint


def signals_chart(signals: list[dict[str, str]]) -> bytes:
    """Signals per model, stacked by kind."""
    models = sorted({s["model_id"] or "(none)" for s in signals}) or ["(none)"]
    kinds = sorted({s["event_type"] for s in signals})
    counts = Counter((s["model_id"] or "(none)", s["event_type"]) for s in signals)
    fig, ax = plt.subplots(figsize=(7.5, 3.0), dpi=150)
    bottom = [0] * len(models)
    for kind in kinds:
        heights = [counts[(m, kind)] for m in models]
        ax.bar(models, heights, bottom=bottom, label=kind)
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    ax.set_ylabel("signals")
    ax.set_title("Signals raised in the period, per model", fontsize=8)
    if kinds:
        ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1, 1))
    ax.tick_params(labelsize=7)
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png")
    plt.close(fig)
    return out.getvalue()


def _table(header: list[str], rows: list[list[object]], widths: list[float]) -> Table:
    table = Table([[cell(h) for h in header], *[[cell(v) for v in row] for row in rows]], colWidths=widths)
    table.setStyle(TABLE)
    return table


def _share(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _oversight_row(model_id: str, report: dict) -> list[object]:
    everyone = report["rows"][0]
    return [
        model_id, everyone["outputs"], _share(everyone["coverage"]),
        f"{everyone['late']} / {everyone['unreviewed']} / {everyone['pending']}", everyone["acted_before_review"],
        everyone["autonomous"], _share(everyone["override_share"]),
        "within" if report["verdict"] == ["within policy"] else "violated",
    ]  # fmt: skip


def _transparency_row(model_id: str, report: dict) -> list[object]:
    everyone = report["transparency"][0]
    disclaimer = (
        f"{_share(everyone['disclaimer_shown'])} of {everyone['patient_facing']}" if everyone["patient_facing"] else "—"
    )
    return [model_id, everyone["outputs"], disclaimer, _share(everyone["explanation_present"]),
            _share(everyone["consent_recorded"]), _share(everyone["score_present"])]  # fmt: skip


def render_quarterly_pdf(
    period: Period,
    generated_at: str,
    events_by_model: dict[str, Counter],
    signals: list[dict[str, str]],
    incidents: list[dict[str, object]],
    chain: dict[str, object],
    oversight: dict[str, dict],
    footprints: dict[str, Footprint],
) -> bytes:
    out = io.BytesIO()
    title = (
        f"Quarterly surveillance report {period.name}"
        if period.quarterly
        else f"Surveillance report {period.start.astimezone(UTC):%Y-%m-%d %H:%M} to "
        f"{period.end.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    )
    doc = SimpleDocTemplate(out, pagesize=A4, title=f"Vigil {title[0].lower()}{title[1:]}")
    story: list = [
        Paragraph(title, STYLES["Title"]),
        Paragraph(
            f"Generated {generated_at} from Vigil's append-only event store. Hash chain verified over "
            f"{chain['verified']} events; head seq {chain['head_seq']}, hash {chain['head_hash']}.",
            STYLES["BodyText"],
        ),
        Spacer(1, 0.3 * cm),
        Paragraph("Events recorded in the period, per model", STYLES["Heading3"]),
    ]
    # A row per model and event type: a column per model would not fit a page beyond a few models.
    rows = [[m, t, n] for m in sorted(events_by_model) for t, n in sorted(events_by_model[m].items())]
    story.append(_table(["model", "event type", "events"], rows, [7 * cm, 7 * cm, 3 * cm]))
    story += [Paragraph("Signals", STYLES["Heading3"]), Image(io.BytesIO(signals_chart(signals)), 17 * cm, 6.8 * cm)]
    story.append(
        _table(
            ["when", "signal", "model", "detail"],
            [
                [s["occurred_at"][:19], s["event_type"], f"{s['model_id']} {s['model_version']}", s["detail"]]
                for s in signals
            ],
            [3 * cm, 3.5 * cm, 3 * cm, 7.5 * cm],
        )
    )
    story += [Paragraph("Human oversight of the period's outputs, per model", STYLES["Heading3"])]
    header = ["model", "outputs", "reviewed in time", "late / never / pending", "acted before review", "autonomous",
              "overridden", "policy"]  # fmt: skip
    rows = [_oversight_row(model_id, report) for model_id, report in sorted(oversight.items()) if "rows" in report]
    story.append(_table(header, rows, [2.8 * cm, 1.5 * cm, 2.2 * cm, 2.4 * cm, 2 * cm, 2.1 * cm, 2.1 * cm, 1.9 * cm]))
    story += [Paragraph("Transparency of the period's outputs, per model", STYLES["Heading3"])]
    header = ["model", "outputs", "disclaimer shown (patient-facing)", "explanation", "consent", "score"]
    rows = [
        _transparency_row(model_id, report)
        for model_id, report in sorted(oversight.items())
        if report.get("transparency")
    ]
    story.append(_table(header, rows, [3.2 * cm, 1.8 * cm, 3.6 * cm, 2.8 * cm, 2.8 * cm, 2.8 * cm]))
    story += [Paragraph("Energy and carbon footprint of the period's inferences", STYLES["Heading3"])]
    rows = [
        [model_id, f.inferences, "—" if f.energy_reported_share is None else f"{f.energy_reported_share:.0%}",
         f"{f.energy_kwh:.3f}", f"{f.grid_g_co2e_per_kwh:g}", f"{f.co2e_kg:.3f}", f.tokens_in, f.tokens_out]
        for model_id, f in sorted(footprints.items())
    ]  # fmt: skip
    header = ["model", "inferences", "energy reported", "kWh", "g CO2e / kWh", "kg CO2e", "tokens in", "tokens out"]
    story.append(_table(header, rows, [2.8 * cm, 1.9 * cm, 2 * cm, 1.8 * cm, 2 * cm, 1.8 * cm, 2.3 * cm, 2.4 * cm]))
    story += [Paragraph("Incidents", STYLES["Heading3"])]
    story.append(
        _table(
            ["incident", "model", "status", "harm", "reportable", "aware", "next due", "overdue"],
            [
                [
                    str(i["incident_id"])[:8],
                    i["model_id"],
                    i["status"],
                    i["harm"],
                    i["reportable"],
                    str(i["aware_at"])[:16],
                    str(i["next_due_at"] or "")[:16],
                    i["overdue"],
                ]
                for i in incidents
            ],
            [1.8 * cm, 2.5 * cm, 2 * cm, 2.5 * cm, 1.7 * cm, 2.6 * cm, 2.6 * cm, 1.3 * cm],
        )
    )
    doc.build(story)
    return out.getvalue()
