"""The one settings object. Every value comes from an environment variable `VIGIL_<NAME>`."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict

from vigil.events import ALL_TOPICS

Role = Literal["emitter", "safety_officer", "auditor", "admin"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VIGIL_", extra="ignore")

    kafka_bootstrap: str = "127.0.0.1:9092"
    topic_prefix: str = ""
    topic_partitions: int = 4
    database_url: str = "postgresql+asyncpg://vigil:vigil@127.0.0.1:5432/vigil"

    worker_id: str = "vigil-worker"
    worker_metrics_port: int = 9101
    recorder_metrics_port: int = 9102
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # token -> role. Tokens are secrets: set them from a secret store in production.
    api_tokens: dict[str, Role] = {}

    prometheus_url: str = "http://127.0.0.1:9090"
    alertmanager_url: str = "http://127.0.0.1:9094"

    home: Path = Path.home() / ".cache" / "vigil"
    log_format: Literal["json", "console"] = "json"
    log_level: str = "info"

    def topic(self, name: str) -> str:
        """The Kafka topic for a logical topic name such as `inference.v1`."""
        return self.topic_prefix + name

    def topics(self, names: tuple[str, ...] = ALL_TOPICS) -> list[str]:
        return [self.topic(n) for n in names]

    def logical_topic(self, topic: str) -> str:
        return topic.removeprefix(self.topic_prefix)


@lru_cache
def get_settings() -> Settings:
    return Settings()
