"""The event store: its tables (tables.py), the write side (event_store.py: the recorder's
append with the hash chain and tracking records, and the chain's verification), the projections
kept in the append's transaction and their replay (projections.py, replay.py), and the read side
(reads.py). Nothing outside this package touches the tables."""
