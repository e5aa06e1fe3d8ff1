"""The whole pipeline, every role as its own process, against the real services and the
camera simulator over RTSP: the known crossings of a synthetic scene arrive, exactly, in
PostgreSQL and at a WebSocket client."""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from websockets.asyncio.client import connect
from websockets.typing import Origin

from camcount import processes
from contracts.tables import coverage_gaps
from infra.db import create_engine
from simulator.scenes import SyntheticScene
from tests.camera_host import camera_env, camera_host
from tests.conftest import Isolated
from tests.integration.registry_client import bearer, new_key
from tests.support import eventually, progress

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SEED, CROSSINGS, WARMUP_S = 11, 6, 2.0
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
    "--disable-dev-shm-usage",
]
HAVE_CHROMIUM = Path(CHROMIUM).exists()
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


OPS_ROLES = ("broadcaster", "worker", "balancer", "ingest")


@pytest.fixture
def stack(isolated: Isolated, tmp_path: Path) -> Iterator[dict[str, int]]:
    ports = {"rtsp": free_port(), "http": free_port(), "ws": free_port()}
    ports |= {f"ops-{role}": free_port() for role in OPS_ROLES}
    env = {
        **isolated.env(), "HTTP_PORT": str(ports["http"]), "WS_PORT": str(ports["ws"]),
        "BROADCASTER_PUBLIC_URL": f"ws://127.0.0.1:{ports['ws']}/ws",
        "WORKER_ID": "w-e2e", "CAMERA_POLL_S": "0.5", "LOG_LEVEL": "INFO",
        **camera_env(ports["rtsp"]),  # the registry accepts the simulator as a camera
    }
    children = [processes.spawn(
        "simulator",
        processes.cli_argv("simulate", "--host", camera_host(), "--port", str(ports["rtsp"]),
                           "--mount",
                           f"cam-e2e:synthetic:seed={SEED},crossings={CROSSINGS},"
                           f"warmup_s={WARMUP_S}"),
        env, tmp_path / "simulator.log",
    )]
    # The registry signs WebSocket tickets and the broadcaster verifies them: they alone share
    # the secret; the broadcaster takes upgrades from the dashboard's origin.
    live_env = {"WS_TICKET_SECRET": secrets.token_urlsafe(32),
                "ALLOWED_ORIGINS": f"http://127.0.0.1:{ports['http']}"}
    for role in ("registry", "broadcaster", "worker", "balancer", "ingest"):
        role_env = {**env, "OPS_PORT": str(ports.get(f"ops-{role}", 0))}
        if role in ("registry", "broadcaster"):
            role_env |= live_env
        children.append(
            processes.spawn(role, processes.role_argv(role), role_env, tmp_path / f"{role}.log")
        )
    try:
        yield ports
        processes.stop(children)
        codes = {c.name: c.proc.returncode for c in children}
        assert all(code == 0 for code in codes.values()), codes  # graceful shutdown
    finally:
        processes.stop(children)
        for log in sorted(tmp_path.glob("*.log")):
            print(f"----- {log.name} -----\n{log.read_text(errors='replace')[-4000:]}")


async def test_known_crossings_arrive_exactly_in_postgres_and_over_websocket(
    isolated: Isolated, stack: dict[str, int]
) -> None:
    scene = SyntheticScene(seed=SEED, crossings=CROSSINGS, warmup_s=WARMUP_S)
    api = f"http://127.0.0.1:{stack['http']}"
    api_key = await _admin_key(isolated)
    async with httpx.AsyncClient(base_url=api, timeout=5, headers=bearer(api_key)) as http:
        await eventually(lambda: _status(http, "/health"), lambda s: s == 200, timeout_s=60)
        created = await http.post("/api/cameras", json={
            "id": "cam-e2e", "name": "e2e", "url": f"rtsp://{camera_host()}:{stack['rtsp']}/cam-e2e",
            "target_fps": 10, "batch_frames": 5, "batch_ms": 1000,
            "lines": [{"name": "centre", "a": {"x": 0.5, "y": 0.0}, "b": {"x": 0.5, "y": 1.0}}],
        })
        assert created.status_code == 201, created.text
        line_id = created.json()["lines"][0]["id"]
    truth: dict[str, int] = {}
    for crossing in scene.truth():
        key = f"{line_id}:{'in' if crossing.direction == 'left_to_right' else 'out'}:motion"
        truth[key] = truth.get(key, 0) + 1
    assert sum(truth.values()) == CROSSINGS

    received: dict[str, int] = {}
    async with httpx.AsyncClient(base_url=api, timeout=5, headers=bearer(api_key)) as http:
        issued = (await http.post("/api/ws-ticket")).json()
    assert issued["websocket_url"] == f"ws://127.0.0.1:{stack['ws']}/ws"
    async with connect(f"{issued['websocket_url']}?ticket={issued['ticket']}",
                       origin=Origin(api)) as ws:
        assert json.loads(await ws.recv())["type"] == "hello"
        await ws.send(json.dumps({"op": "subscribe", "cameras": ["cam-e2e"]}))
        deadline = time.monotonic() + scene.duration_s + 60
        while received != truth and time.monotonic() < deadline:
            try:
                message = json.loads(await asyncio.wait_for(ws.recv(), 1.0))
            except TimeoutError:
                continue
            if message["type"] == "counts":
                received = message["totals"]
    assert received == truth

    engine = create_engine(isolated.database_url)
    try:
        stored = await eventually(lambda: progress(engine, "cam-e2e"), lambda p: p is not None)
        assert stored is not None and stored[1] == truth
        # Let the static tail of the scene flow through: nothing more may be counted.
        await asyncio.sleep(3)
        later = await progress(engine, "cam-e2e")
        assert later is not None and later[1] == truth and later[0] > stored[0]
        async with engine.connect() as conn:
            gaps = (await conn.execute(select(func.count()).select_from(coverage_gaps))
                    ).scalar_one()
        assert gaps == 0
    finally:
        await engine.dispose()
    await _every_role_is_healthy_with_metrics(stack)
    await _dashboard_shows(api, api_key, truth, line_id)


async def _admin_key(isolated: Isolated) -> str:
    engine = create_engine(isolated.database_url)
    try:
        return await new_key(engine)
    finally:
        await engine.dispose()


async def _every_role_is_healthy_with_metrics(ports: dict[str, int]) -> None:
    bases = {"registry": f"http://127.0.0.1:{ports['http']}"}
    bases |= {role: f"http://127.0.0.1:{ports[f'ops-{role}']}" for role in OPS_ROLES}
    async with httpx.AsyncClient(timeout=5) as http:
        for role, base in bases.items():
            health = await http.get(f"{base}/health")
            assert health.status_code == 200 and health.json()["ok"], (role, health.text)
            metrics = await http.get(f"{base}/metrics")
            assert metrics.status_code == 200 and "camcount_" in metrics.text, role


async def _dashboard_shows(api: str, key: str, truth: dict[str, int], line_id: int) -> None:
    """The same numbers on the dashboard page, in real Chromium (a person's view)."""
    if not HAVE_CHROMIUM:
        pytest.skip(f"{CHROMIUM} is not installed (./scripts/bootstrap installs it)")
    from playwright.async_api import async_playwright

    expected = {d: sum(n for k, n in truth.items() if k.split(":")[1] == d) for d in ("in", "out")}
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1100, "height": 500})
            await page.goto(f"{api}/#key={key}")
            await page.wait_for_selector("#connection[data-state=live]", timeout=10_000)
            row = page.locator(f'tr[data-camera="cam-e2e"][data-line="{line_id}"]')
            for direction, count in expected.items():
                cell = row.locator(f'td[data-direction="{direction}"]')
                await cell.filter(has_text=str(count)).wait_for(timeout=10_000)
            # The worker pool as the balancer judges it: alive, breaker closed.
            worker = page.locator("#workers tbody tr").filter(has_text="up")
            await worker.locator("td.breaker-closed").wait_for(timeout=10_000)
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "e2e-dashboard.png"))
        finally:
            await browser.close()


async def _status(http: httpx.AsyncClient, path: str) -> int:
    try:
        return (await http.get(path)).status_code
    except httpx.HTTPError:
        return 0
