"""Each partition read in order and without gaps (vigil.offsets), without a broker."""

from __future__ import annotations

from vigil.offsets import PATIENCE_SECONDS, Reading


def test_a_gap_drops_what_follows_and_seeks_back_until_the_missing_record_comes() -> None:
    reading = Reading[str]()
    assert all(reading.admit("p", offset) for offset in (4, 5, 6))
    assert not reading.admit("p", 8) and not reading.admit("p", 9)  # 7 never handed over
    assert reading.admit("q", 0)  # other partitions go on
    assert reading.to_seek(0.0) == ({"p": 7}, [])
    assert reading.to_seek(0.2) == ({}, [])  # nothing dropped since
    assert all(reading.admit("p", offset) for offset in (7, 8, 9))  # sought back: in order again


def test_records_read_again_are_taken_and_a_gap_that_never_fills_is_given_up_after_a_while() -> None:
    reading = Reading[str]()
    assert reading.admit("p", 10) and reading.admit("p", 3) and reading.admit("p", 4)  # read again after a crash
    # Batches every 0.2 s still hold records fetched before the seek: many seeks, none given up.
    for n in range(int(PATIENCE_SECONDS / 0.2)):
        assert not reading.admit("p", 9)
        assert reading.to_seek(100.0 + n * 0.2) == ({"p": 5}, [])
    assert not reading.admit("p", 9)
    assert reading.to_seek(100.0 + PATIENCE_SECONDS) == ({}, ["p"])  # gone from the log: what comes is taken
    assert reading.admit("p", 9)


def test_a_gap_that_fills_starts_its_patience_anew() -> None:
    reading = Reading[str]()
    assert reading.admit("p", 1) and not reading.admit("p", 3)
    assert reading.to_seek(0.0) == ({"p": 2}, [])
    assert reading.admit("p", 2) and reading.admit("p", 3)  # the seek took effect
    assert not reading.admit("p", 5)
    assert reading.to_seek(PATIENCE_SECONDS - 1) == ({"p": 4}, [])  # a new gap, not the old one's time


def test_a_partition_kept_through_a_rebalance_continues_where_it_was_and_a_new_one_anywhere() -> None:
    reading = Reading[str]()
    assert reading.admit("kept", 40) and reading.admit("moved", 7)
    reading.revoke(["kept", "moved"])
    reading.assign(["kept", "new"])
    assert not reading.admit("kept", 42)  # 41 skipped across the rebalance
    assert reading.admit("new", 1000)


def test_a_commit_goes_no_further_than_the_first_record_not_yet_taken_in_order() -> None:
    reading = Reading[str]()
    assert reading.admit("p", 4) and reading.admit("p", 5)
    assert not reading.admit("p", 8)  # 6 and 7 never handed over; 8 acknowledged by Faust all the same
    assert reading.committable("p", 9) == 6  # what Faust would commit, gaps and dropped records counted
    assert reading.committable("p", 5) == 5  # behind what was taken: as it is
    assert reading.committable("p", None) is None and reading.committable("new", 12) == 12
