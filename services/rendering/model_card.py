"""The live model card as people read it: Markdown, a standalone HTML page, and a PDF.

The three are written from one list of sections (`sections`), so they say the same thing; the
HTML page and the PDF add a chart of the primary metric by subgroup with its intervals against
the policy's threshold, and of the drift episodes over time.
"""

from __future__ import annotations

import html as escape
import io
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import cm
from reportlab.platypus import Image, Paragraph, SimpleDocTemplate, Spacer, Table

from services.rendering.incident_pdf import STYLES, TABLE, cell
from vigil.model_card import LiveModelCard

Rows = list[list[str]]
RECENT_SIGNALS = 15


@dataclass
class Grid:
    header: list[str]
    rows: Rows


Block = str | list[str] | Grid  # a paragraph, a bullet list, a table


@dataclass
class Section:
    """A titled section: its blocks, in order."""

    title: str
    blocks: list[Block] = field(default_factory=list)


def _share(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _group(subgroup: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in subgroup.items()) or "everyone"


def _when(moment: datetime | None) -> str:
    return "—" if moment is None else f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def sections(card: LiveModelCard) -> list[Section]:
    d, use = card.details, card.intended_use
    when = f"as of {_when(card.as_of)}" if card.as_of else f"generated {_when(card.generated_at)}"
    out = [
        Section("Model details", [
            f"{d.name} ({d.model_id}), version {d.version or 'none released'}, by {d.manufacturer}; {when}.",
            f"Use case {d.use_case}; WHO risk class {d.risk_class}; countries {', '.join(d.countries) or '—'}.",
            f"Released {_when(d.released_at)}; status: {d.status}.",
        ]),
        Section("Intended use", [
            use.intended_use,
            f"Out of scope: {', '.join(use.out_of_scope_uses) or 'none stated'}.",
            f"Patient-facing: {'yes' if use.patient_facing else 'no'}. Labels: {', '.join(use.labels) or '—'}; "
            f"critical: {', '.join(use.critical_labels) or '—'}.",
        ]),
        Section("Factors", [f"Performance is shown by: {', '.join(card.factors) or 'everyone (no subgroups yet)'}."]),
        Section("Metrics", [card.metrics]),
    ]  # fmt: skip
    data = card.training_data
    training: list[Block] = [card.training_data_summary] if card.training_data_summary else []
    if data:
        period = (
            f"{data.period_start or '?'} to {data.period_end or '?'}" if data.period_start or data.period_end else "—"
        )
        training.append([f"Populations: {', '.join(data.populations) or '—'}", f"Sites: {', '.join(data.sites) or '—'}",
                         f"Period: {period}", f"Examples: {data.size if data.size is not None else '—'}"])  # fmt: skip
    out.append(Section("Training data", training or ["not stated in the release"]))
    out.append(Section("Evaluation data", [card.evaluation_data or "no validation summary in the release"]))
    out += [_performance(card), _monitoring(card), _ethics(card)]
    out.append(Section("Caveats and recommendations", [[f"Known limitation: {c}" for c in card.caveats]
                                                       or ["none stated"]]))  # fmt: skip
    history = [[v.model_version, _when(v.released_at), v.changes or "—", "; ".join(v.limitations) or "—",
                v.validation_summary or "—"] for v in card.version_history]  # fmt: skip
    out.append(Section("Version history", [Grid(["version", "released", "changes", "limitations", "validation"],
                                                  history)]))  # fmt: skip
    plan = [
        [name, e.owner, e.cadence, e.action] for name, e in sorted(card.plan.items()) if not name.startswith("Vigil")
    ]
    out.append(Section("Monitoring plan", ["Who acts on each of the model's signals, how often they review it, "
                                           "and what they do (the policy file's plan):",
                                           Grid(["alert", "owner", "review", "action"], plan)]))  # fmt: skip
    return out


def _performance(card: LiveModelCard) -> Section:
    s = Section("Quantitative analyses: performance since release")
    p = card.performance
    if p is None or not p.rows:
        s.blocks.append("No outcomes recorded for this version yet: no performance to show.")
        return s
    s.blocks += [f"{p.outcomes} outcomes joined to their inferences.", p.verdict or ["within policy"]]
    rows = [[r.label, _group(r.subgroup), str(r.n), _share(r.sensitivity),
             "—" if r.sensitivity_ci is None else f"{r.sensitivity_ci[0]:.1%}–{r.sensitivity_ci[1]:.1%}",
             _share(r.specificity), r.verdict] for r in p.rows]  # fmt: skip
    s.blocks.append(Grid(["label", "subgroup", "n", "sensitivity", "95% interval", "specificity", "verdict"], rows))
    if p.disparity:
        gaps = [[g.label, ",".join(g.attributes), f"{g.gap:.3f}", f"{g.limit:.3f}", f"{g.p_value:.3g}",
                 _group(g.worst.subgroup)] for g in p.disparity]  # fmt: skip
        s.blocks.append(Grid(["label", "attributes", "gap", "limit", "p (Fisher)", "worst"], gaps))
    return s


def _monitoring(card: LiveModelCard) -> Section:
    s = Section("Quantitative analyses: oversight, transparency, readers, drift, signals, energy")
    o = card.oversight
    if o is not None and o.rows and o.rows[0].outputs:
        rows = [[r.group, str(r.outputs), _share(r.coverage), str(r.acted_before_review), str(r.autonomous),
                 _share(r.override_share)] for r in o.rows]  # fmt: skip
        s.blocks += ["Human oversight and transparency since release:", o.verdict or ["within policy"]]
        s.blocks.append(Grid(["deployment", "outputs", "reviewed in time", "acted before review", "autonomous",
                                "overridden"], rows))  # fmt: skip
        shown = [[t.group, str(t.outputs), _share(t.disclaimer_shown) if t.patient_facing else "not patient-facing",
                  _share(t.explanation_present), _share(t.consent_recorded), _share(t.score_present)]
                 for t in o.transparency]  # fmt: skip
        s.blocks.append(Grid(["deployment", "outputs", "disclaimer shown", "explanation", "consent", "score"], shown))
    r = card.readers
    if r is not None and r.cases:
        s.blocks += [f"The model alone and the clinician with it, on {r.cases} reviewed outputs with a final label "
                     "and a known truth:", r.verdict]  # fmt: skip
        rows = [[x.label, _group(x.subgroup), str(x.cases), _share(x.model_sensitivity),
                 _share(x.clinician_sensitivity), "—" if x.sensitivity_p is None else f"{x.sensitivity_p:.3g}",
                 f"{_share(x.wrong_accepted)} of {x.wrong_suggestions}"] for x in r.rows]  # fmt: skip
        s.blocks.append(Grid(["label", "subgroup", "cases", "model sensitivity", "clinician sensitivity",
                              "McNemar p", "wrong suggestions accepted"], rows))  # fmt: skip
    if card.drift:
        rows = [[e.feature, e.method, _when(e.started), _when(e.resolved) if e.resolved else "ongoing",
                 f"{e.worst:.4g} (threshold {e.threshold:g})", str(e.windows)] for e in card.drift]  # fmt: skip
        s.blocks.append(Grid(["drift: feature", "method", "from", "until", "worst score", "windows"], rows))
    else:
        s.blocks.append("No drift episode recorded.")
    if card.signals:
        kinds = Counter(x.event_type for x in card.signals)
        s.blocks.append(f"{len(card.signals)} signals: " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
                        + f"; the {min(RECENT_SIGNALS, len(card.signals))} latest:")  # fmt: skip
        latest = card.signals[-RECENT_SIGNALS:]
        s.blocks.append(
            Grid(
                ["when", "signal", "detail"],
                [[_when(datetime.fromisoformat(x.occurred_at)), x.event_type, x.detail] for x in latest],
            )
        )
    f = card.footprint
    if f is not None:
        s.blocks.append(
            f"Energy: {f.energy_kwh:.3f} kWh over {f.inferences} inferences ({_share(f.energy_reported_share)} "
            f"reported theirs), about {f.co2e_kg:.3f} kg CO2e at {f.grid_g_co2e_per_kwh:g} g/kWh."
        )
    return s


def _ethics(card: LiveModelCard) -> Section:
    s = Section("Ethical considerations: incidents and guideline changes")
    if card.incidents:
        rows = [[str(i.incident_id), i.status, i.source, i.harm or "—",
                 "—" if i.reportable is None else ("yes" if i.reportable else "no"), _when(i.aware_at)]
                for i in card.incidents]  # fmt: skip
        s.blocks.append(Grid(["incident", "status", "source", "harm", "reportable", "aware"], rows))
    else:
        s.blocks.append("No incident recorded for this version.")
    reviews = []
    for g in card.guideline_changes:
        answered = f"revalidated by version {g.revalidated_by}" if g.revalidated_by else "NOT revalidated since"
        reviews.append(f"Guideline {g.guideline_id} ({g.title}) changed {g.effective_at:%Y-%m-%d}: {answered}.")
    s.blocks.append(reviews or ["No guideline of its use case changed since its release."])
    return s


def markdown(card: LiveModelCard) -> str:
    d = card.details
    out = [f"# Model card: {d.name} {d.version or ''}".rstrip(), ""]
    for section in sections(card):
        out += [f"## {section.title}", ""]
        for block in section.blocks:
            if isinstance(block, str):
                out += [block, ""]
            elif isinstance(block, list):
                out += [*(f"- {item}" for item in block), ""]
            else:
                out += ["| " + " | ".join(block.header) + " |", "|" + "---|" * len(block.header)]
                out += ["| " + " | ".join(v.replace("|", "\\|") for v in row) + " |" for row in block.rows]
                out.append("")
    return "\n".join(out).rstrip() + "\n"


def chart(card: LiveModelCard, format: str) -> bytes | None:
    """The primary metric by subgroup with its intervals, and the drift episodes; None with neither."""
    p = card.performance
    rows = [r for r in (p.rows if p else []) if r.sensitivity is not None][:30]
    if not rows and not card.drift:
        return None
    heights = [h for h in (0.8 + 0.2 * len(rows) if rows else 0, 0.8 + 0.3 * len(card.drift) if card.drift else 0) if h]
    fig, axes = plt.subplots(len(heights), 1, figsize=(7.5, sum(heights)), dpi=150, squeeze=False,
                             gridspec_kw={"height_ratios": heights})  # fmt: skip
    ax = axes[0][0]
    if rows:
        names = [f"{r.label}: {_group(r.subgroup)}" for r in rows]
        values = [r.sensitivity or 0.0 for r in rows]
        low = [v - (r.sensitivity_ci[0] if r.sensitivity_ci else v) for v, r in zip(values, rows, strict=True)]
        high = [(r.sensitivity_ci[1] if r.sensitivity_ci else v) - v for v, r in zip(values, rows, strict=True)]
        ax.errorbar(values, range(len(rows)), xerr=[low, high], fmt="o", color="#1f4e79", capsize=2, markersize=3)
        if p and p.policy.threshold is not None:
            ax.axvline(p.policy.threshold, color="#c62828", linestyle="--", linewidth=1)
        ax.set_yticks(range(len(rows)), names, fontsize=6)
        ax.invert_yaxis()
        lowest = min([v - d for v, d in zip(values, low, strict=True)] + [p.policy.threshold or 1.0 if p else 1.0])
        ax.set_xlim(max(0.0, lowest - 0.05), 1.0)
        ax.set_title("Sensitivity by subgroup, 95% intervals (dashed: the policy's threshold)", fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
        ax = axes[-1][0]
    if card.drift:
        for i, e in enumerate(card.drift):
            end = e.resolved or card.as_of or card.generated_at
            ax.barh(i, mdates.date2num(end) - mdates.date2num(e.started), left=mdates.date2num(e.started),
                    color="#ef6c00" if e.resolved is None else "#90a4ae")  # fmt: skip
        ax.set_yticks(range(len(card.drift)), [f"{e.feature} ({e.method})" for e in card.drift], fontsize=6)
        ax.xaxis_date()
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%d %b %H:%M"))
        ax.tick_params(axis="x", labelsize=6)
        ax.set_title("Drift episodes (orange: ongoing)", fontsize=8)
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format=format)
    plt.close(fig)
    return out.getvalue()


def html(card: LiveModelCard) -> str:
    """A standalone page: nothing is fetched from elsewhere (hospital networks often block it)."""
    d = card.details
    title = escape.escape(f"Model card: {d.name} {d.version or ''}")
    body = [f"<h1>{title}</h1>"]
    svg = chart(card, "svg")
    for section in sections(card):
        body.append(f"<h2>{escape.escape(section.title)}</h2>")
        if section.title.startswith("Quantitative analyses: performance") and svg:
            text = svg.decode()
            body.append(f'<figure class="chart">{text[text.index("<svg") :]}</figure>')  # without its XML prologue
        for block in section.blocks:
            if isinstance(block, str):
                body.append(f"<p>{escape.escape(block)}</p>")
            elif isinstance(block, list):
                body.append("<ul>" + "".join(f"<li>{escape.escape(item)}</li>" for item in block) + "</ul>")
            else:
                head = "".join(f"<th>{escape.escape(h)}</th>" for h in block.header)
                cells = "".join("<tr>" + "".join(f"<td>{escape.escape(v)}</td>" for v in row) + "</tr>"
                                for row in block.rows)  # fmt: skip
                body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{cells}</tbody></table>")
    style = ("body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}"
             "table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:.85rem}"
             "td,th{border:1px solid #ccc;padding:.2rem .4rem;text-align:left;vertical-align:top}"
             "th{background:#f3f5f7}.chart svg{max-width:100%;height:auto}")  # fmt: skip
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n")  # fmt: skip


def pdf(card: LiveModelCard) -> bytes:
    out = io.BytesIO()
    doc = SimpleDocTemplate(out, pagesize=A4, leftMargin=1.5 * cm, rightMargin=1.5 * cm, title="Model card")
    d = card.details
    story: list = [Paragraph(f"Model card: {d.name} {d.version or ''}", STYLES["Title"])]
    png = chart(card, "png")
    for section in sections(card):
        story.append(Paragraph(section.title, STYLES["Heading2"]))
        if section.title.startswith("Quantitative analyses: performance") and png:
            story.append(Image(io.BytesIO(png), width=18 * cm, height=20 * cm, kind="proportional"))
        for block in section.blocks:
            if isinstance(block, str):
                story.append(cell(block))
            elif isinstance(block, list):
                story += [cell(f"• {item}") for item in block]
            else:
                width = 18 * cm / len(block.header)
                table = Table([[cell(h) for h in block.header], *[[cell(v) for v in row] for row in block.rows]],
                              colWidths=[width] * len(block.header), repeatRows=1)  # fmt: skip
                table.setStyle(TABLE)
                story += [Spacer(1, 4), table, Spacer(1, 6)]
    doc.build(story)
    return out.getvalue()


RENDER = {"md": markdown, "html": html}
