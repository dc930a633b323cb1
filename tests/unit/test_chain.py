"""The hash chain names the first altered, inserted or deleted row."""

import dataclasses

from hypothesis import given
from hypothesis import strategies as st

from vigil.chain import GENESIS, ChainRow, first_break, link


def build(bodies: list[str]) -> list[ChainRow]:
    rows, prev = [], GENESIS
    for seq, body in enumerate(bodies, start=1):
        digest = link(prev, body)
        rows.append(ChainRow(seq, f"e{seq}", body, prev, digest))
        prev = digest
    return rows


bodies = st.lists(st.text(max_size=30), min_size=3, max_size=30)


@given(bodies)
def test_an_untouched_chain_holds(items: list[str]) -> None:
    assert first_break(build(items)) is None


@given(bodies, st.data())
def test_an_altered_row_is_named(items: list[str], data: st.DataObject) -> None:
    rows = build(items)
    i = data.draw(st.integers(0, len(rows) - 1))
    rows[i] = dataclasses.replace(rows[i], canonical_event=rows[i].canonical_event + "x")
    problem = first_break(rows)
    assert problem is not None and problem.seq == i + 1 and "altered" in problem.problem


@given(bodies, st.data())
def test_a_deleted_row_is_named(items: list[str], data: st.DataObject) -> None:
    rows = build(items)
    i = data.draw(st.integers(0, len(rows) - 2))
    del rows[i]
    problem = first_break(rows)
    assert problem is not None and problem.seq == i + 1 and "missing" in problem.problem


def test_deleting_the_tail_is_invisible_to_the_chain_alone() -> None:
    # Known limit: a truncated tail is a valid shorter chain. The append-only trigger and the
    # recorder's stored Kafka positions are what guard the tail.
    assert first_break(build(["a", "b", "c"])[:2]) is None


def test_a_rehashed_row_breaks_its_successor() -> None:
    rows = build(["a", "b", "c"])
    forged = link(rows[1].prev_hash, "B")
    rows[1] = dataclasses.replace(rows[1], canonical_event="B", hash=forged)
    problem = first_break(rows)
    assert problem is not None and problem.seq == 3 and "prev_hash" in problem.problem
