"""The event store refuses edits, and `vigil verify` names a row edited behind its back."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from tests.conftest import Pipeline
from tests.integration.helpers import emit_all, hospital_events, wait_recorded

pytestmark = pytest.mark.integration


def verify() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", "verify"], capture_output=True, text=True, env=os.environ, check=False
    )


async def test_edits_are_refused_and_a_hand_edit_is_named_by_verify(pipeline: Pipeline, db, tmp_path) -> None:
    from vigil_sdk import AsyncEmitter

    items = hospital_events(50, seed=505)
    async with AsyncEmitter(
        kafka=pipeline.settings.kafka_bootstrap, topic_prefix=pipeline.settings.topic_prefix, spool_dir=tmp_path
    ) as emitter:
        await emit_all(emitter, items)
    ids = [e["event_id"] for e in items]
    await wait_recorded(db, ids, 60)

    async with db.connect() as conn:
        # Raw SQL, as someone at the database would read it.
        query = text("SELECT seq, event_id::text, body FROM events WHERE event_id = :id")
        seq, event_id, body = (await conn.execute(query, {"id": ids[25]})).one()

    with pytest.raises(DBAPIError, match="append-only"):
        async with db.begin() as conn:
            await conn.execute(text("UPDATE events SET body = body WHERE seq = :seq"), {"seq": seq})

    assert verify().returncode == 0

    # Someone with the table owner's rights switches the trigger off and edits a row.
    forged = body.replace('"model_id":"', '"model_id":"x', 1)
    assert forged != body
    async with db.begin() as conn:
        await conn.execute(text("ALTER TABLE events DISABLE TRIGGER events_no_update_delete"))
        await conn.execute(text("UPDATE events SET body = :b WHERE seq = :seq"), {"b": forged, "seq": seq})
        await conn.execute(text("ALTER TABLE events ENABLE TRIGGER events_no_update_delete"))
    try:
        result = verify()
        assert result.returncode == 1
        assert f"seq={seq}" in result.stderr and event_id in result.stderr and "altered" in result.stderr
    finally:
        async with db.begin() as conn:
            await conn.execute(text("ALTER TABLE events DISABLE TRIGGER events_no_update_delete"))
            await conn.execute(text("UPDATE events SET body = :b WHERE seq = :seq"), {"b": body, "seq": seq})
            await conn.execute(text("ALTER TABLE events ENABLE TRIGGER events_no_update_delete"))
    assert verify().returncode == 0
