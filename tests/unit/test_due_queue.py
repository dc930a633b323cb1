"""The queue of when join entries fall due, over a plain dict: nothing is given before it is due,
everything once it is, the same after a restart reads the queue from its table, and after a
crash that lost some of its places and read their records again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from vigil.due_queue import DueQueue

T0 = datetime(2026, 3, 1, tzinfo=UTC)
DELAYS = [timedelta(hours=1), timedelta(days=90)]

# (partition, which delay, minutes since the last add): keys are added as the wall clock moves on.
adds = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 1), st.integers(0, 600)), max_size=80)


def fill(queue: DueQueue, added: list[tuple[int, int, int]]) -> dict[bytes, tuple[int, datetime]]:
    """Adds the keys as they come; returns each key's partition and due time."""
    now, expected = T0, {}
    for n, (partition, delay, minutes) in enumerate(added):
        now += timedelta(minutes=minutes)
        key = f"k{n}".encode()
        queue.add(partition, DELAYS[delay], now + DELAYS[delay], key)
        expected[key] = (partition, now + DELAYS[delay])
    return expected


def popped(queue: DueQueue, now: datetime) -> dict[bytes, int]:
    return {key: partition for partition in range(4) for key in queue.due(partition, now)}


@given(adds, st.integers(0, 200 * 24 * 60))
def test_a_key_is_given_once_it_is_due_and_not_before(added, cut) -> None:
    queue = DueQueue("join", {})
    expected = fill(queue, added)
    now = T0 + timedelta(minutes=cut)
    first = popped(queue, now)
    assert first == {key: p for key, (p, due) in expected.items() if due <= now}
    assert popped(queue, now) == {}  # once
    rest = popped(queue, T0 + timedelta(days=1000))
    assert rest == {key: p for key, (p, due) in expected.items() if due > now}


@given(adds, st.integers(0, 200 * 24 * 60))
def test_a_restarted_worker_reads_the_queue_from_its_table_as_it_was(added, cut) -> None:
    table: dict[bytes, bytes] = {}
    before = DueQueue("join", table)
    fill(before, added)
    for now in (T0 + timedelta(minutes=cut), T0 + timedelta(days=1000)):
        restarted = dict(table)
        assert popped(DueQueue("join", restarted), now) == popped(before, now)
        assert restarted == table  # and it leaves the table as the running one does
    assert not [key for key in table if key.count(b"\x1f") == 4]  # every place read is gone from the table


@given(adds, st.sets(st.integers(0, 79)))
def test_places_lost_in_a_crash_are_passed_over_and_their_keys_added_again_are_given(added, lost) -> None:
    table: dict[bytes, bytes] = {}
    expected = fill(DueQueue("join", table), added)
    places = sorted(key for key in table if key.count(b"\x1f") == 4)
    for n in lost & set(range(len(places))):  # the lane's ends reached the changelog, these places not
        del table[places[n]]
    after = DueQueue("join", table)
    fill(after, added)  # their records read again: each key added again (Arrival.again)
    given_keys = [key for partition in range(4) for key in after.due(partition, T0 + timedelta(days=1000))]
    assert set(given_keys) == set(expected)  # some twice: the caller checks each against its entry


def test_a_queue_read_after_its_partition_was_taken_away_sees_what_the_other_worker_added() -> None:
    table: dict[bytes, bytes] = {}
    ours, theirs = DueQueue("join", table), DueQueue("join", table)
    ours.add(2, DELAYS[0], T0, b"a")
    ours.forget([2])  # revoked: the other worker adds to the partition meanwhile
    theirs.add(2, DELAYS[0], T0, b"b")
    assert ours.due(2, T0) == [b"a", b"b"]


def test_the_joins_queues_are_apart_in_one_table() -> None:
    table: dict[bytes, bytes] = {}
    outcomes, readers = DueQueue("outcome-join", table), DueQueue("reader-join", table)
    outcomes.add(0, DELAYS[1], T0, b"x")
    readers.add(0, DELAYS[0], T0, b"y")
    assert outcomes.due(0, T0) == [b"x"] and readers.due(0, T0) == [b"y"]
