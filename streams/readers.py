"""The model alone against the clinician with it, second stage: each output's first review (from
oversight) joined to its truth (the outcome join's pair) in either order, the cases counted by day
per model version, and the window judged after each batch (vigil.readers holds the rules).

Both sides come with the position of the first-stage record that made them, which is unique per
output; a case is counted under the position of the side that completed it, once (vigil.join.takes),
however often a crash hands either side on again."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from streams.app import Item, Stored, concern, due_queue, each, emit, log, monitoring, table_key, writing_for
from streams.registry import registration
from vigil.events import HANDOVER_TOPIC
from vigil.handover import JoinedPair
from vigil.join import Entry, Position, arrive, takes
from vigil.performance import positive_labels
from vigil.readers import (
    KEEP_MET,
    ReaderCase,
    ReaderLeft,
    ReaderState,
    ReviewedOutput,
    count_case,
    findings,
    reader_alert,
    reader_transitions,
    window_rows,
)
from vigil_runtime.observability import READER_FINDING

ReaderJoin = Entry[ReaderLeft, ReviewedOutput]

joins = Stored("reader-join", ReaderJoin)  # inference_id -> the side that waits for the other
due = due_queue("reader-join")
reader_state = Stored("reader-state", ReaderState)  # model, version -> counts by day, standing findings


@concern("watch_readers", HANDOVER_TOPIC)
async def watch_readers(items: list[Item]) -> None:
    now = datetime.now(UTC)
    states: dict[tuple[str, str], ReaderState] = {}
    last_of: dict[tuple[str, str], Item] = {}

    def state(model_id: str, version: str, item: Item) -> ReaderState:
        last_of[(model_id, version)] = item
        if (model_id, version) not in states:
            states[(model_id, version)] = reader_state.get(table_key(model_id, version)) or ReaderState()
        return states[(model_id, version)]

    async def handle(item: Item) -> None:
        if item.handover is not None:
            model_id = item.handover.model_id
            horizon = timedelta(days=monitoring.for_model(model_id).performance.horizon_days)
            side = ReaderJoin(model_id=model_id, partition=item.message.partition, due=now + horizon)
            arrivals = [
                *((str(p.left.event_id), side.holding(p.at, left=_left(p)), p.at) for p in item.handover.pairs
                  if p.left.patient_facing is None),  # patient-facing outputs are not reviewed
                *((str(r.inference_id), side.holding(r.at, right=r), r.at) for r in item.handover.reviews),
            ]  # fmt: skip
            for key, new, at in arrivals:
                _arrive(key.encode(), new, at, now, horizon, item, state)
        elif item.is_tick:
            _expire(item, now)

    await each(items, "watch_readers", handle)
    for (model_id, version), counted in states.items():
        writing_for(last_of[(model_id, version)].record)
        await _judge(model_id, version, counted)
        reader_state[table_key(model_id, version)] = counted


def _left(pair: JoinedPair) -> ReaderLeft:
    inference = pair.left
    return ReaderLeft(
        model_version=inference.model_version, made_at=inference.occurred_at, model_label=inference.output.label,
        subgroup=inference.subgroup, truth=pair.right.label,
    )  # fmt: skip


def _arrive(
    key: bytes,
    new: ReaderJoin,
    at: Position,
    now: datetime,
    horizon: timedelta,
    item: Item,
    state: Callable[[str, str, Item], ReaderState],
) -> None:
    """One side into the join; a case counted when it completes one."""
    arrival = arrive(joins.get(key), new, at, "review", "readers")
    entry = arrival.entry
    if not arrival.repeat:
        if arrival.met:  # met: kept only to absorb what a crash hands on again
            entry = entry.model_copy(update={"due": min(entry.due, now + KEEP_MET)})
        joins[key] = entry
    if arrival.to_queue:
        due.add(item.message.partition, KEEP_MET if entry.paired else horizon, entry.due, key)
    if (met := arrival.met) is None:
        return
    output, review = met.left, met.right
    model = registration(new.model_id)
    counted = state(new.model_id, output.model_version, item)
    if model is None or not takes(counted.taken, met.at):
        return  # taken before a crash (or, rarely, a model whose registration is not read yet)
    if review.final_label is None:
        counted.without_final_label += 1
        return
    policy = monitoring.for_model(model.model_id).performance
    case = ReaderCase(subgroup=output.subgroup, model_label=output.model_label, final_label=review.final_label,
                      truth=output.truth, decision=review.decision)  # fmt: skip
    labels = positive_labels(model.labels, model.critical_labels)
    count_case(counted, case, output.made_at, labels, policy.attributes, policy.max_values)


def _expire(tick: Item, now: datetime) -> None:
    for key in due.due(tick.message.partition, now):
        entry = joins.get(key)
        if entry is not None and entry.due <= now:
            joins.pop(key)


async def _judge(model_id: str, version: str, state: ReaderState) -> None:
    watched = monitoring.for_model(model_id)
    window_days = watched.performance.window_days
    if state.latest is None:
        return
    # The window ends with the latest output counted (event time), as performance's does.
    rows = window_rows(state, state.latest.date(), window_days)
    found = findings(rows, watched.readers)
    for event in reader_transitions(state, model_id, version, rows, found, window_days, state.latest):
        await emit(event)
        await emit(reader_alert(event))
        log.warning("worker.readers", model_id=model_id, model_version=version, kind=event.kind,
                    event_type=event.event_type)  # fmt: skip
    standing = {key.split("/")[0] for key in state.standing}
    for kind in ("clinician_less_sensitive", "wrong_suggestions_accepted"):
        READER_FINDING.labels(model_id, version, kind).set(int(kind in standing))
