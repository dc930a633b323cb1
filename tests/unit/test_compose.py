"""docker-compose.yml is right for users with Docker: no engine here, so its content is checked."""

from pathlib import Path
from urllib.parse import urlparse

import yaml

from services.cli import app as cli
from vigil_runtime.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
services = compose["services"]
VIGIL = ("init", "worker", "recorder", "notifier", "estimator", "otlp-reader", "api")


def test_the_whole_stack_is_there() -> None:
    assert set(services) == {*VIGIL, "kafka", "postgres", "prometheus", "alertmanager", "grafana"}
    assert services["kafka"]["image"].startswith("apache/kafka:4.")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft


def test_references_resolve() -> None:
    for name, service in services.items():
        for dependency in service.get("depends_on", []):
            assert dependency in services, f"{name} depends on unknown {dependency}"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in compose["volumes"], f"{name} uses undeclared volume {source}"


def test_vigil_services_use_real_commands_and_settings() -> None:
    commands = {c.name or getattr(c.callback, "__name__", "") for c in cli.registered_commands}
    fields = {f"VIGIL_{name.upper()}" for name in Settings.model_fields}
    for name in VIGIL:
        service = services[name]
        assert service["command"][0] in commands
        for variable in service.get("environment", {}):
            assert variable in fields, f"{name}: {variable} is not a setting"


def test_addresses_agree_with_the_servers() -> None:
    env = services["api"]["environment"]
    host, port = env["VIGIL_KAFKA_BOOTSTRAP"].split(":")
    assert f"PLAINTEXT://{host}:{port}" in services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    db = urlparse(env["VIGIL_DATABASE_URL"])
    pg = services["postgres"]["environment"]
    assert (db.hostname, db.username, db.password, db.path[1:]) == (
        "postgres",
        pg["POSTGRES_USER"],
        pg["POSTGRES_PASSWORD"],
        pg["POSTGRES_DB"],
    )
    assert services["api"]["ports"] == [f"{env['VIGIL_API_PORT']}:{env['VIGIL_API_PORT']}"]


def test_prometheus_scrapes_each_component_where_it_listens() -> None:
    scrape = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    targets = {job["job_name"]: job["static_configs"][0]["targets"][0] for job in scrape["scrape_configs"]}
    assert targets["vigil-worker"] == f"worker:{services['worker']['environment']['VIGIL_WORKER_METRICS_PORT']}"
    assert targets["vigil-recorder"] == f"recorder:{services['recorder']['environment']['VIGIL_RECORDER_METRICS_PORT']}"
    assert targets["vigil-api"] == f"api:{services['api']['environment']['VIGIL_API_PORT']}"
    estimator = services["estimator"]["environment"]["VIGIL_ESTIMATOR_METRICS_PORT"]
    assert targets["vigil-estimator"] == f"estimator:{estimator}"
    default = {name: f.default for name, f in Settings.model_fields.items()}
    local = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.local.yml").read_text())
    local_targets = {job["job_name"]: job["static_configs"][0]["targets"][0] for job in local["scrape_configs"]}
    assert local_targets["vigil-worker"].endswith(f":{default['worker_metrics_port']}")
    assert local_targets["vigil-recorder"].endswith(f":{default['recorder_metrics_port']}")
    assert local_targets["vigil-api"].endswith(f":{default['api_port']}")
    assert local_targets["vigil-estimator"].endswith(f":{default['estimator_metrics_port']}")
