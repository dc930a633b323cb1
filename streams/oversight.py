"""Human oversight: in the first stage, reviews joined to their inferences, outputs past their
review time counted, and each record's counts handed on; in the second, rolling windows judged
against the policy.

Exactly once across a crash: a record's counts are handed on with the record's position, and a
day takes them unless it has taken that record before (vigil.join.takes), so a record read again
after a crash hands them on again harmlessly. That needs the same record to count an output
again: a batch delivers its join entries before its handovers, so that a pair whose counts were
handed on is found paired (where it met) when its records are read again, perhaps in another
order of the two topics, and is not counted again where it would meet the second time. The
clocks come right after the entries (`streams.app.Delivery`), never before them: a tick read
again after a crash has its clock's `ticked` at or past it, and counts again only what it counted
before (its marks), not what the clock, further on by then, would let fall due at it: those fall
due at the next new tick, at a position not yet taken. An entry that falls due is not forgotten
at once but marked with the tick that did it, and kept an hour: the tick, read again after a
crash, counts an output it found unreviewed again (or finds it counted), and records read again
find the entry.

Each input partition keeps its own oversight clock per model (vigil.oversight.OversightClock): its
outputs fall due by what that partition has read, whichever worker reads it."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from streams.app import (
    STARTED,
    Delivery,
    Item,
    Stored,
    concern,
    due_index,
    due_queue,
    each,
    emit,
    hand_over,
    log,
    model_of,
    monitoring,
    send_dead_letter,
    table_key,
    writing_for,
)
from streams.registry import registration
from vigil.events import HANDOVER_TOPIC, InferenceMade, ReviewRecorded, TransparencyViolation
from vigil.handover import OversightCount
from vigil.join import Arrival, Entry, Position, arrive
from vigil.oversight import (
    Awaiting,
    ModelOversight,
    OversightClock,
    OversightDay,
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
from vigil.policy import TransparencyPolicy
from vigil.readers import ReviewedOutput
from vigil.rolling import RollingState
from vigil.transparency import assess_transparency, transparency_alert
from vigil.validation import canonical_json
from vigil_runtime.observability import (
    OVERSIGHT,
    OVERSIGHT_ACTIVE,
    REVIEWS_UNMATCHED,
    TRANSPARENCY,
    TRANSPARENCY_ACTIVE,
)

ReviewJoin = Entry[Awaiting, ReviewRecorded]

# First stage: inferences and reviews are keyed by inference id.
joins = Stored("oversight-join", ReviewJoin, Delivery.JOIN_ENTRIES)  # inference_id -> what waits for its other side
clocks = Stored("oversight-clocks", OversightClock, Delivery.CLOCKS)  # model, partition -> its clock there
# Join keys by when they fall due on their model's oversight clock (event time), per partition and
# model: in memory, since records come in any order of event time and a model's entries are those
# of about a day of its stream. Entries counted as they fell due stay an hour by wall-clock time,
# in a queue in the tables.
due = due_index()
kept = due_queue("oversight-expired")
KEEP_EXPIRED = timedelta(hours=1)  # long past any record read again after a crash
# Second stage, keyed by model.
oversight_state = Stored("oversight-state", ModelOversight)  # model_id -> rolling windows
oversight_days = Stored("oversight-days", OversightDay)  # model, version, day -> its tally


class _Joining:
    """A first-stage batch: the clocks it moved, by model and partition."""

    def __init__(self) -> None:
        self.clocks: dict[tuple[str, int], OversightClock] = {}
        self.last_of: dict[tuple[str, int], Item] = {}  # its latest record there: where the clock is written

    def clock(self, model_id: str, item: Item) -> OversightClock:
        """The model's clock on the record's partition, to move in this batch and write at its end."""
        where = (model_id, item.message.partition)
        self.last_of[where] = item
        if where not in self.clocks:
            self.clocks[where] = clocks.get(table_key(model_id, str(where[1]))) or OversightClock()
            self.clocks[where].woke(STARTED)
        return self.clocks[where]


def _count(model_id: str, output: Awaiting | InferenceMade, source: Item) -> Tally:
    """Where the record `source` counts an output's oversight: handed on to the model's second stage."""
    if isinstance(output, InferenceMade):
        version, made_at, inference_id = output.model_version, output.occurred_at, output.event_id
    else:
        version, made_at, inference_id = output.model_version, output.made_at, output.inference_id
    count = OversightCount(
        model_version=version, made_at=made_at, inference_id=inference_id, at=source.position, tally=Tally()
    )
    hand_over(model_id).counts.append(count)
    return count.tally


@concern("join_reviews", "inference.v1", "review.v1")
async def join_reviews(items: list[Item]) -> None:
    """First stage: reviews joined to their inferences, outputs past their review time counted."""
    batch = _Joining()
    now = datetime.now(UTC)

    async def handle(item: Item) -> None:
        event = item.event
        if isinstance(event, InferenceMade):
            await _oversee_inference(event, item, batch, now)
        elif isinstance(event, ReviewRecorded):
            await _oversee_review(event, item, batch, now)
        elif item.is_tick:
            _expire_reviews(item, batch, now)

    await each(items, "join_reviews", handle)
    for (model_id, partition), clock in batch.clocks.items():
        writing_for(batch.last_of[(model_id, partition)].record)
        clocks[table_key(model_id, str(partition))] = clock


def transparency_of(model_id: str) -> TransparencyPolicy:
    """The model's transparency shares, for its risk class once its registration has been read."""
    model = registration(model_id)
    return monitoring.for_model(model_id).transparency.for_risk_class(model.risk_class if model else None)


async def _oversee_inference(inference: InferenceMade, item: Item, batch: _Joining, now: datetime) -> None:
    policy, transparency = monitoring.for_model(inference.model_id).oversight, transparency_of(inference.model_id)
    batch.clock(inference.model_id, item).saw_inference(inference, now)
    key = str(inference.event_id).encode()
    output = awaiting(inference, policy)
    if output is None:  # patient-facing: nothing to review, and a review waiting for it counts against nothing
        if joins.get(key) is not None:
            joins.pop(key)
            REVIEWS_UNMATCHED.labels(inference.model_id).inc()
        count_inference(_count(inference.model_id, inference, item), inference, policy, transparency)
        return
    new = ReviewJoin(model_id=inference.model_id, partition=item.message.partition,
                     due=review_deadline(output, policy), left=output, left_from=item.position)  # fmt: skip
    arrival = await _arrive(key, new, item)
    if arrival.repeat and not arrival.again:
        return  # a repeat of an inference within its review time
    tally = _count(inference.model_id, inference, item)
    count_inference(tally, inference, policy, transparency)
    if arrival.met:
        count_review(tally, arrival.met.left, arrival.met.right, policy)
        _hand_on_review(arrival.met.right, arrival.met.left, item)


async def _oversee_review(review: ReviewRecorded, item: Item, batch: _Joining, now: datetime) -> None:
    policy = monitoring.for_model(review.model_id).oversight
    batch.clock(review.model_id, item).saw_review(review, now)
    new = ReviewJoin(model_id=review.model_id, partition=item.message.partition,
                     due=review_let_go(review, policy), right=review, right_from=item.position)  # fmt: skip
    arrival = await _arrive(str(review.inference_id).encode(), new, item)
    if met := arrival.met:  # the first review of an output decides; a repeat or a second opinion does not count
        count_review(_count(review.model_id, met.left, item), met.left, met.right, policy)
        _hand_on_review(met.right, met.left, item)


def _hand_on_review(review: ReviewRecorded, output: Awaiting, item: Item) -> None:
    """An output's first review, for the readers' join in the second stage (streams/readers.py)."""
    reviewed = ReviewedOutput(inference_id=output.inference_id, model_version=output.model_version,
                              decision=review.decision, final_label=review.final_label, at=item.position)  # fmt: skip
    hand_over(review.model_id).reviews.append(reviewed)


async def _arrive(key: bytes, new: ReviewJoin, item: Item) -> Arrival[Awaiting, ReviewRecorded]:
    """The join's step for one record: what waits is written and indexed, a refused review dead-lettered."""
    arrival = arrive(joins.get(key), new, item.position, "review", "oversight")
    late = arrival.entry.expired_at and _unreviewed(arrival.entry)
    if arrival.repeat and late and new.right is not None and not arrival.again:
        REVIEWS_UNMATCHED.labels(new.model_id).inc()  # came after its output was counted unreviewed
    if not arrival.repeat:
        joins[key] = arrival.entry
        due.add((item.message.partition, arrival.entry.model_id), arrival.entry.due, key)
    if refusal := arrival.refused:
        await send_dead_letter(refusal.why, *refusal.right_from, canonical_json(refusal.right).encode())
    return arrival


def _expire_reviews(tick: Item, batch: _Joining, now: datetime) -> None:
    """On the tick's partition: counts outputs past their review time as unreviewed and forgets
    reviews whose inference did not come, each model by its clock on this partition."""
    partition = tick.message.partition
    if not due.filled(partition):  # the entries counted as they fell due only marked: they are in `kept`
        due.fill(partition, ((e.partition, None if e.expired_at else e.model_id, e.due, k, e.expired_at)
                             for k, e in joins.items()))  # fmt: skip
    for key in due.expired_by(tick.position):  # read again after a crash: count them again
        if (entry := joins.get(key)) is not None and _unreviewed(entry):
            assert entry.left is not None
            count_unreviewed(_count(entry.model_id, entry.left, tick), entry.left)
        if entry is not None:  # its place in `kept` may not have reached the changelog
            kept.add(partition, KEEP_EXPIRED, entry.due, key)
    for key in kept.due(partition, now):
        if (entry := joins.get(key)) is not None and entry.expired_at and entry.due <= now:
            joins.pop(key)
    for lane in due.lanes(partition):
        model_id = lane[1]
        clock = batch.clock(model_id, tick)
        if tick.message.offset <= clock.ticked:  # read again after a crash: what it expired is counted above
            continue
        clock.ticked = tick.message.offset
        policy = monitoring.for_model(model_id).oversight
        clock_time = clock_now(clock, policy, now)
        if clock_time is None:
            continue
        for key in due.due(lane, clock_time):
            entry = joins.get(key)
            if entry is None or entry.expired_at or entry.due > clock_time:  # gone, or moved on since it was indexed
                continue
            # Whatever it held, it stays an hour, marked with this tick: the clock runs on event
            # time, and records read again after a crash may lie hours of it behind; popped, the
            # entry would let them meet again, elsewhere, and count twice.
            joins[key] = entry.expired(tick.position, keep_until=now + KEEP_EXPIRED)
            kept.add(partition, KEEP_EXPIRED, now + KEEP_EXPIRED, key)
            if _unreviewed(entry):
                assert entry.left is not None
                count_unreviewed(_count(model_id, entry.left, tick), entry.left)
            elif not entry.paired and entry.right is not None:
                REVIEWS_UNMATCHED.labels(model_id).inc()


def _unreviewed(entry: ReviewJoin) -> bool:
    """An output that was due for review and fell due without one."""
    return not entry.paired and entry.left is not None and entry.left.due


@concern("judge_oversight", HANDOVER_TOPIC)
async def judge_oversight(items: list[Item]) -> None:
    """Second stage: each record's counts into its day's tally, once; the windows judged."""
    models: dict[str, ModelOversight] = {}
    tallies: dict[bytes, dict[Position, Tally]] = {}  # (model, version, day) -> each record's counts, in order
    last_of: dict[str, Item] = {}  # model_id -> its latest handover: where its tables are written
    for item in items:
        if item.handover is None or not item.handover.counts:
            continue
        model_id = item.handover.model_id
        last_of[model_id] = item
        if model_id not in models:
            models[model_id] = oversight_state.get(model_id.encode()) or ModelOversight()
        for key, counted in _by_record(model_id, item.handover.counts, models[model_id]).items():
            by_record = tallies.setdefault(key, {})
            for at, tally in counted.items():
                by_record.setdefault(at, tally)  # a record's counts handed on twice (after a crash) count once
    for key, by_record in tallies.items():
        writing_for(last_of[model_of(key)].record)
        day = oversight_days.get(key) or OversightDay()
        day.add(by_record)
        oversight_days[key] = day
    for model_id, version in sorted({tuple(key.decode().split("\x1f")[:2]) for key in tallies}):
        writing_for(last_of[model_id].record)
        await _judge_oversight(model_id, version, models[model_id].versions[version])
    for model_id, model in models.items():
        writing_for(last_of[model_id].record)
        oversight_state[model_id.encode()] = model


def _by_record(
    model_id: str, counts: Iterable[OversightCount], model: ModelOversight
) -> dict[bytes, dict[Position, Tally]]:
    """One handover's counts summed per day and record (a tick counts many outputs)."""
    out: dict[bytes, dict[Position, Tally]] = {}
    for count in counts:
        model.versions.setdefault(count.model_version, RollingState()).counted(count.made_at, count.inference_id)
        key = table_key(model_id, count.model_version, count.made_at.date().isoformat())
        by_record = out.setdefault(key, {})
        by_record[count.at] = by_record.get(count.at, Tally()) + count.tally
    return out


async def _judge_oversight(model_id: str, version: str, state: RollingState) -> None:
    policy = monitoring.for_model(model_id).oversight
    window = Tally()
    for day in state.window(policy.window_days):
        if stored := oversight_days.read(table_key(model_id, version, day.isoformat())):
            window += stored.tally
    oversight, transparency = (
        assess(window, policy),
        assess_transparency(window, transparency_of(model_id)),
    )
    for finding in oversight:
        OVERSIGHT.labels(model_id, version, finding.kind).set(finding.value)
    for finding in transparency:
        TRANSPARENCY.labels(model_id, version, finding.kind).set(finding.value)
    for signal in transitions(state, model_id, version, window, [*oversight, *transparency], policy.window_days):
        await emit(signal)
        # A TransparencyRestored is a TransparencyViolation too, as an OversightRestored is a violation.
        await emit(transparency_alert(signal) if isinstance(signal, TransparencyViolation) else oversight_alert(signal))
        log.warning("worker.oversight", model_id=model_id, model_version=version, kind=signal.kind,
                    event_type=signal.event_type)  # fmt: skip
    # From the state, so that a restarted worker shows what stands.
    for gauge, findings in ((OVERSIGHT_ACTIVE, oversight), (TRANSPARENCY_ACTIVE, transparency)):
        for finding in findings:
            gauge.labels(model_id, version, finding.kind).set(int(finding.kind in state.standing))
