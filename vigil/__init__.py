"""Vigil's domain core: pure functions over events and time. No Kafka, SQL, HTTP or clock reads."""
