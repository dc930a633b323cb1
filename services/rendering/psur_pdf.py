"""The PSUR as a PDF: its sections in MDCG 2022-21's order, as tables a reviewer reads."""

from __future__ import annotations

import io
from typing import Any

from reportlab.lib.pagesizes import A4
from reportlab.lib.units import cm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table

from services.rendering.incident_pdf import STYLES, TABLE, cell
from vigil.psur import Count, Psur


def _grid(header: list[str], rows: list[list[Any]]) -> list[Any]:
    width = 17 * cm / len(header)
    table = Table([[cell(h) for h in header], *[[cell(v) for v in row] for row in rows]],
                  colWidths=[width] * len(header), repeatRows=1)  # fmt: skip
    table.setStyle(TABLE)
    return [table, Spacer(1, 6)]


def _rate(c: Count) -> str:
    return f"{c.count}" + (f" ({c.per_1000_inferences:.3f} per 1,000)" if c.per_1000_inferences is not None else "")


def render_psur_pdf(report: Psur) -> bytes:
    out = io.BytesIO()
    doc = SimpleDocTemplate(out, pagesize=A4, leftMargin=2 * cm, rightMargin=2 * cm, title="PSUR")
    h2, body = STYLES["Heading2"], STYLES["BodyText"]
    p = report.period
    story: list[Any] = [
        Paragraph(f"Periodic safety update report: {report.device['name']} ({report.model_id})", STYLES["Title"]),
        Paragraph(f"{report.form}. Period {p['name']}: {p['from']} to {p['to']} (exclusive), every "
                  f"{report.interval_years} year(s). Built {report.generated_at} from the event store's chain "
                  f"head {report.chain_head['head_seq']} ({str(report.chain_head['head_hash'])[:16]}…).", body),
        Paragraph("1. Executive summary", h2),
        *[Paragraph(line, body) for line in report.executive_summary],
        Paragraph("2. The device and its intended use", h2),
        *_grid(["field", "value"], [[k.replace("_", " "), v] for k, v in report.device.items()]),
    ]  # fmt: skip
    v = report.volume_of_use
    story += [Paragraph("3. Volume of use and the population using it", h2),
              Paragraph(f"{v.inferences:,} inferences in the period.", body),
              *_grid(["deployment", "inferences"], [[k, n] for k, n in v.by_deployment.items()]),
              *_grid(["country", "inferences"], [[k, n] for k, n in v.by_country.items()]),
              *_grid(["subgroup", "value", "inferences"],
                     [[a, x, n] for a, values in v.subgroup_mix.items() for x, n in values.items()])]  # fmt: skip
    g = report.vigilance
    story += [Paragraph("4. Vigilance", h2),
              *_grid(["", "incidents"], [
                  ["serious incidents", _rate(g.serious_incidents)],
                  *[[f"serious: {h.replace('_', ' ')}", _rate(c)] for h, c in g.serious_by_harm.items()],
                  *[[f"serious: {region}", _rate(c)] for region, c in g.serious_by_region.items()],
                  ["non-serious incidents", _rate(g.non_serious_incidents)],
                  ["serious incidents still open", g.open_serious_incidents],
                  ["trend reports (MDR Art. 88)", g.trend_reports],
              ]),
              Paragraph("Field safety corrective actions and CAPA", STYLES["Heading3"]),
              *[Paragraph(line, body) for line in (g.corrective_actions or ["none started in the period"])],
              Paragraph("Field safety notices: " + (", ".join(g.field_safety_notices) or "none"), body)]  # fmt: skip
    o = report.other_post_market_data
    story += [Paragraph("5. Other post-market data", h2),
              Paragraph("Performance by subgroup against the policy (since release): "
                        + (" ".join(o.performance.verdict) if o.performance else "no outcomes recorded."), body),
              Paragraph(f"Drift episodes: {o.drift_episodes}. Oversight and transparency: "
                        + (" ".join(o.oversight.verdict) if o.oversight else "no outputs."), body),
              *_grid(["signal", "events"], [[k, n] for k, n in o.signals.items()] or [["none", 0]])]  # fmt: skip
    c = report.conclusions
    story += [Paragraph("6. Conclusions", h2),
              Paragraph("The benefit-risk determination " + ("still holds." if c.benefit_risk_holds
                        else "needs review."), body),
              *[Paragraph(f"• {line}", body) for line in [*c.concerns, *c.actions_taken, *c.thresholds]]]  # fmt: skip
    doc.build(story)
    return out.getvalue()
