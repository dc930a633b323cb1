"""Readable PDF for a report: its sections as tables, the incident's timeline, and a timeline plot."""

from __future__ import annotations

import io
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import cm
from reportlab.platypus import Image, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from vigil.reports.builders import Fda3500aReport, MirReport

STYLES = getSampleStyleSheet()
TABLE = TableStyle(
    [
        ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("BACKGROUND", (0, 0), (0, -1), colors.whitesmoke),
        ("FONTSIZE", (0, 0), (-1, -1), 8),
    ]
)


def cell(value: Any) -> Paragraph:
    text = ", ".join(map(str, value)) if isinstance(value, list) else ("—" if value is None else str(value))
    return Paragraph(text.replace("&", "&amp;").replace("<", "&lt;"), STYLES["BodyText"])


def _section(title: str, fields: dict[str, Any]) -> list[Any]:
    rows = [[cell(k.replace("_", " ")), cell(v)] for k, v in fields.items()]
    table = Table(rows, colWidths=[5 * cm, 12 * cm])
    table.setStyle(TABLE)
    return [Paragraph(title, STYLES["Heading3"]), table]


def timeline_plot(report: MirReport | Fda3500aReport) -> bytes:
    """Events of the incident against its reporting deadlines."""
    fig, ax = plt.subplots(figsize=(7.5, 2.6), dpi=150)
    times = [h.occurred_at for h in report.timeline]
    ax.scatter(mdates.date2num(times), [1] * len(times), color="#1f4e79", zorder=3)
    for i, h in enumerate(report.timeline):
        ax.annotate(h.event_type, (h.occurred_at, 1), xytext=(0, 8 + 10 * (i % 3)), textcoords="offset points",
                    fontsize=6, rotation=20, ha="left")  # fmt: skip
    for clock in report.clocks:
        color = "#2e7d32" if clock.satisfied else "#c62828"
        ax.axvline(float(mdates.date2num(clock.due_at)), color=color, linestyle="--", linewidth=1)
        ax.annotate(f"{clock.regime} due", (clock.due_at, 0.6), fontsize=6, color=color, rotation=90, ha="right")
    ax.set_yticks([])
    ax.set_ylim(0.4, 1.8)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%d %b"))
    ax.set_title("Incident timeline and reporting deadlines (dashed: red open, green met)", fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def render_pdf(report: MirReport | Fda3500aReport, incident_id: str) -> bytes:
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(buffer, pagesize=A4, title=f"{report.form} — incident {incident_id}")
    story: list[Any] = [
        Paragraph(report.form, STYLES["Title"]),
        Paragraph(f"Incident {incident_id}", STYLES["Heading2"]),
        Spacer(1, 0.3 * cm),
    ]
    data = report.model_dump(mode="json", exclude={"form", "clocks", "timeline"})
    for name, fields in data.items():
        story += _section(name.replace("_", " ").capitalize(), fields)
    clocks = [["regime", "category", "legal basis", "due", "counted by", "other rule's last day", "status"]] + [
        [
            c.regime,
            c.category,
            c.citation,
            c.due_at.isoformat(),
            c.counting.replace("_", " "),
            str(c.other_last_day or "—"),
            "met" if c.satisfied else "open",
        ]
        for c in report.clocks
    ]
    story += [Paragraph("Reporting clocks", STYLES["Heading3"]), _table(clocks)]
    story += [
        Paragraph("Timeline", STYLES["Heading3"]),
        Image(io.BytesIO(timeline_plot(report)), width=17 * cm, height=5.9 * cm),
        _table(
            [["when", "event", "by", "what"]]
            + [[h.occurred_at.isoformat(), h.event_type, h.role or "", h.summary] for h in report.timeline]
        ),
    ]
    doc.build(story)
    return buffer.getvalue()


def _table(rows: list[list[Any]]) -> Table:
    table = Table([[cell(v) for v in row] for row in rows], repeatRows=1)
    table.setStyle(TABLE)
    return table
