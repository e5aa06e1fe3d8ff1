"""`camcount up`: the whole system on this machine, with a simulated camera.

Private RabbitMQ and PostgreSQL (camcount.services), migrations, the camera simulator and every
role as its own process (a video runner included: uploads land in the state folder's videos/);
registers the simulated camera with a counting line, prints the dashboard URL and stops
everything cleanly on Ctrl+C.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import signal
import sys
import time
import webbrowser
from types import FrameType

import httpx

from camcount import processes, services
from camcount.host_address import host_address
from migrations import upgrade
from registry.camera_urls import DEFAULT_CAMERA_NETWORKS

REGISTRY_PORT = 8080
BROADCASTER_PORT = 8765
SIMULATOR_PORT = 8554  # a default camera port (CAMERA_PORTS)
SIM_CAMERA = {
    "id": "sim-1",
    "name": "Simulated camera (6 crossings every scene loop)",
    "target_fps": 10,
    "batch_frames": 5,
    "batch_ms": 1000,
    "lines": [{"name": "centre", "a": {"x": 0.5, "y": 0.0}, "b": {"x": 0.5, "y": 1.0}}],
    "zones": [{"name": "right half", "points": [
        {"x": 0.5, "y": 0.0}, {"x": 1.0, "y": 0.0}, {"x": 1.0, "y": 1.0}, {"x": 0.5, "y": 1.0}]}],
}


def _admin_key(database_url: str) -> str:
    """A fresh admin key of every site for this run (printed in the dashboard link)."""
    from infra.db import short_lived_engine
    from registry import api_keys

    async def create() -> str:
        async with short_lived_engine(database_url) as engine:
            _, token = await api_keys.create(engine, name="camcount up", role="admin", site="*")
            return token

    return asyncio.run(create())


def _register_camera(api: str, key: str, simulator_host: str) -> None:
    camera = {**SIM_CAMERA, "url": f"rtsp://{simulator_host}:{SIMULATOR_PORT}/sim-1"}
    headers = {"Authorization": f"Bearer {key}"}
    response = httpx.post(f"{api}/api/cameras", json=camera, timeout=10, headers=headers)
    if response.status_code == 409:
        # Registered by an earlier run (state in .state/dev): point it at this run's simulator,
        # whose address may have changed; the url is validated and pinned again.
        response = httpx.patch(f"{api}/api/cameras/sim-1", timeout=10, headers=headers,
                               json={"url": camera["url"], "enabled": True})
    if response.status_code not in (200, 201):
        raise RuntimeError(f"registering the simulated camera failed: {response.text}")


def run_stack(*, keep_services: bool, open_browser: bool) -> int:
    cfg = services.ServicesConfig.from_env("dev")
    endpoints = services.start_all(cfg)
    upgrade(endpoints.database_url)
    # The registry refuses camera urls on loopback: the simulator serves on this machine's own
    # address, which the registry is told is a camera network.
    simulator_host = host_address()
    env = {
        **endpoints.as_env(),
        "CAMERA_NETWORKS": ",".join((*DEFAULT_CAMERA_NETWORKS, f"{simulator_host}/32")),
        "HTTP_PORT": str(REGISTRY_PORT),
        "WS_PORT": str(BROADCASTER_PORT),
        "BROADCASTER_PUBLIC_URL": f"ws://127.0.0.1:{BROADCASTER_PORT}/ws",
        "WORKER_ID": "worker-1",
    }
    # Only the registry (signs WebSocket tickets) and the broadcaster (verifies them) hold the
    # secret: fresh for every run, so a ticket of an earlier run is worthless.
    live_env = {
        "WS_TICKET_SECRET": secrets.token_urlsafe(32),
        "ALLOWED_ORIGINS": f"http://127.0.0.1:{REGISTRY_PORT},http://localhost:{REGISTRY_PORT}",
    }
    children: list[processes.Child] = []
    stopping = False

    def on_signal(signum: int, _: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        children.append(processes.spawn("simulator", processes.cli_argv(
            "simulate", "--host", simulator_host, "--port", str(SIMULATOR_PORT),
            "--mount", "sim-1:synthetic:seed=1,crossings=6,loop=true"), env))
        role_envs = {"registry": {**env, **live_env, "VIDEO_DIR": str(cfg.state_dir / "videos")},
                     "broadcaster": {**env, **live_env}}
        for role in ("registry", "broadcaster", "worker", "balancer", "videos"):
            children.append(processes.spawn(role, processes.role_argv(role),
                                            role_envs.get(role, env)))
        api = f"http://127.0.0.1:{REGISTRY_PORT}"
        processes.wait_healthy(f"{api}/health", children)
        key = _admin_key(endpoints.database_url)
        _register_camera(api, key, simulator_host)
        children.append(processes.spawn("ingest", processes.role_argv("ingest"), env))
        # The key rides in the fragment, which the browser never sends to the server.
        dashboard = f"{api}/#key={key}"
        print(f"\n  camcount is up: dashboard {dashboard}\n  (Ctrl+C stops everything)\n",
              flush=True)
        if open_browser:
            with contextlib.suppress(Exception):
                webbrowser.open(dashboard)
        while not stopping:
            dead = [c for c in children if not c.alive]
            if dead:
                print(f"{dead[0].name} exited with {dead[0].proc.returncode}; stopping",
                      file=sys.stderr)
                return 1
            time.sleep(0.5)
        return 0
    finally:
        print("stopping camcount...", flush=True)
        # Producers first, so the pipeline drains towards the database.
        processes.stop(children)
        if not keep_services:
            services.stop_all(cfg)
