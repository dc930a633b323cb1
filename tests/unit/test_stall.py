"""The watchdog's rule (vigil/stall.py): stalled only when records wait behind committed offsets
that have not moved for the limit, after the worker has committed once; idle, restoring and
unanswered moments are not stalls."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from vigil.stall import StallWatch

P, Q = ("inference.v1", 0), ("clock.v1", 1)


def test_a_worker_whose_offsets_stand_still_behind_waiting_records_is_stalled_after_the_limit() -> None:
    watch = StallWatch(limit=60)
    assert watch.observe({P: 10, Q: 5}, {P: 10, Q: 5}, 0) is None
    assert watch.observe({P: 20, Q: 5}, {P: 30, Q: 5}, 15) is None  # moved: armed, not stuck
    assert watch.observe({P: 20, Q: 5}, {P: 40, Q: 6}, 30) is None  # stuck from here
    assert watch.observe({P: 20, Q: 5}, {P: 50, Q: 7}, 75) is None  # 45 s
    assert watch.observe({P: 20, Q: 5}, {P: 60, Q: 8}, 90) == 60
    assert watch.lag({P: 60, Q: 8}) == 43


def test_idle_restoring_and_unanswered_are_not_stalls() -> None:
    watch = StallWatch(limit=60)
    # Restoring after a start: nothing committed yet, or committed offsets not moved since the start.
    for now in range(0, 600, 15):
        assert watch.observe({P: 10}, {P: 500}, now) is None
    # Once it commits, standing still behind counts; an unanswered look starts the clock again.
    assert watch.observe({P: 11}, {P: 500}, 600) is None
    assert watch.observe({P: 11}, {P: 500}, 615) is None
    watch.unknown()
    assert watch.observe({P: 11}, {P: 500}, 670) is None
    assert watch.observe({P: 11}, {P: 500}, 700) is None  # 30 s since the broker answered again
    assert watch.observe({P: 11}, {P: 500}, 730) == 60
    # Idle: every record taken, nothing moves, never a stall.
    watch.restarted()
    watch.observe({P: 500}, {P: 500}, 800)
    watch.observe({P: 501}, {P: 501}, 815)
    assert all(watch.observe({P: 501}, {P: 501}, 815 + 15 * k) is None for k in range(1, 100))


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 5)), min_size=1, max_size=60))
def test_offsets_that_keep_moving_are_never_a_stall(steps: list[tuple[int, int]]) -> None:
    watch, offset, now = StallWatch(limit=30), 0, 0.0
    watch.observe({P: 0}, {P: 1}, now)
    for gap, waiting in steps:
        offset, now = offset + 1, now + 15 * (gap + 1)  # it moves at every look, however far apart
        assert watch.observe({P: offset}, {P: offset + waiting}, now) is None
