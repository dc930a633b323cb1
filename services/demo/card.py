"""The demo's model card: mammo-screen's live card after the stream, written as Markdown, HTML and
PDF, with what it shows at a glance."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from services.model_card import model_card
from services.performance_view import print_readers
from services.rendering.model_card import html, markdown, pdf
from vigil.policy import Policy

MODEL = "mammo-screen"


async def card_of_the_demo(engine: AsyncEngine, policy: Policy, out: Path, console: Console) -> list[Path]:
    card = await model_card(engine, policy, MODEL, None, None, datetime.now(UTC))
    stem = out / f"model-card-{MODEL}"
    written = [stem.with_suffix(".md"), stem.with_suffix(".html"), stem.with_suffix(".pdf")]
    written[0].write_text(markdown(card), encoding="utf-8")
    written[1].write_text(html(card), encoding="utf-8")
    written[2].write_bytes(pdf(card))
    table = Table(title=f"Model card of {MODEL} {card.details.version}: what it shows", show_header=False)
    table.add_row("intended use", card.intended_use.intended_use)
    table.add_row("trained at", ", ".join(card.training_data.sites) if card.training_data else "—")
    for line in card.performance.verdict if card.performance else []:
        table.add_row("performance", line)
    for episode in card.drift:
        until = episode.resolved.isoformat() if episode.resolved else "ongoing"
        table.add_row(
            "drift episode", f"{episode.feature} ({episode.method}) from {episode.started.isoformat()} to {until}"
        )
    table.add_row("signals", str(len(card.signals)))
    table.add_row("incidents", str(len(card.incidents)))
    table.add_row("versions", ", ".join(v.model_version for v in card.version_history))
    console.print(table)
    if card.readers:  # the second-reader table: the premarket study's claim against what happens in use
        print_readers(console, card.readers, f"{MODEL}: the model alone and the radiologist with it, in use")
    return written
