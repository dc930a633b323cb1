"""The either-order join without a broker: any arrival order, with repeats, meets each pair once;
a right side naming another model is refused; what falls due is found by lane; parked pairs go
after their grace."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from vigil.join import DueIndex, Entry, Met, Parked, Position, arrive

T0 = datetime(2026, 3, 1, tzinfo=UTC)


class Inference(BaseModel):
    key: str
    model_id: str


class Answer(BaseModel):
    key: str
    model_id: str
    n: int  # which of a key's answers (a second opinion differs; a repeat does not)


Join = Entry[Inference, Answer]


def side(event: Inference | Answer, offset: int) -> Join:
    base = Join(model_id=event.model_id, partition=0, due=T0 + timedelta(minutes=offset % 7))
    if isinstance(event, Inference):
        return base.holding(place(event, offset), left=event)
    return base.holding(place(event, offset), right=event)


def place(event: Inference | Answer, offset: int) -> Position:
    return Position("inferences" if isinstance(event, Inference) else "answers", 0, offset)


def fold(events: list[Inference | Answer]) -> tuple[dict[str, Join], list[Met], list[tuple[str, Answer]]]:
    """What an agent does, over a plain dict: each arrival in turn, the entry written unless a repeat."""
    table: dict[str, Join] = {}
    met, refused = [], []
    for offset, event in enumerate(events):
        arrival = arrive(table.get(event.key), side(event, offset), place(event, offset), "answer", "the test")
        if not arrival.repeat:
            table[event.key] = arrival.entry
        if arrival.met and not arrival.repeat:
            met.append(arrival.met)
        if arrival.refused:
            refused.append((event.key, arrival.refused.right))
    return table, met, refused


@st.composite
def streams(draw: st.DrawFn, answers_per_key: int = 1) -> list[Inference | Answer]:
    """Keys with an inference, answers, both or neither; every record possibly repeated; shuffled."""
    events: list[Inference | Answer] = []
    for k in range(draw(st.integers(1, 8))):
        key, model = f"i{k}", draw(st.sampled_from(["ed-triage", "mammo"]))
        if draw(st.booleans()):
            events += [Inference(key=key, model_id=model)] * draw(st.integers(1, 3))
        for n in range(draw(st.integers(0, answers_per_key))):
            events += [Answer(key=key, model_id=model, n=n)] * draw(st.integers(1, 3))
    return draw(st.permutations(events))


@given(streams())
def test_any_order_with_repeats_meets_each_pair_exactly_once(events: list[Inference | Answer]) -> None:
    table, met, refused = fold(events)
    keys_with = {side: {e.key for e in events if isinstance(e, side)} for side in (Inference, Answer)}
    both = keys_with[Inference] & keys_with[Answer]
    assert sorted(m.left.key for m in met) == sorted(both)
    assert all(m.left.key == m.right.key for m in met)
    assert not refused
    for key, entry in table.items():
        assert entry.paired == (key in both)
        assert entry.met_at is not None if entry.paired else entry.met_at is None
        assert (entry.left is None) != (entry.right is None)  # a paired entry keeps the side that waited


@given(streams(), st.randoms(use_true_random=False))
def test_the_same_records_in_another_order_give_the_same_pairs_and_state(events, random) -> None:
    shuffled = list(events)
    random.shuffle(shuffled)
    (table_a, met_a, _), (table_b, met_b, _) = fold(events), fold(shuffled)
    assert sorted(m.left.key for m in met_a) == sorted(m.left.key for m in met_b)

    def state(table: dict[str, Join]) -> dict[str, tuple]:  # which side waited for a pair depends on the order
        return {k: (True,) if e.paired else (False, e.left, e.right) for k, e in table.items()}

    assert state(table_a) == state(table_b)


@given(streams(answers_per_key=3))
def test_with_second_opinions_the_first_answer_to_arrive_is_the_one_counted(events) -> None:
    _, met, _ = fold(events)
    for m in met:
        first = next(e for e in events if isinstance(e, Answer) and e.key == m.left.key)
        inference_at = next(i for i, e in enumerate(events) if isinstance(e, Inference) and e.key == m.left.key)
        answers_before = [e for e in events[:inference_at] if isinstance(e, Answer) and e.key == m.left.key]
        assert m.right == (answers_before[0] if answers_before else first)


@given(st.permutations([Inference(key="i", model_id="a"), Answer(key="i", model_id="b", n=0),
                        Answer(key="i", model_id="a", n=1)]))  # fmt: skip
def test_an_answer_naming_another_model_is_refused_and_the_inference_waits(events) -> None:
    table, met, refused = fold(events)
    assert all(m.left.model_id == m.right.model_id == "a" for m in met)
    assert all(answer.model_id == "b" for _, answer in refused)
    assert len(met) <= 1 and len(refused) <= 1
    if not isinstance(events[-1], Inference):
        # The inference met each answer as it came: the wrong one refused, the right one paired.
        # (Before their inference, two answers cannot tell which is wrong: the first one waits.)
        assert len(met) == 1 and len(refused) == 1
    assert table["i"].paired == bool(met)


def test_the_refused_answer_is_dead_lettered_where_it_was_read_even_when_it_came_first() -> None:
    answer = Answer(key="i", model_id="b", n=0)
    waiting = side(answer, 42)
    inference = Inference(key="i", model_id="a")
    arrival = arrive(waiting, side(inference, 43), place(inference, 43), "answer", "the test")
    assert arrival.refused is not None and arrival.refused.right_from == Position("answers", 0, 42)
    assert "answer names model 'b', but its inference was made by 'a'" in arrival.refused.why.reason
    assert arrival.entry.left is not None and arrival.entry.right is None


def test_a_paired_entry_keeps_the_later_due_time_so_repeats_are_absorbed_until_both_are_past() -> None:
    inference, answer = side(Inference(key="i", model_id="a"), 1), side(Answer(key="i", model_id="a", n=0), 5)
    arrival = arrive(inference, answer, Position("answers", 0, 5), "answer", "the test")
    assert arrival.entry.paired and arrival.entry.due == max(inference.due, answer.due)
    assert arrive(arrival.entry, inference, Position("inferences", 0, 1), "answer", "the test").repeat


@given(streams())
def test_only_the_record_that_completed_a_pair_read_again_gives_the_pair_again(events) -> None:
    """After a crash, records are read again from the last commit, in another order across topics:
    the pair's entry may have been kept and the counts made of it not. Only a re-read of the
    record that completed it gives it again (the concern's counts tell whether they took it), so
    whatever is read again, a pair is given at most once more, and the same one."""
    table, met, _ = fold(events)
    first = {m.left.key: m for m in met}
    for offset, event in enumerate(events):
        if (entry := table.get(event.key)) is None:
            continue
        arrival = arrive(entry, side(event, offset), place(event, offset), "answer", "the test")
        if arrival.met:
            assert arrival.repeat and arrival.entry is entry and arrival.met == first[event.key]
            assert arrival.met.at == place(event, offset)
        else:
            assert arrival.repeat or not entry.paired


@given(st.booleans())
def test_a_record_that_brings_both_sides_read_again_gives_the_pair_again_once(inference_first: bool) -> None:
    """A handover record carries an inference's pair and its review at one place: read again
    after a rebalance, both sides come again, and the pair is given once more, not refused or
    broken on the side that waited."""
    at = Position("handover", 2, 358)
    inference, answer = Inference(key="i", model_id="m"), Answer(key="i", model_id="m", n=0)
    base = Join(model_id="m", partition=2, due=T0)
    sides = [base.holding(at, left=inference), base.holding(at, right=answer)]
    if not inference_first:
        sides.reverse()
    entry = arrive(None, sides[0], at, "answer", "the test").entry
    first = arrive(entry, sides[1], at, "answer", "the test")
    assert first.met is not None and not first.repeat
    again = [arrive(first.entry, new, at, "answer", "the test") for new in sides]
    assert all(a.repeat and a.again for a in again)
    assert [a.met for a in again] == [None, first.met]


@given(st.lists(st.tuples(st.integers(0, 3), st.sampled_from(["", "m1", "m2"]), st.integers(0, 100)), max_size=60),
       st.integers(0, 100))  # fmt: skip
def test_the_due_index_gives_exactly_what_is_due_in_each_lane(entries, cut) -> None:
    index = DueIndex[int]()
    for n, (partition, name, minutes) in enumerate(entries):
        index.add((partition, name), T0 + timedelta(minutes=minutes), n)
    now = T0 + timedelta(minutes=cut)
    for partition in range(4):
        for lane in index.lanes(partition):
            popped = index.due(lane, now)
            expected = [n for n, (p, name, m) in enumerate(entries) if (p, name) == lane and m <= cut]
            assert sorted(popped) == expected
            assert [entries[n][2] for n in popped] == sorted(entries[n][2] for n in popped)  # earliest first
            assert index.due(lane, now) == []


def test_a_partition_taken_away_is_filled_again_from_its_table_when_it_comes_back() -> None:
    index = DueIndex[str]()
    index.fill(1, [(1, "", T0, "a", None)])
    index.add((2, ""), T0, "b")
    assert index.filled(1) and not index.filled(2)
    index.forget([1])
    assert not index.filled(1) and index.lanes(1) == [] and index.lanes(2) == [(2, "")]


def test_a_refill_after_a_rebalance_leaves_the_partitions_filled_before_as_they_were() -> None:
    index = DueIndex[str]()
    index.fill(1, [(1, "", T0, "a", None)])
    index.fill(3, [(1, "", T0, "a", None), (3, "", T0, "c", None)])  # partition 3 assigned later: one more scan
    assert index.due((1, ""), T0) == ["a"] and index.due((3, ""), T0) == ["c"]


def test_parked_pairs_go_after_their_grace_and_the_others_stay() -> None:
    parked = Parked[Inference, Answer](partition=3)
    for minutes, key in ((0, "old"), (9, "new")):
        at = Position("answers", 3, minutes)
        met = Met(Inference(key=key, model_id="a"), Answer(key=key, model_id="a", n=0), at, at)
        parked.park(met, T0 + timedelta(minutes=minutes))
        parked.park(met, T0 + timedelta(minutes=minutes))  # its completing record read again: parked once
    gone = parked.overstayed(T0 + timedelta(minutes=12), grace=timedelta(minutes=5))
    assert [p.left.key for p in gone] == ["old"] and [p.left.key for p in parked.pairs] == ["new"]
    restored = Parked[Inference, Answer].model_validate_json(parked.model_dump_json())
    assert restored == parked  # the stored form reads back as it was


def test_a_tick_read_again_finds_what_it_expired_and_earlier_ticks_marks_are_dropped() -> None:
    index = DueIndex[str]()
    tick = Position("clock", 1, 10)
    index.fill(1, [(1, None, T0, "a", tick), (1, None, T0, "b", Position("clock", 1, 4)), (1, "m", T0, "c", None)])
    assert index.lanes(1) == [(1, "m")] and index.due((1, "m"), T0) == ["c"]  # the marked ones are kept elsewhere
    assert index.expired_by(Position("clock", 1, 10)) == {"a"}
    assert index.expired_by(Position("clock", 1, 4)) == set()  # dropped when tick 10 came: ticks come in order
    assert index.expired_by(tick) == set()  # once
