"""deploy/k8s and deploy/systemd stay in step with the code (no cluster or systemd to run them
here): every workload runs a real sub-command with settings its role reads, and values its
settings class accepts; probes, Services, budgets and the autoscaler point at what exists; the
registry and the video runner share the uploads' directory."""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from balancer.settings import BalancerSettings
from broadcaster.settings import BroadcasterSettings
from camcount.cli import build_parser
from contracts.broker import FRAMES_INGRESS
from contracts.settings import CommonSettings
from ingest.settings import IngestSettings
from registry.settings import RegistrySettings
from videos.settings import VideoRunnerSettings
from workers.pool.settings import PoolSettings
from workers.settings import WorkerSettings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
K8S, SYSTEMD = DEPLOY / "k8s", DEPLOY / "systemd"
NAMESPACE = "camcount"
SETTINGS: dict[str, type[BaseSettings]] = {
    "registry": RegistrySettings, "broadcaster": BroadcasterSettings,
    "balancer": BalancerSettings, "worker": WorkerSettings, "ingest": IngestSettings,
    "workers": PoolSettings, "videos": VideoRunnerSettings, "migrate": CommonSettings,
}
# The pool manager's environment is its workers' too (workers/pool/settings.py).
EXTRA_FIELDS = {"workers": set(WorkerSettings.model_fields)}
# (setting naming the port /health and /metrics are served on, setting naming its host)
HEALTH = {"registry": ("http_port", "http_host"), "workers": ("pool_http_port", "pool_http_host")}
DEFAULT_HEALTH = ("ops_port", "ops_host")
POD_NAME = "camcount-role-5d8f7c9b4-x2x7k"
Doc = dict[str, Any]


def manifests() -> list[Doc]:
    return [doc for path in sorted(K8S.glob("*.yaml")) if path.name != "kustomization.yaml"
            for doc in yaml.safe_load_all(path.read_text()) if doc]


DOCS = manifests()


def of_kind(kind: str) -> list[Doc]:
    return [doc for doc in DOCS if doc["kind"] == kind]


def named(kind: str, name: str) -> Doc:
    found = [doc for doc in of_kind(kind) if doc["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind} {name}: {len(found)} found"
    return found[0]


def containers() -> Iterator[tuple[str, Doc]]:
    for doc in of_kind("Deployment") + of_kind("Job"):
        for container in doc["spec"]["template"]["spec"]["containers"]:
            yield f"{doc['kind']}/{doc['metadata']['name']}/{container['name']}", container


CONTAINERS = dict(containers())


def argv(container: Doc) -> list[str]:
    command = container.get("command", ["camcount"])  # the image's ENTRYPOINT
    assert Path(command[0]).name == "camcount", f"runs {command[0]}, not camcount"
    return [*command[1:], *container.get("args", [])]


def role(arguments: list[str]) -> str:
    try:
        build_parser().parse_args(arguments)
    except SystemExit:
        pytest.fail(f"`camcount {shlex.join(arguments)}` is not a camcount command")
    return arguments[0]


def secret_data(name: str) -> dict[str, str]:
    data: dict[str, str] = named("Secret", name).get("stringData", {})
    return data


def container_env(container: Doc) -> dict[str, str]:
    """What the container's environment will hold; placeholder secrets made long enough to pass
    their checks, so that only the manifest's own mistakes fail."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env |= named("ConfigMap", source["configMapRef"]["name"])["data"]
        else:
            env |= secret_data(source["secretRef"]["name"])
    for item in container.get("env", []):
        ref = item.get("valueFrom", {})
        if "value" in item:
            env[item["name"]] = str(item["value"])
        elif "configMapKeyRef" in ref:
            data = named("ConfigMap", ref["configMapKeyRef"]["name"])["data"]
            assert ref["configMapKeyRef"]["key"] in data, f"{item['name']}: no such key"
            env[item["name"]] = data[ref["configMapKeyRef"]["key"]]
        elif "secretKeyRef" in ref:
            data = secret_data(ref["secretKeyRef"]["name"])
            assert ref["secretKeyRef"]["key"] in data, f"{item['name']}: no such Secret key"
            env[item["name"]] = data[ref["secretKeyRef"]["key"]].replace("change-me", "c" * 40)
        else:
            assert ref.get("fieldRef", {}).get("fieldPath") == "metadata.name", item
            env[item["name"]] = POD_NAME
    return env


def load_settings(command: str, env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
                  tmp_path: Path) -> BaseSettings:
    """Checks every name is read by the role, then builds its settings from exactly `env`."""
    fields = set(SETTINGS[command].model_fields) | EXTRA_FIELDS.get(command, set())
    unknown = {key for key in env if key.lower() not in fields}
    assert not unknown, f"`{command}` is given {unknown}, which it does not read"
    if "MODEL_PATH" in env:  # the model lies on a volume this machine does not have
        model = tmp_path / Path(env["MODEL_PATH"]).name
        model.write_bytes(b"onnx")
        env = env | {"MODEL_PATH": str(model)}
    for field in fields:
        monkeypatch.delenv(field.upper(), raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return SETTINGS[command]()


def test_kustomization_lists_every_manifest_in_the_namespace() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert kustomization["namespace"] == NAMESPACE
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files
    for doc in DOCS:
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == NAMESPACE, doc["metadata"]["name"]


def test_every_role_runs_with_its_replicas() -> None:
    commands = {argv(c)[0] for c in CONTAINERS.values()}
    assert commands >= {"registry", "broadcaster", "balancer", "worker", "ingest", "migrate",
                        "videos"}
    replicas = {d["metadata"]["name"]: d["spec"].get("replicas") for d in of_kind("Deployment")}
    assert replicas["camcount-registry"] == 2 and replicas["camcount-balancer"] == 2
    assert replicas["camcount-ingest"] == 2
    # One broadcaster per database: never two, not even during a rollout.
    assert replicas["camcount-broadcaster"] == 1
    assert named("Deployment", "camcount-broadcaster")["spec"]["strategy"]["type"] == "Recreate"


@pytest.mark.parametrize("name", sorted(CONTAINERS))
def test_container_runs_a_real_command_with_settings_it_reads(
        name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    container = CONTAINERS[name]
    command = role(argv(container))
    load_settings(command, container_env(container), monkeypatch, tmp_path)


def deployments_with_roles() -> Iterator[tuple[Doc, Doc, str]]:
    for deployment in of_kind("Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            yield deployment, container, argv(container)[0]


def container_port(container: Doc, port: int | str) -> int:
    if isinstance(port, int):
        return port
    numbers = [p["containerPort"] for p in container.get("ports", []) if p["name"] == port]
    assert numbers, f"{container['name']} has no port named {port}"
    return int(numbers[0])


@pytest.mark.parametrize("index", range(len(list(deployments_with_roles()))))
def test_probes_ask_the_port_serving_health(
        index: int, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _, container, command = list(deployments_with_roles())[index]
    settings = load_settings(command, container_env(container), monkeypatch, tmp_path)
    port_field, host_field = HEALTH.get(command, DEFAULT_HEALTH)
    assert getattr(settings, host_field) == "0.0.0.0", "the kubelet could not reach /health"
    assert {"readinessProbe", "livenessProbe"} <= set(container)
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        if probe in container:
            get = container[probe]["httpGet"]
            assert get["path"] == "/health"
            assert container_port(container, get["port"]) == getattr(settings, port_field)


def pods_matching(selector: dict[str, str]) -> list[tuple[Doc, Doc, str]]:
    return [(d, c, r) for d, c, r in deployments_with_roles()
            if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()]


def test_services_select_a_deployment_and_its_ports(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for service in of_kind("Service"):
        matched = pods_matching(service["spec"]["selector"])
        assert matched, f"Service {service['metadata']['name']} selects no Deployment"
        for _, container, command in matched:
            for port in service["spec"]["ports"]:
                container_port(container, port["targetPort"])
            scrape = service["metadata"].get("annotations", {})
            if scrape.get("prometheus.io/scrape") == "true":
                settings = load_settings(command, container_env(container), monkeypatch,
                                         tmp_path)
                port_field, _ = HEALTH.get(command, DEFAULT_HEALTH)
                assert int(scrape["prometheus.io/port"]) == getattr(settings, port_field)
                assert scrape["prometheus.io/path"] == "/metrics"


def test_disruption_budgets_cover_the_replicated_roles() -> None:
    covered = set()
    for budget in of_kind("PodDisruptionBudget"):
        matched = pods_matching(budget["spec"]["selector"]["matchLabels"])
        assert matched, f"PodDisruptionBudget {budget['metadata']['name']} selects nothing"
        covered |= {command for _, _, command in matched}
    assert covered >= {"registry", "balancer", "ingest", "worker"}
    assert "broadcaster" not in covered


def test_workers_scale_on_the_ingress_queue() -> None:
    (scaled,) = of_kind("ScaledObject")
    target = scaled["spec"]["scaleTargetRef"]
    deployment = named("Deployment", target["name"])
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert argv(container)[0] == "worker"
    assert "replicas" not in deployment["spec"], "KEDA owns the worker count"
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "rabbitmq"
    assert trigger["metadata"]["queueName"] == FRAMES_INGRESS
    assert trigger["metadata"]["mode"] == "QueueLength"
    auth = named("TriggerAuthentication", trigger["authenticationRef"]["name"])
    for ref in auth["spec"]["secretTargetRef"]:
        assert ref["key"] in secret_data(ref["name"])
    assert {ref["parameter"] for ref in auth["spec"]["secretTargetRef"]} == {"host"}


def test_gpu_worker_requests_a_gpu_and_reads_the_model_from_a_volume() -> None:
    gpu = [(d, c) for d, c, r in deployments_with_roles()
           if r == "worker" and "nvidia.com/gpu" in c["resources"].get("limits", {})]
    assert len(gpu) == 1
    deployment, container = gpu[0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    env = container_env(container)
    assert env["USE_GPU"] == "true" and env["DETECTOR"] == "onnx"
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    model_dir = str(Path(env["MODEL_PATH"]).parent)
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert "persistentVolumeClaim" in volumes[mounts[model_dir]]


def test_every_pod_runs_as_non_root_on_a_read_only_root_with_resources() -> None:
    for doc in of_kind("Deployment") + of_kind("Job"):
        pod = doc["spec"]["template"]["spec"]
        for container in pod["containers"]:
            where = f"{doc['metadata']['name']}/{container['name']}"
            context = pod.get("securityContext", {}) | container.get("securityContext", {})
            assert context.get("runAsNonRoot") is True, where
            assert context.get("readOnlyRootFilesystem") is True, where
            assert context.get("allowPrivilegeEscalation") is False, where
            assert {"requests", "limits"} <= set(container["resources"]), where


def test_the_video_runner_mounts_the_registrys_uploads_at_the_same_path(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A job keeps the upload's path as the registry wrote it: the runner finds the file there,
    on the same claim, writable (it deletes settled uploads); both agree on keeping them."""
    claims, settings = set(), {}
    for deployment, container, command in deployments_with_roles():
        if command not in ("registry", "videos"):
            continue
        pod = deployment["spec"]["template"]["spec"]
        (mount,) = [m for m in container["volumeMounts"]
                    if m["mountPath"] == "/var/lib/camcount/videos" and not m.get("readOnly")]
        (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
        claims.add(volume["persistentVolumeClaim"]["claimName"])
        assert pod["securityContext"]["fsGroup"] == pod["securityContext"]["runAsGroup"]
        settings[command] = load_settings(command, container_env(container), monkeypatch,
                                          tmp_path)
    (claim,) = claims
    registry, runner = settings["registry"], settings["videos"]
    assert isinstance(registry, RegistrySettings) and isinstance(runner, VideoRunnerSettings)
    assert registry.video_dir and registry.video_dir.is_relative_to("/var/lib/camcount/videos")
    assert registry.keep_uploaded_videos == runner.keep_uploaded_videos
    # Replicas on several nodes write and read it: nothing but ReadWriteMany serves them all.
    assert named("PersistentVolumeClaim", claim)["spec"]["accessModes"] == ["ReadWriteMany"]


def test_secret_values_are_marked_placeholders() -> None:
    for secret in of_kind("Secret"):
        for key, value in secret["stringData"].items():
            assert "change-me" in value, f"{key} looks like a real secret"


# systemd ------------------------------------------------------------------------------------

UNITS = sorted(p.name for p in SYSTEMD.glob("*.service"))
INSTANCE = "9110"


def unit_entries(name: str) -> dict[str, list[tuple[str, str]]]:
    """Sections of a unit file: keys repeat (EnvironmentFile=), so entries are lists."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = ""
    for line in (SYSTEMD / name).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = line.strip("[]")
            sections[current] = []
        else:
            key, _, value = line.partition("=")
            sections[current].append((key, value.replace("%i", INSTANCE)))
    return sections


def env_file(path: Path) -> dict[str, str]:
    lines = [line.strip() for line in path.read_text().splitlines()]
    pairs = [line.partition("=") for line in lines if line and not line.startswith("#")]
    return {key: value for key, _, value in pairs}


def example_for(env_path: str) -> Path:
    # /etc/camcount/worker-9110.env is optional and has no example.
    return SYSTEMD / (Path(env_path.lstrip("-")).name + ".example")


def test_every_role_has_a_unit() -> None:
    assert {"camcount-registry.service", "camcount-broadcaster.service",
            "camcount-balancer.service", "camcount-ingest.service", "camcount-migrate.service",
            "camcount-worker@.service", "camcount-workers.service",
            "camcount-videos.service"} <= set(UNITS)


@pytest.mark.parametrize("name", UNITS)
def test_unit_runs_a_real_command_hardened_and_restarted(
        name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    sections = unit_entries(name)
    service = dict(sections["Service"])
    executable, *arguments = shlex.split(service["ExecStart"])
    assert Path(executable).name == "camcount"
    command = role(arguments)
    assert service.get("Restart") == "on-failure"
    for key in ("NoNewPrivileges", "ProtectSystem", "PrivateTmp", "ProtectHome"):
        assert key in service, f"{name} lacks {key}="
    assert service["ProtectSystem"] == "strict" and service["User"] == "camcount"
    unit = dict(sections["Unit"])
    assert "network-online.target" in unit["After"].split()
    assert "network-online.target" in unit["Wants"].split()
    assert "WantedBy" in dict(sections["Install"])
    env: dict[str, str] = {}
    files = [value for key, value in sections["Service"] if key == "EnvironmentFile"]
    assert "/etc/camcount/camcount.env" in files, "the shared settings are not read"
    for path in files:
        if example_for(path).exists():
            env |= env_file(example_for(path))
        else:
            assert path.startswith("-"), f"{path} is required but has no example"
    for key, value in sections["Service"]:
        if key == "Environment":
            name_, _, setting = value.partition("=")
            env[name_] = setting
    env = {k: v.replace("change-me", "c" * 40) for k, v in env.items()}
    settings = load_settings(command, env, monkeypatch, tmp_path)
    if command not in ("migrate", "registry"):
        port_field, _ = HEALTH.get(command, DEFAULT_HEALTH)
        assert getattr(settings, port_field) > 0, f"{name}: /health on a random port"


@pytest.mark.parametrize("example", sorted(p.name for p in SYSTEMD.glob("*.env.example")))
def test_env_examples_name_only_settings_their_role_reads(example: str) -> None:
    command = example.removesuffix(".env.example")
    fields = set(SETTINGS.get(command, CommonSettings).model_fields)
    fields |= EXTRA_FIELDS.get(command, set())
    unknown = {key for key in env_file(SYSTEMD / example) if key.lower() not in fields}
    assert not unknown, f"{example} sets {unknown}, which its role does not read"


def test_the_video_runner_unit_can_write_where_the_registry_puts_uploads() -> None:
    registry = env_file(SYSTEMD / "registry.env.example")
    runner = env_file(SYSTEMD / "videos.env.example")
    assert registry["KEEP_UPLOADED_VIDEOS"] == runner["KEEP_UPLOADED_VIDEOS"]
    video_dir = Path(registry["VIDEO_DIR"])
    for unit in ("camcount-registry.service", "camcount-videos.service"):
        service = unit_entries(unit)["Service"]
        # ProtectSystem=strict: only these are writable.
        writable = [Path("/var/lib", d) for key, value in service if key == "StateDirectory"
                    for d in value.split()]
        writable += [Path(d.lstrip("-")) for key, value in service if key == "ReadWritePaths"
                     for d in value.split()]
        assert any(video_dir.is_relative_to(d) for d in writable), f"{unit}: {video_dir}"
