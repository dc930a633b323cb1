"""Human oversight: reviews joined to their inferences, outputs past their review time counted,
rolling windows judged against the policy."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from streams.app import (
    STARTED,
    Item,
    Stored,
    concern,
    due_index,
    each,
    emit,
    log,
    model_of,
    monitoring,
    send_dead_letter,
    table_key,
    writing_for,
)
from vigil.events import InferenceMade, ReviewRecorded
from vigil.join import Arrival, Entry, arrive
from vigil.oversight import (
    Awaiting,
    ModelOversight,
    Tally,
    assess,
    awaiting,
    clock_now,
    count_inference,
    count_review,
    count_unreviewed,
    oversight_alert,
    review_deadline,
    review_let_go,
    transitions,
)
from vigil.rolling import RollingState
from vigil.validation import canonical_json
from vigil_runtime.observability import OVERSIGHT, OVERSIGHT_ACTIVE, REVIEWS_UNMATCHED

ReviewJoin = Entry[Awaiting, ReviewRecorded]

# Inferences and reviews are keyed by model_id, so the tables are co-partitioned.
joins = Stored("oversight-join", ReviewJoin)  # inference_id -> what waits for its other side
oversight_state = Stored("oversight-state", ModelOversight)  # model_id -> clock and rolling windows
oversight_days = Stored("oversight-days", Tally)  # model, version, day -> Tally
# Join keys by when they fall due on their model's oversight clock (event time), per partition and model.
due = due_index()


class _Oversight:
    def __init__(self) -> None:
        self.models: dict[str, ModelOversight] = {}
        self.tallies: dict[bytes, Tally] = {}  # counted in this batch, per (model, version, day)
        self.last_of: dict[str, Item] = {}  # model_id -> its latest record: where its tables are written

    def model(self, model_id: str) -> ModelOversight:
        """The model's state, to change in this batch and write at its end."""
        if model_id not in self.models:
            self.models[model_id] = self.stored(model_id)
        return self.models[model_id]

    def stored(self, model_id: str) -> ModelOversight:
        """The model's state as it stands, to read."""
        if found := self.models.get(model_id):
            return found
        model = oversight_state.get(model_id.encode()) or ModelOversight()
        model.clock.woke(STARTED)
        return model

    def tally(self, model_id: str, version: str, at: datetime, inference_id: uuid.UUID) -> Tally:
        self.model(model_id).versions.setdefault(version, RollingState()).counted(at, inference_id)
        return self.tallies.setdefault(table_key(model_id, version, at.date().isoformat()), Tally())


@concern("watch_oversight", "inference.v1", "review.v1")
async def watch_oversight(items: list[Item]) -> None:
    """Reviews joined to their inferences, outputs past their review time counted; windows judged."""
    batch = _Oversight()
    now = datetime.now(UTC)

    async def handle(item: Item) -> None:
        event = item.event
        if isinstance(event, InferenceMade):
            batch.last_of[event.model_id] = item
            await _oversee_inference(event, item, batch, now)
        elif isinstance(event, ReviewRecorded):
            batch.last_of[event.model_id] = item
            await _oversee_review(event, item, batch, now)
        elif item.is_tick:
            _expire_reviews(item, batch, now)

    await each(items, "watch_oversight", handle)
    for key, tally in batch.tallies.items():
        writing_for(batch.last_of[model_of(key)].record)
        if stored := oversight_days.get(key):
            tally = stored + tally
        oversight_days[key] = tally
    for model_id, version in sorted({tuple(key.decode().split("\x1f")[:2]) for key in batch.tallies}):
        writing_for(batch.last_of[model_id].record)
        await _judge_oversight(model_id, version, batch.models[model_id].versions[version])
    for model_id, model in batch.models.items():
        writing_for(batch.last_of[model_id].record)
        oversight_state[model_id.encode()] = model


async def _oversee_inference(inference: InferenceMade, item: Item, batch: _Oversight, now: datetime) -> None:
    policy = monitoring.for_model(inference.model_id).oversight
    model = batch.model(inference.model_id)
    model.clock.partition = item.message.partition
    model.clock.saw_inference(inference, now)
    key = str(inference.event_id).encode()
    output = awaiting(inference, policy)
    if output is None:  # patient-facing: nothing to review, and a review waiting for it counts against nothing
        if joins.get(key) is not None:
            joins.pop(key)
            REVIEWS_UNMATCHED.labels(inference.model_id).inc()
        count_inference(batch.tally(inference.model_id, inference.model_version, inference.occurred_at,
                                    inference.event_id), inference, policy)  # fmt: skip
        return
    new = ReviewJoin(model_id=inference.model_id, partition=item.message.partition,
                     due=review_deadline(output, policy), left=output)  # fmt: skip
    arrival = await _arrive(key, new, item)
    if arrival.repeat:
        return  # a repeat of an inference within its review time
    tally = batch.tally(inference.model_id, inference.model_version, inference.occurred_at, inference.event_id)
    count_inference(tally, inference, policy)
    if arrival.met:
        count_review(tally, arrival.met.left, arrival.met.right, policy)


async def _oversee_review(review: ReviewRecorded, item: Item, batch: _Oversight, now: datetime) -> None:
    policy = monitoring.for_model(review.model_id).oversight
    model = batch.model(review.model_id)
    model.clock.partition = item.message.partition
    model.clock.saw_review(review, now)
    new = ReviewJoin(model_id=review.model_id, partition=item.message.partition,
                     due=review_let_go(review, policy), right=review, right_from=item.position)  # fmt: skip
    arrival = await _arrive(str(review.inference_id).encode(), new, item)
    if (met := arrival.met) and not arrival.repeat:  # the first review decides; a repeat or second opinion does not
        output = met.left
        tally = batch.tally(review.model_id, output.model_version, output.made_at, output.inference_id)
        count_review(tally, output, met.right, policy)


async def _arrive(key: bytes, new: ReviewJoin, item: Item) -> Arrival[Awaiting, ReviewRecorded]:
    """The join's step for one record: what waits is written and indexed, a refused review dead-lettered."""
    arrival = arrive(joins.get(key), new, item.position, "review", "oversight")
    if not arrival.repeat:
        joins[key] = arrival.entry
        due.add((item.message.partition, arrival.entry.model_id), arrival.entry.due, key)
    if refusal := arrival.refused:
        await send_dead_letter(refusal.why, *refusal.right_from, canonical_json(refusal.right).encode())
    return arrival


def _expire_reviews(tick: Item, batch: _Oversight, now: datetime) -> None:
    """On the tick's partition: counts outputs past their review time as unreviewed and forgets
    reviews whose inference did not come, each model by its own oversight clock."""
    partition = tick.message.partition
    if not due.filled(partition):
        due.fill(partition, (((e.partition, e.model_id), e.due, k) for k, e in joins.items()))
    for lane in due.lanes(partition):
        model_id = lane[1]
        policy = monitoring.for_model(model_id).oversight
        clock_time = clock_now(batch.stored(model_id).clock, policy, now)
        if clock_time is None:
            continue
        for key in due.due(lane, clock_time):
            entry = joins.get(key)
            if entry is None or entry.due > clock_time:  # gone, or moved on since it was indexed
                continue
            joins.pop(key)
            batch.last_of.setdefault(model_id, tick)
            if entry.paired:  # reviewed: the entry only absorbed repeats
                continue
            if entry.left is not None and entry.left.due:
                output = entry.left
                count_unreviewed(batch.tally(model_id, output.model_version, output.made_at, output.inference_id),
                                 output)  # fmt: skip
            elif entry.right is not None:
                REVIEWS_UNMATCHED.labels(model_id).inc()


async def _judge_oversight(model_id: str, version: str, state: RollingState) -> None:
    policy = monitoring.for_model(model_id).oversight
    window = Tally()
    for day in state.window(policy.window_days):
        if stored := oversight_days.read(table_key(model_id, version, day.isoformat())):
            window += stored
    findings = assess(window, policy)
    for finding in findings:
        OVERSIGHT.labels(model_id, version, finding.kind).set(finding.value)
    for signal in transitions(state, model_id, version, window, findings, policy.window_days):
        await emit(signal)
        await emit(oversight_alert(signal))
        log.warning("worker.oversight", model_id=model_id, model_version=version, kind=signal.kind,
                    event_type=signal.event_type)  # fmt: skip
    for finding in findings:  # from the state, so that a restarted worker shows what stands
        OVERSIGHT_ACTIVE.labels(model_id, version, finding.kind).set(int(finding.kind in state.standing))
