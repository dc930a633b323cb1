"""What the worker's first stage hands to its second survives its codec unchanged: values keep
their types, positions stay positions, and a batch's counts from one record add up once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from vigil.handover import DriftInput, Handover, OversightCount
from vigil.join import Position
from vigil.oversight import OversightDay, Tally

T0 = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)
values = st.dictionaries(
    st.text(min_size=1, max_size=8),
    st.one_of(st.none(), st.integers(-(10**6), 10**6), st.floats(allow_nan=False, allow_infinity=False), st.text()),
    max_size=5,
)


@given(st.lists(values, max_size=5))
def test_drift_inputs_round_trip_with_their_types(rows: list[dict]) -> None:
    handover = Handover(
        model_id="m",
        inferences=[
            DriftInput(model_version="1", occurred_at=T0, at=Position("inference.v1", 3, n), values=row)
            for n, row in enumerate(rows)
        ],
    )
    back = Handover.model_validate_json(handover.model_dump_json())
    assert back == handover
    assert all(isinstance(i.at, Position) for i in back.inferences)
    for sent, got in zip(handover.inferences, back.inferences, strict=True):
        assert {k: type(v) for k, v in sent.values.items()} == {k: type(v) for k, v in got.values.items()}


def test_a_record_handed_on_twice_counts_once_per_day() -> None:
    count = OversightCount(
        model_version="1", made_at=T0, inference_id=uuid.uuid4(), at=Position("review.v1", 0, 7),
        tally=Tally(outputs=1, in_time=1),
    )  # fmt: skip
    day = OversightDay()
    for _ in range(2):  # the first stage crashed after handing it on, and read the record again
        again = Handover.model_validate_json(Handover(model_id="m", counts=[count]).model_dump_json()).counts[0]
        day.add({again.at: again.tally})
    assert (day.tally.outputs, day.tally.in_time) == (1, 1)


def test_a_large_handover_goes_in_pieces_that_keep_each_kind_in_order() -> None:
    inputs = [
        DriftInput(model_version="1", occurred_at=T0, at=Position("inference.v1", 0, n), values={}) for n in range(450)
    ]
    counts = [
        OversightCount(
            model_version="1", made_at=T0, inference_id=uuid.uuid4(), at=Position("review.v1", 1, n), tally=Tally()
        )
        for n in range(30)
    ]
    pieces = Handover(model_id="m", inferences=inputs, counts=counts).pieces(most=200)
    assert [len(p.inferences) for p in pieces] == [200, 200, 50]
    assert [i for p in pieces for i in p.inferences] == inputs and [c for p in pieces for c in p.counts] == counts
    assert Handover(model_id="m").pieces() == []


@given(st.lists(st.integers(0, 5), max_size=60), st.integers(1, 7))
def test_a_records_counts_stay_in_one_piece(records: list[int], most: int) -> None:
    """A tick counts many outputs, all at its own position: pieces never part them."""
    offsets = sorted(records)
    counts = [
        OversightCount(
            model_version="1", made_at=T0, inference_id=uuid.uuid4(), at=Position("clock.v1", 0, n), tally=Tally()
        )
        for n in offsets
    ]
    pieces = Handover(model_id="m", counts=counts).pieces(most=most)
    assert [c for p in pieces for c in p.counts] == counts
    holders = {n: {i for i, p in enumerate(pieces) for c in p.counts if c.at.offset == n} for n in offsets}
    assert all(len(held) == 1 for held in holders.values())
