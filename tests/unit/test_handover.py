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
