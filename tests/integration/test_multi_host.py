"""A multi-host deployment built from network namespaces on this machine, against a single-host
run of the same scenes: the counts are equal, and equal to the scenes' truth.

Hosts (one namespace each, joined by veth pairs to a bridge): the camera simulator, ingest,
the balancer and two workers. RabbitMQ and PostgreSQL run on the root namespace as another
host, private servers listening on the bridge address (tests/faults/service_host.py). A
namespace's loopback is its own, so the roles there can reach the servers only over the veth
links; the test checks it anyway from the servers' side (the peer address of every AMQP
connection and PostgreSQL session). The single-host run has every role on this machine over
loopback, on the same servers (its own database and virtual host), with its own simulator.
Both run at once, so the test takes one scene's time, not two.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from camcount import processes
from contracts.tables import assignments, camera_progress, coverage_gaps
from infra.db import create_engine
from simulator.scenes import SyntheticScene
from tests.camera_host import camera_host, camera_settings
from tests.conftest import Isolated
from tests.faults import netns
from tests.faults.deployment import Deployment, deployed
from tests.faults.service_host import ServiceHost, service_host
from tests.integration.registry_client import registry
from tests.integration.roles import free_port
from tests.support import VERTICAL_LINE, eventually

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

PREFIX, SUBNET, AMQP_PORT, PG_PORT = "ccmh", "10.231.0.0/24", 5701, 5461
RTSP_PORT = 8554  # the camera host's own port space: no clash possible
SCENES = {"cam-a": (11, 6), "cam-b": (12, 6)}  # camera -> seed, crossings
WARMUP_S, FPS = 2.0, 10
ROLE_ENV = {"CAMERA_POLL_S": "0.5", "LOG_LEVEL": "INFO"}


def truth() -> dict[str, dict[str, int]]:
    """Per camera, crossings of the centre line by direction."""
    out: dict[str, dict[str, int]] = {}
    for camera, (seed, crossings) in SCENES.items():
        counts = out.setdefault(camera, {})
        for crossing in SyntheticScene(seed=seed, crossings=crossings,
                                       warmup_s=WARMUP_S).truth():
            key = f"centre:{'in' if crossing.direction == 'left_to_right' else 'out'}"
            counts[key] = counts.get(key, 0) + 1
    return out


def simulator_argv(address: str, port: int) -> list[str]:
    mounts = [f"{camera}:synthetic:seed={seed},crossings={crossings},warmup_s={WARMUP_S},"
              f"fps={FPS}" for camera, (seed, crossings) in SCENES.items()]
    return processes.cli_argv("simulate", "--host", address, "--port", str(port),
                              *(arg for mount in mounts for arg in ("--mount", mount)))


async def test_counts_across_namespaced_hosts_equal_a_single_host_run_and_the_truth(
    tmp_path: Path,
) -> None:
    netns.skip_unless_available()
    with netns.network(PREFIX, SUBNET) as net, \
            service_host(PREFIX, net.gateway, AMQP_PORT, PG_PORT) as servers:
        hosts = {name: net.add_host(name) for name in ("camera", "ingest", "balancer", "w1",
                                                       "w2")}
        async with servers.isolated("multi") as multi, servers.isolated("single") as single:
            with deployed(tmp_path / "multi", multi.env(), servers.remote_env(multi)) as spread, \
                    deployed(tmp_path / "single", single.env(), {}) as local:
                camera_port = free_port()
                spread.start("simulator", simulator_argv(hosts["camera"].address, RTSP_PORT),
                             {}, hosts["camera"])
                local.start("simulator", simulator_argv(camera_host(), camera_port), {})
                start_roles(spread, hosts)
                start_roles(local, None)
                for deployment in (spread, local):
                    await deployment.wait_live("b1", {"w1", "w2"})
                    deployment.assert_running()

                camera_base = (f"rtsp://{hosts['camera'].address}:{RTSP_PORT}",
                               f"rtsp://{camera_host()}:{camera_port}")
                engines = {"multi": create_engine(multi.database_url),
                           "single": create_engine(single.database_url)}
                try:
                    await register(multi, engines["multi"], camera_base[0],
                                   camera_networks=[SUBNET], camera_ports=[RTSP_PORT])
                    await register(single, engines["single"], camera_base[1],
                                   **camera_settings(camera_port))
                    expected = {"multi": truth(), "single": truth()}
                    longest = max(SyntheticScene(seed=seed, crossings=n, warmup_s=WARMUP_S)
                                  .duration_s for seed, n in SCENES.values())
                    got = await eventually(lambda: all_counts(engines),
                                           lambda counts: counts == expected,
                                           timeout_s=longest + 60, interval_s=1)
                    # The scenes' static tails flow through: nothing more may be counted.
                    await asyncio.sleep(3)
                    assert await all_counts(engines) == got
                    print(f"counts, multi-host and single-host: {got}")
                    for layout, engine in engines.items():
                        print(f"{layout}: cameras held by {await holders(engine)}")
                        assert await gap_reasons(engine) == [], layout
                    await only_over_veth(servers, multi, hosts, spread)
                    for deployment in (spread, local):  # graceful shutdown, SIGTERM to all
                        assert set(deployment.stop().values()) == {0}
                finally:
                    for engine in engines.values():
                        await engine.dispose()


def start_roles(deployment: Deployment, hosts: dict[str, netns.Host] | None) -> None:
    def on(name: str) -> netns.Host | None:
        return None if hosts is None else hosts[name]

    deployment.worker("w1", on("w1"))
    deployment.worker("w2", on("w2"))
    deployment.balancer("b1", on("balancer"), MOVES_PER_INTERVAL="0")
    deployment.role("ingest", "ingest", on("ingest"), NODE_ID="ingest-1", **ROLE_ENV)


async def register(isolated: Isolated, engine: AsyncEngine, base_url: str,
                   **settings: Any) -> None:
    async with registry(isolated, engine, **settings) as api:
        for camera in SCENES:
            created = await api.post("/api/cameras", json={
                "id": camera, "name": camera, "url": f"{base_url}/{camera}",
                "target_fps": FPS, "batch_frames": 5, "batch_ms": 1000,
                "lines": [{"name": "centre", **VERTICAL_LINE}],
            })
            assert created.status_code == 201, created.text


async def counts(engine: AsyncEngine) -> dict[str, dict[str, int]]:
    """Per camera, totals by line name and direction (line ids differ between databases)."""
    async with engine.connect() as conn:
        rows = (await conn.execute(select(camera_progress.c.camera_id,
                                          camera_progress.c.totals))).all()
    out: dict[str, dict[str, int]] = {}
    for camera, totals in rows:
        for key, n in totals.items():
            _line, direction, _cls = key.split(":")
            out.setdefault(camera, {})[f"centre:{direction}"] = int(n)
    return out


async def all_counts(engines: dict[str, AsyncEngine]) -> dict[str, dict[str, dict[str, int]]]:
    return {layout: await counts(engine) for layout, engine in engines.items()}


async def holders(engine: AsyncEngine) -> dict[str, str]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(assignments.c.camera_id, assignments.c.worker_id))
        return {r.camera_id: r.worker_id for r in rows}


async def gap_reasons(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        return list((await conn.execute(select(coverage_gaps.c.reason))).scalars())


async def only_over_veth(servers: ServiceHost, multi: Isolated, hosts: dict[str, netns.Host],
                         spread: Deployment) -> None:
    """Every AMQP connection of the multi-host vhost, and every PostgreSQL session of its
    database but the test's own, comes from a namespace's address: each role's from its
    host's."""
    expected = {"ingest-1": hosts["ingest"].address, "b1": hosts["balancer"].address,
                "w1": hosts["w1"].address, "w2": hosts["w2"].address}
    mgmt = httpx.URL(servers.endpoints.rabbitmq_management_url)
    async with httpx.AsyncClient(base_url=f"http://{mgmt.host}:{mgmt.port}",
                                 auth=(mgmt.username, mgmt.password), timeout=10) as http:
        response = await http.get(f"/api/vhosts/{multi.vhost}/connections")
        response.raise_for_status()
    peers = {(c["client_properties"].get("connection_name"), c["peer_host"])
             for c in response.json()}
    print(f"AMQP connections of the multi-host run (name, peer): {sorted(peers)}")
    assert {name for name, _ in peers} == set(expected), peers
    assert all(expected[name] == peer for name, peer in peers), peers

    dsn = servers.endpoints.database_url.replace("postgresql+asyncpg", "postgresql")
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("select distinct host(client_addr) as addr from "
                                "pg_stat_activity where datname = $1", multi.database_url
                                .rsplit("/", 1)[1])
    finally:
        await conn.close()
    clients = {r["addr"] for r in rows} - {"127.0.0.1"}  # the test's own engine
    print(f"PostgreSQL clients of the multi-host run: {sorted(clients)}")
    assert clients == set(expected.values())
    spread.assert_running()
