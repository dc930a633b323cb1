"""The one settings object. Every value comes from an environment variable `VIGIL_<NAME>`."""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Literal, get_args

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from vigil.events import ALL_TOPICS

# The policy `vigil up` and `vigil demo` run the worker with, and every command reads, unless
# VIGIL_POLICY_FILE names another: one policy for the worker and the queries.
CHECKOUT_POLICY = Path(__file__).resolve().parent.parent / "deploy" / "policy.yml"

Role = Literal["emitter", "safety_officer", "auditor", "admin"]
ROLES: tuple[str, ...] = get_args(Role)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VIGIL_", extra="ignore")

    kafka_bootstrap: str = "127.0.0.1:9092"
    topic_prefix: str = ""
    topic_partitions: int = 4
    database_url: str = "postgresql+asyncpg://vigil:vigil@127.0.0.1:5432/vigil"

    worker_id: str = "vigil-worker"
    worker_metrics_port: int = 9101
    # Where the worker keeps its tables: in memory (restored from their changelogs at every start),
    # or in RocksDB under `home` (restored from disk; only what changed since is read back). See
    # README, "The worker's state".
    worker_store: Literal["memory", "rocksdb"] = "memory"
    # With RocksDB: what all the worker's databases may hold in memory together, MiB (their block
    # cache, with the write buffers charged to it).
    worker_rocksdb_memory: int = Field(default=128, ge=16)
    # How long a worker that stopped answering (killed, cut off) holds its partitions before the
    # group hands them to the others: the failover time after a crash.
    worker_session_timeout: float = 60.0
    # Standby copies of the other workers' tables that each worker keeps up to date from their
    # changelogs, so that a takeover need not restore them (Faust's `table_standby_replicas`).
    worker_standby_replicas: int = Field(default=1, ge=0)
    # `vigil worker` starts the worker again when its group's committed offsets stand still this many
    # seconds while records wait behind them (vigil/stall.py): set it above the longest a rebalance's
    # table recovery takes. It looks every `worker_stall_check` seconds.
    worker_stall_seconds: float = 300.0
    worker_stall_check: float = 15.0
    clock_interval: float = 10.0  # seconds between checks of the reporting clocks, and between ticks on clock.v1
    # How far an event's times may lie after the moment it was sent (sender clocks drift); later is refused.
    max_clock_skew: timedelta = timedelta(minutes=5)
    registry_grace: float = 300.0  # seconds an outcome's model may take to appear registered before a dead letter
    policy_file: Path | None = CHECKOUT_POLICY if CHECKOUT_POLICY.exists() else None  # YAML, see vigil/policy.py
    recorder_metrics_port: int = 9102
    # "k/n": this is recorder k of n, recording the partitions p with p mod n = k - 1 of every topic
    # into the one hash chain (README, "More than one recorder").
    recorder_share: str = "1/1"
    # The topic an OpenTelemetry Collector's kafka exporter writes GenAI spans to (its default
    # name), read by `vigil otlp-reader` (README, "OpenTelemetry GenAI spans in").
    otlp_topic: str = "otlp_spans"
    otlp_reader_metrics_port: int = 9103
    # How often `vigil estimator` looks for models whose inferences or outcomes changed, and
    # estimates their pending outputs' performance (README, "Estimated performance").
    estimate_interval: float = 60.0
    estimator_metrics_port: int = 9104
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # token -> "role" or "role:person" (the person is named in the audit trail). Tokens are
    # secrets: set them from a secret store in production.
    api_tokens: dict[str, str] = {}
    # Signs the console's session cookies. Unset, each API process draws its own at start: sessions
    # then end when it restarts, and several API processes behind one address need the same value.
    console_secret: SecretStr | None = None
    console_session_minutes: int = Field(480, ge=1, le=7 * 24 * 60)  # a session ends this long after sign-in

    prometheus_url: str = "http://127.0.0.1:9090"
    alertmanager_url: str = "http://127.0.0.1:9094"
    # How long Alertmanager keeps an alert active after the notifier sent it, unless Vigil resolves
    # it first: long enough for Alertmanager's repeat_interval to page again. The worker re-sends
    # incident alerts whose cause stands every half of it (vigil/incident_alerts.py).
    alert_active_for: timedelta = timedelta(hours=24)
    # Where the runbooks (docs/runbooks/<alert>.md in the repository) are published: every alert
    # links `<runbook_base_url>/<alert>.md`. Point it at your wiki or your fork's web view.
    runbook_base_url: str = "docs/runbooks"

    home: Path = Path.home() / ".cache" / "vigil"
    log_format: Literal["json", "console"] = "json"
    log_level: str = "info"

    @field_validator("api_tokens")
    @classmethod
    def _known_roles(cls, tokens: dict[str, str]) -> dict[str, str]:
        for value in tokens.values():
            if value.partition(":")[0] not in ROLES:
                raise ValueError(f"unknown role in {value!r}; roles: {', '.join(ROLES)}")
        return tokens

    @field_validator("recorder_share")
    @classmethod
    def _share(cls, share: str) -> str:
        k, _, n = share.partition("/")
        if not (k.isdigit() and n.isdigit() and 1 <= int(k) <= int(n)):
            raise ValueError(f"{share!r} is not k/n with 1 <= k <= n (e.g. 1/2 and 2/2 for two recorders)")
        return share

    @property
    def recorder_partitions(self) -> tuple[int, int]:
        """(k - 1, n) of `recorder_share`: a partition p is this recorder's if p % n == k - 1."""
        k, n = self.recorder_share.split("/")
        return int(k) - 1, int(n)

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
