"""A whole camcount on this machine for benchmarks (bench/load, bench/soak): every role as its
own process, the camera simulator, cameras registered through the API, and a clean stop.

Usage (the servers are the caller's: the test services in a smoke test, or private ones)::

    from bench.stack import StackConfig, launch, private_endpoints

    with private_endpoints(state_dir, amqp_port=5698, pg_port=5458) as (endpoints, logs_dir):
        async with launch(StackConfig(logs_dir, workers=2), endpoints.rabbitmq_url,
                          endpoints.database_url) as stack:
            ids = await stack.add_cameras(4)          # registered through POST /api/cameras
            await stack.set_enabled(ids[2:], False)   # PATCH enabled; stack.enabled: the set on
            url = await stack.ws_url()                # a fresh ticket: one connect each
            #   websockets.asyncio.client.connect(url, origin=Origin(stack.origin))
            await stack.http.get("/api/cameras")      # httpx client holding the admin key
            depths = await stack.queue_depths()       # frames.ingress and every worker queue
            stack.pids                                # child name -> pid (psutil sampling)
            stack.check_alive()                       # raises naming a role that exited
            stack.kill("worker-1"); stack.respawn("worker-1")  # faults (SIGKILL, same env)
            await stack.wait_healthy("worker-1")      # its /health answers 200 again
        stack.exit_codes                              # after the block: each child's code

Child names: "simulator", "registry", "broadcaster", "balancer", "worker-1".."worker-N"
(`stack.worker_names`, queue ids in `stack.worker_ids`), "ingest". Also: `api_url`,
`camera_url` (the simulator's mount), `ops_urls`, `admin_key`, `camera_ids`, `rabbitmq_url`,
`database_url`, `config.log_dir`.

What runs (children in this order, stopped in reverse so producers drain first):
- `simulator`: one RTSP mount (`StackConfig.mount`, a synthetic scene with `crossings` per
  loop, pre-encoded once and replayed, so a session costs packetisation only) on this
  machine's non-loopback address (the registry refuses loopback camera URLs); every camera
  plays it with a session of its own.
- `registry` (API on `api_url`), `broadcaster` (WebSocket; the two share a fresh
  WS_TICKET_SECRET), `balancer`, `worker-1..N` (`WORKER_ID` bench-w1..N, DETECTOR from the
  config) and `ingest` (capacity for every camera, cameras re-read every `camera_poll_s`).
Each role serves /health and /metrics: `ops_urls[name]` (the registry on `api_url`).
Every child runs under `bench.lifetime.die_with_us`: should the bench die without stopping
them (SIGKILL, a crash), the kernel SIGTERMs them, so none runs on as an orphan. Signals are
the caller's (`bench.lifetime.StopSignals`): a cancelled `launch` stops every child.

Cameras get ids `cam-0001`, ... in the order they are added, one vertical counting line
through the middle (where the synthetic scene's objects cross), `target_fps`, `batch_frames`
and `batch_ms` from the config. The admin key (every site) has a rate limit no bench reaches,
so 1,000 WebSocket tickets or 100 registrations in a row are not throttled.

Stable API: names above keep their meaning; new fields get defaults.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import signal
import socket
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import httpx

# Say and say_stderr live in bench.lifetime now; re-exported for bench/load's imports.
from bench.lifetime import Say as Say
from bench.lifetime import die_with_us
from bench.lifetime import say_stderr as say_stderr
from bench.private_services import private_services
from camcount import processes, services
from camcount.host_address import host_address
from contracts import broker
from infra import amqp
from infra.db import short_lived_engine
from registry import api_keys
from registry.camera_urls import DEFAULT_CAMERA_NETWORKS, DEFAULT_CAMERA_PORTS

MOUNT = "bench"
CAMERA_PREFIX = "cam-"
READY_TIMEOUT_S = 120.0
ROLES = ("registry", "broadcaster", "balancer", "worker", "ingest")
LINE = {"name": "centre", "a": {"x": 0.5, "y": 0.0}, "b": {"x": 0.5, "y": 1.0}}

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class StackConfig:
    log_dir: Path  # one <child>.log each
    workers: int = 1
    detector: str = "motion"
    # What every camera streams, and how it is registered.
    width: int = 640
    height: int = 360
    source_fps: float = 5.0
    clip_s: float = 8.0  # encoded once at start, replayed in a loop
    crossings: int = 12  # per loop of the scene
    target_fps: float = 5.0
    batch_frames: int = 1  # a batch per frame: batching would add its fill time to latency
    batch_ms: int = 200
    deadline_s: float = 10.0
    camera_poll_s: float = 0.5
    key_rate_per_s: float = 100_000.0
    env: Mapping[str, str] = field(default_factory=dict)  # to every role
    role_env: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # by role name

    @property
    def mount(self) -> str:
        return (f"{MOUNT}:synthetic:seed=1,crossings={self.crossings},warmup_s=0,loop=true,"
                f"width={self.width},height={self.height},fps={self.source_fps:g},"
                f"preencode_s={self.clip_s:g}")


@dataclass
class _Spec:
    argv: list[str]
    env: dict[str, str]


class Stack:
    """A running stack; made by `launch`, which stops it."""

    def __init__(self, config: StackConfig, rabbitmq_url: str, database_url: str,
                 say: Say) -> None:
        self.config, self.rabbitmq_url, self.database_url = config, rabbitmq_url, database_url
        self.say = say
        self.host = host_address()
        self.ports = {"rtsp": free_port(), "http": free_port(), "ws": free_port()}
        self.api_url = f"http://127.0.0.1:{self.ports['http']}"
        self.origin = self.api_url  # the broadcaster takes upgrades from the dashboard's origin
        self.camera_url = f"rtsp://{self.host}:{self.ports['rtsp']}/{MOUNT}"
        self.worker_ids = [f"bench-w{i}" for i in range(1, config.workers + 1)]
        self.admin_key = ""
        self.camera_ids: list[str] = []
        self.enabled: set[str] = set()
        self.children: dict[str, processes.Child] = {}
        self.ops_urls: dict[str, str] = {}
        self.exit_codes: dict[str, int | None] = {}
        self._specs: dict[str, _Spec] = {}
        self._http: httpx.AsyncClient | None = None
        self._amqp: aio_pika.abc.AbstractConnection | None = None

    # --- processes ---

    @property
    def pids(self) -> dict[str, int]:
        return {name: c.proc.pid for name, c in self.children.items() if c.alive}

    @property
    def worker_names(self) -> list[str]:
        return [f"worker-{i}" for i in range(1, len(self.worker_ids) + 1)]

    def check_alive(self) -> None:
        dead = [f"{n} (exit {c.proc.returncode})" for n, c in self.children.items()
                if not c.alive]
        if dead:
            raise RuntimeError(f"{', '.join(dead)} exited (logs in {self.config.log_dir})")

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Signal one child (a fault); `respawn` starts it again."""
        child = self.children[name]
        if child.alive:
            with contextlib.suppress(ProcessLookupError):
                child.proc.send_signal(sig)
            if sig == signal.SIGKILL:
                child.proc.wait(10)

    def respawn(self, name: str) -> None:
        """Start a child again with its argv and env (same id, same ports); the old process
        must have exited."""
        old = self.children[name]
        if old.alive:
            raise RuntimeError(f"{name} is still running")
        if old.log:
            old.log.close()
        spec = self._specs[name]
        self.children[name] = processes.spawn(name, die_with_us(spec.argv), spec.env,
                                               self.config.log_dir / f"{name}.log")

    async def wait_healthy(self, name: str, timeout_s: float = READY_TIMEOUT_S) -> None:
        url = self.ops_urls[name] + "/health"
        await asyncio.to_thread(processes.wait_healthy, url, [self.children[name]], timeout_s)

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self._specs[name] = _Spec(argv, env)
        self.children[name] = processes.spawn(name, die_with_us(argv), env,
                                              self.config.log_dir / f"{name}.log")

    async def _start(self) -> None:
        config = self.config
        camera_env = {
            "CAMERA_NETWORKS": ",".join((*DEFAULT_CAMERA_NETWORKS, f"{self.host}/32")),
            "CAMERA_PORTS": ",".join(str(p) for p in (*DEFAULT_CAMERA_PORTS,
                                                      self.ports["rtsp"])),
        }
        common = {"RABBITMQ_URL": self.rabbitmq_url, "DATABASE_URL": self.database_url,
                  "LOG_LEVEL": "INFO", "HTTP_PORT": str(self.ports["http"]),
                  "WS_PORT": str(self.ports["ws"]),
                  "BROADCASTER_PUBLIC_URL": f"ws://127.0.0.1:{self.ports['ws']}/ws",
                  **camera_env, **config.env}
        live = {"WS_TICKET_SECRET": secrets.token_urlsafe(32), "ALLOWED_ORIGINS": self.origin}
        self._spawn("simulator", processes.cli_argv(
            "simulate", "--host", self.host, "--port", str(self.ports["rtsp"]),
            "--mount", config.mount), dict(config.env))
        await self._wait_listening()
        self.say(f"simulator serving {self.camera_url} ({config.width}x{config.height} @ "
                 f"{config.source_fps:g} fps, {config.clip_s:g} s pre-encoded loop)")
        roles: list[tuple[str, str, dict[str, str]]] = [
            # Tickets for a thousand clients take a while to hand out: none may expire first.
            ("registry", "registry", {**live, "WS_TICKET_TTL_S": "900"}),
            ("broadcaster", "broadcaster", live),
            ("balancer", "balancer", {}),
        ]
        roles += [(name, "worker", {"WORKER_ID": wid, "DETECTOR": config.detector})
                  for name, wid in zip(self.worker_names, self.worker_ids, strict=True)]
        roles.append(("ingest", "ingest", {"INGEST_CAPACITY": "100000",
                                           "CAMERA_POLL_S": str(config.camera_poll_s)}))
        for name, role, extra in roles:
            env = {**common, **extra, **config.role_env.get(role, {}),
                   **config.role_env.get(name, {})}
            if name == "registry":
                self.ops_urls[name] = self.api_url
            else:
                port = free_port()
                env["OPS_PORT"] = str(port)
                self.ops_urls[name] = f"http://127.0.0.1:{port}"
            self._spawn(name, processes.role_argv(role), env)
        for name in self.ops_urls:
            await self.wait_healthy(name)
        self.admin_key = await _admin_key(self.database_url, config.key_rate_per_s)
        self._http = httpx.AsyncClient(base_url=self.api_url, timeout=30,
                                       headers={"Authorization": f"Bearer {self.admin_key}"})
        self._amqp = await amqp.connect(self.rabbitmq_url, "bench-stack")
        self.say(f"stack ready: API {self.api_url}, {len(self.worker_ids)} worker(s) "
                 f"({config.detector}), logs in {config.log_dir}")

    async def _wait_listening(self) -> None:
        child = self.children["simulator"]
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if not child.alive:
                raise RuntimeError(f"the simulator exited with {child.proc.returncode}")
            with contextlib.suppress(OSError):
                # It listens only once the clip is encoded.
                _, writer = await asyncio.open_connection(self.host, self.ports["rtsp"])
                writer.close()
                return
            await asyncio.sleep(0.2)
        raise RuntimeError(f"the simulator did not listen in {READY_TIMEOUT_S:.0f} s")

    def _stop(self) -> None:
        children = list(self.children.values())
        processes.stop(children)
        self.exit_codes = {n: c.proc.returncode for n, c in self.children.items()}

    # --- the API ---

    @property
    def http(self) -> httpx.AsyncClient:
        """An API client holding the admin key."""
        assert self._http is not None, "the stack is not started"
        return self._http

    async def add_cameras(self, count: int, **fields: Any) -> list[str]:
        """Register `count` more cameras through POST /api/cameras (`fields` override the
        config's, e.g. target_fps=10); their ids."""
        added = []
        for _ in range(count):
            camera_id = f"{CAMERA_PREFIX}{len(self.camera_ids) + 1:04d}"
            body = {"id": camera_id, "name": camera_id, "url": self.camera_url,
                    "site": "bench", "target_fps": self.config.target_fps,
                    "batch_frames": self.config.batch_frames,
                    "batch_ms": self.config.batch_ms, "deadline_s": self.config.deadline_s,
                    "lines": [LINE], **fields}
            response = await self.http.post("/api/cameras", json=body)
            if response.status_code != 201:
                raise RuntimeError(f"registering {camera_id}: {response.status_code} "
                                   f"{response.text}")
            self.camera_ids.append(camera_id)
            if body.get("enabled", True):
                self.enabled.add(camera_id)
            added.append(camera_id)
        return added

    async def set_enabled(self, camera_ids: list[str], enabled: bool) -> None:
        """Pause or resume cameras without forgetting them (PATCH enabled, for those whose
        state changes: `enabled` holds the cameras enabled now)."""
        for camera_id in camera_ids:
            if (camera_id in self.enabled) == enabled:
                continue
            response = await self.http.patch(f"/api/cameras/{camera_id}",
                                             json={"enabled": enabled})
            response.raise_for_status()
            if enabled:
                self.enabled.add(camera_id)
            else:
                self.enabled.discard(camera_id)

    async def ws_url(self) -> str:
        """The broadcaster's URL with a fresh ticket (valid for one connect); connect with
        `origin=stack.origin`."""
        response = await self.http.post("/api/ws-ticket")
        response.raise_for_status()
        issued = response.json()
        return f"{issued['websocket_url']}?ticket={issued['ticket']}"

    # --- the broker ---

    async def queue_depths(self) -> dict[str, int]:
        """Ready messages in frames.ingress and in every worker's queue (passive declares on
        a channel of its own: one for a queue not there yet closes it)."""
        assert self._amqp is not None, "the stack is not started"
        depths: dict[str, int] = {}
        for name in (broker.FRAMES_INGRESS, *(broker.worker_queue(w).name
                                              for w in self.worker_ids)):
            channel = await self._amqp.channel()
            try:
                raw = await channel.get_underlay_channel()
                declared = await raw.queue_declare(name, passive=True)
                depths[name] = int(declared.message_count or 0)
            except aio_pika.exceptions.ChannelNotFoundEntity:
                depths[name] = 0  # absent until its worker declares it
            finally:
                with contextlib.suppress(Exception):
                    await channel.close()
        return depths

    async def _close_clients(self) -> None:
        if self._http is not None:
            await self._http.aclose()
        if self._amqp is not None:
            await self._amqp.close()


async def _admin_key(database_url: str, rate_per_s: float) -> str:
    async with short_lived_engine(database_url) as engine:
        _, token = await api_keys.create(engine, name="bench", role="admin", site="*",
                                         rate_per_s=rate_per_s,
                                         burst=max(1, int(rate_per_s)))
    return token


@contextlib.asynccontextmanager
async def launch(config: StackConfig, rabbitmq_url: str, database_url: str,
                 say: Say = say_stderr) -> AsyncIterator[Stack]:
    """Start everything (migrated servers given), yield the stack, stop every child (SIGTERM in
    reverse start order, SIGKILL after 15 s); `stack.exit_codes` then holds their codes."""
    config.log_dir.mkdir(parents=True, exist_ok=True)
    stack = Stack(config, rabbitmq_url, database_url, say)
    try:
        await stack._start()
        yield stack
    finally:
        await stack._close_clients()
        await asyncio.to_thread(stack._stop)
        say(f"stack stopped: exit codes {stack.exit_codes}")


@contextlib.contextmanager
def private_endpoints(state_dir: Path, amqp_port: int, pg_port: int
                      ) -> Iterator[tuple[services.Endpoints, Path]]:
    """Fresh private RabbitMQ and PostgreSQL (wiped, migrated, stopped afterwards) and an
    empty folder for the run's logs: bench/private_services.py under the stack's name."""
    with private_services(state_dir, amqp_port, pg_port) as found:
        yield found
