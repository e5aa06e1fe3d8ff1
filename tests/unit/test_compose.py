"""docker-compose.yml stays in step with the code (no Docker engine here to run it): every
camcount service runs a real sub-command, sets only settings its role reads, and has a health
check; dependencies exist; the GPU worker reserves a GPU; the video runner sees the registry's
uploads; the image holds every package."""

from __future__ import annotations

import tomllib
from pathlib import Path, PurePosixPath
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
from videos.settings import VideoRunnerSettings
from workers.settings import WorkerSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
SETTINGS: dict[str, type[BaseSettings]] = {
    "registry": RegistrySettings, "broadcaster": BroadcasterSettings,
    "balancer": BalancerSettings, "worker": WorkerSettings, "ingest": IngestSettings,
    "videos": VideoRunnerSettings, "migrate": CommonSettings, "simulate": CommonSettings,
}


def services() -> dict[str, dict[str, Any]]:
    document = yaml.safe_load(COMPOSE.read_text())
    found: dict[str, dict[str, Any]] = document["services"]
    return found


CAMCOUNT = {name: s for name, s in services().items() if s.get("image") == "camcount:local"}


def test_the_stack_has_every_role_and_the_servers() -> None:
    commands = {s["command"][0] for s in CAMCOUNT.values()}
    assert commands >= {"registry", "broadcaster", "balancer", "worker", "ingest", "migrate",
                        "videos"}
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


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Mount path: source (a volume's name or a host path), without the options."""
    found = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        found[target] = source
    return found


def mount_of(service: dict[str, Any], directory: str) -> str:
    """The mount path under which `directory` lies in the service's container."""
    on = [m for m in mounts(service) if PurePosixPath(directory).is_relative_to(m)]
    assert on, f"{directory} is on no volume"
    return max(on, key=len)


def test_the_video_runner_reads_uploads_and_sources_where_the_registry_put_them() -> None:
    every = services()
    registry, runner = every["registry"], every["videos"]
    # A job keeps the file's path as the registry saw it: the runner must see the same path.
    for setting in ("VIDEO_DIR", "VIDEO_SOURCE_DIR"):
        target = mount_of(registry, registry["environment"][setting])
        assert mounts(runner).get(target) == mounts(registry)[target], setting
    target = mount_of(registry, registry["environment"]["VIDEO_DIR"])
    assert mounts(registry)[target] in yaml.safe_load(COMPOSE.read_text())["volumes"]
    writable = [v for v in runner["volumes"] if v.split(":")[1] == target]
    assert not writable[0].endswith(":ro"), "the runner deletes settled uploads"


def test_the_image_holds_every_package() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = {line.split()[1] for line in (ROOT / "Dockerfile").read_text().splitlines()
              if line.startswith("COPY ")}
    assert packages <= copied, f"not in the image: {packages - copied}"
