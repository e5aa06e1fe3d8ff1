"""docker-compose.yml stays in step with the code (no Docker engine here to run it): every
camcount service runs a real sub-command, sets only settings its role reads, and has a health
check; dependencies exist; the GPU worker reserves a GPU."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from balancer.settings import BalancerSettings
from broadcaster.settings import BroadcasterSettings
from camcount.cli import build_parser
from contracts.settings import CommonSettings
from ingest.settings import IngestSettings
from registry.settings import RegistrySettings
from workers.settings import WorkerSettings

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"
SETTINGS: dict[str, type[BaseSettings]] = {
    "registry": RegistrySettings, "broadcaster": BroadcasterSettings,
    "balancer": BalancerSettings, "worker": WorkerSettings, "ingest": IngestSettings,
    "migrate": CommonSettings, "simulate": CommonSettings,
}


def services() -> dict[str, dict[str, Any]]:
    document = yaml.safe_load(COMPOSE.read_text())
    found: dict[str, dict[str, Any]] = document["services"]
    return found


CAMCOUNT = {name: s for name, s in services().items() if s.get("image") == "camcount:local"}


def test_the_stack_has_every_role_and_the_servers() -> None:
    commands = {s["command"][0] for s in CAMCOUNT.values()}
    assert commands >= {"registry", "broadcaster", "balancer", "worker", "ingest", "migrate"}
    assert {"rabbitmq", "postgres"} <= set(services())


@pytest.mark.parametrize("name", sorted(CAMCOUNT))
def test_service_runs_a_real_command_with_known_settings(name: str) -> None:
    service = CAMCOUNT[name]
    build_parser().parse_args(service["command"])  # exits (fails the test) if unknown
    fields = set(SETTINGS[service["command"][0]].model_fields)
    unknown = {key for key in service.get("environment", {}) if key.lower() not in fields}
    assert not unknown, f"{name} sets {unknown}, which its role does not read"
    if service["command"][0] != "migrate":
        assert "healthcheck" in service, f"{name} has no health check"


def test_dependencies_exist_and_gpu_worker_reserves_a_gpu() -> None:
    every = services()
    for name, service in every.items():
        for dependency in service.get("depends_on", {}) or {}:
            assert dependency in every, f"{name} depends on unknown {dependency}"
    devices = every["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    gpu_env = every["worker-gpu"]["environment"]
    assert gpu_env["USE_GPU"] == "true" and gpu_env["DETECTOR"] == "onnx"
    assert gpu_env["MODEL_PATH"].startswith("/models/")
    assert any(v.startswith("./models:/models") for v in every["worker-gpu"]["volumes"])
