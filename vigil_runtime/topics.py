"""Creating Vigil's Kafka topics (idempotent)."""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from tenacity import retry, stop_after_delay, wait_fixed

from vigil_runtime.settings import Settings


@retry(stop=stop_after_delay(60), wait=wait_fixed(1), reraise=True)
async def ensure_topics(settings: Settings) -> list[str]:
    """Creates the topics that do not exist yet; returns the names it created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in settings.topics() if t not in existing]
        if missing:
            await admin.create_topics(
                [NewTopic(t, num_partitions=settings.topic_partitions, replication_factor=1) for t in missing]
            )
        return missing
    finally:
        await admin.close()


async def partitions_of(settings: Settings, topics: list[str]) -> dict[str, list[int]]:
    """Partition numbers of each existing topic."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(topics)
        return {t["topic"]: sorted(p["partition"] for p in t["partitions"]) for t in described if t["error_code"] == 0}
    finally:
        await admin.close()


async def delete_topics(settings: Settings, prefixes: tuple[str, ...]) -> list[str]:
    """Deletes the topics whose names start with any of the prefixes (a test session's or a demo
    run's, with Faust's changelogs named after its worker id); returns their names."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        doomed = [t for t in await admin.list_topics() if t.startswith(prefixes)]
        if doomed:
            await admin.delete_topics(doomed)
        return doomed
    finally:
        await admin.close()
