"""While a broker is down, the Kafka client's repeated errors are logged once per period, with a
count of those held back."""

from __future__ import annotations

import logging

from vigil_runtime.observability import RepeatFilter


def record(msg: str, *args: object, name: str = "aiokafka.conn") -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, args, None)


def test_a_repeated_message_passes_once_per_period_and_then_says_how_many_were_held(monkeypatch) -> None:
    clock = iter([0.0, 1.0, 2.0, 3.0, 31.0])
    monkeypatch.setattr("vigil_runtime.observability.time.monotonic", lambda: next(clock))
    repeats = RepeatFilter(every=30)
    passed = [repeats.filter(r) for r in (record("Unable connect to node with id %s", n) for n in range(3))]
    assert passed == [True, False, False]
    assert repeats.filter(record("Unable to update metadata from %s", 1))  # another message
    later = record("Unable connect to node with id %s", 7)
    assert repeats.filter(later) and later.getMessage() == (
        "Unable connect to node with id 7 (and 2 more like it in the last 30 s)"
    )
