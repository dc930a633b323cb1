"""System integrity, second stage: each model's deployments, when they last sent, and the silences
(vigil.sources holds the rule). Inferences reach it with the handover; clock ticks of the model's
partition judge the silences."""

from __future__ import annotations

from datetime import UTC, datetime

from streams.app import Item, Stored, concern, each, emit, log, monitoring, writing_for
from vigil.events import HANDOVER_TOPIC, SourceSilent
from vigil.sources import ModelSources, fallen_silent, received, source_alert
from vigil_runtime.observability import SOURCE_SILENCE, SOURCE_SILENT

sources = Stored("sources", ModelSources)  # model_id -> its deployments


@concern("watch_sources", HANDOVER_TOPIC)
async def watch_sources(items: list[Item]) -> None:
    """Every handed-on inference marks its deployment as heard now; ticks find the silent ones."""
    now = datetime.now(UTC)
    models: dict[str, ModelSources] = {}
    last_of: dict[str, Item] = {}
    changed: set[str] = set()  # written back: heard from, or fallen silent
    signals: list[SourceSilent] = []

    async def handle(item: Item) -> None:
        if item.handover is not None:
            model_id = item.handover.model_id
            policy = monitoring.for_model(model_id).sources
            state = (
                models.get(model_id) or sources.get(model_id.encode()) or ModelSources(partition=item.message.partition)
            )
            models[model_id], last_of[model_id] = state, item
            changed.add(model_id)
            for heard in {i.deployment for i in item.handover.inferences if i.deployment}:
                if resumed := received(state, heard, now, policy):
                    signals.append(resumed)
        elif item.is_tick:
            for key, state in sources.items():
                model_id = key.decode()
                if state.partition == item.message.partition and model_id not in models:
                    models[model_id], last_of[model_id] = state, item
            for model_id, state in models.items():
                policy = monitoring.for_model(model_id).sources
                if state.partition == item.message.partition and (
                    silent := fallen_silent(state, model_id, now, policy)
                ):
                    signals.extend(silent)
                    changed.add(model_id)

    await each(items, "watch_sources", handle)
    for model_id, state in models.items():
        if model_id in changed:
            writing_for(last_of[model_id].record)
            sources[model_id.encode()] = state
        for deployment, source in state.deployments.items():
            SOURCE_SILENCE.labels(model_id, deployment).set((now - source.last_seen).total_seconds())
            SOURCE_SILENT.labels(model_id, deployment).set(int(source.silent is not None))
    for signal in signals:
        await emit(signal)
        await emit(source_alert(signal))
        log.warning("worker.source", model_id=signal.model_id, deployment=signal.deployment,
                    event_type=signal.event_type)  # fmt: skip
