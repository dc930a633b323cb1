"""The SDK and the exported JSON Schemas stay in step with vigil/events.py."""

import json
from pathlib import Path

import jsonschema
import pytest
from vigil_sdk.spool import Spool
from vigil_sdk.transports import TOPIC_OF as SDK_TOPIC_OF
from vigil_sdk.transports import partition_key as sdk_partition_key

from vigil.events import INPUT_EVENTS, TOPIC_OF, partition_key
from vigil.schemas import json_schemas
from vigil.validation import decode

from .test_validation import hospital_events

ROOT = Path(__file__).resolve().parents[2]


def test_sdk_routes_every_input_event_like_the_server() -> None:
    assert {t: TOPIC_OF[t] for t in INPUT_EVENTS} == SDK_TOPIC_OF


def test_sdk_keys_every_input_event_like_the_server() -> None:
    events = hospital_events(40)
    assert {e["event_type"] for e in events} >= {"InferenceMade", "OutcomeObserved", "ReviewRecorded"}
    for event in events:
        parsed = decode(json.dumps(event).encode(), TOPIC_OF[event["event_type"]])
        assert sdk_partition_key(event) == partition_key(parsed), event["event_type"]


def test_committed_json_schemas_are_current() -> None:
    for name, schema in json_schemas().items():
        committed = json.loads((ROOT / "schemas" / f"{name}.v1.json").read_text())
        assert committed == schema, f"schemas/{name}.v1.json is stale: run `vigil schema export`"


def test_exported_schemas_accept_valid_events_and_refuse_bad_ones() -> None:
    schemas = json_schemas()
    for event in hospital_events(6):
        jsonschema.validate(event, schemas[event["event_type"]])
    bad = next(e for e in hospital_events(3) if e["event_type"] == "InferenceMade")
    bad["output"] = {"score": 3}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schemas["InferenceMade"])


def test_spool_keeps_events_until_a_drain_succeeds(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append([{"event_id": "a"}, {"event_id": "b"}])
    with pytest.raises(RuntimeError), spool.draining() as pending:
        assert [e["event_id"] for e in pending] == ["a", "b"]
        raise RuntimeError("broker down")
    assert len(spool) == 2
    with spool.draining() as pending:
        assert len(pending) == 2
    assert len(spool) == 0


def test_events_refused_while_draining_are_parked_without_deadlock(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append([{"event_id": "a"}])
    with spool.draining() as pending:
        spool.reject(pending, ["schema: _truth: Extra inputs are not permitted"])  # under the drain's lock
    assert len(spool) == 0
    assert "_truth" in spool.rejected_path.read_text()


def test_spool_skips_a_torn_last_line(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append([{"event_id": "a"}])
    with open(spool.path, "a") as f:
        f.write('{"event_id": "b"')
    with spool.draining() as pending:
        assert pending == [{"event_id": "a"}]
