"""Role processes placed on hosts: each in a network namespace (tests/faults/netns.py) or, with
no host, on this machine over loopback. Like tests/integration/roles.py's Fleet, whose
heartbeat settings it shares, but a namespaced process's ops server is reached at its host's
address."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from camcount import processes
from tests.faults.netns import Host
from tests.integration.roles import BALANCER_ENV, WORKER_ENV, free_port
from tests.support import eventually

# Every namespace has its own ports: the same one serves ops in each.
NAMESPACED_OPS_PORT = 9100


@dataclass
class Deployment:
    """`env` (RABBITMQ_URL, DATABASE_URL, ...) is what every process gets; `remote_env` replaces
    it for namespaced processes, which reach the servers at the bridge address."""

    logs: Path
    env: dict[str, str]
    remote_env: dict[str, str]
    children: dict[str, processes.Child] = field(default_factory=dict)
    ops: dict[str, str] = field(default_factory=dict)  # name -> base URL of /health, /metrics

    def start(self, name: str, argv: Sequence[str], env: dict[str, str],
              host: Host | None = None) -> processes.Child:
        if host is None:
            port = free_port()
            base = {**self.env, "OPS_HOST": "127.0.0.1", "OPS_PORT": str(port)}
            self.ops[name] = f"http://127.0.0.1:{port}"
        else:
            argv = host.argv(argv)
            base = {**self.env, **self.remote_env, "OPS_HOST": "0.0.0.0",
                    "OPS_PORT": str(NAMESPACED_OPS_PORT)}
            self.ops[name] = f"http://{host.address}:{NAMESPACED_OPS_PORT}"
        child = processes.spawn(name, argv, {**base, **env}, self.logs / f"{name}.log")
        self.children[name] = child
        return child

    def role(self, name: str, role: str, host: Host | None = None,
             **env: str) -> processes.Child:
        return self.start(name, processes.role_argv(role), env, host)

    def worker(self, worker_id: str, host: Host | None = None, **env: str) -> processes.Child:
        return self.role(worker_id, "worker", host, **{**WORKER_ENV, "WORKER_ID": worker_id,
                                                       **env})

    def balancer(self, balancer_id: str, host: Host | None = None,
                 **env: str) -> processes.Child:
        return self.role(balancer_id, "balancer", host,
                         **{**BALANCER_ENV, "BALANCER_ID": balancer_id, **env})

    async def get(self, name: str, path: str) -> httpx.Response | None:
        try:
            async with httpx.AsyncClient(timeout=2) as http:
                return await http.get(f"{self.ops[name]}{path}")
        except httpx.HTTPError:
            return None

    async def health(self, name: str) -> dict[str, Any]:
        response = await self.get(name, "/health")
        return response.json() if response is not None and response.status_code == 200 else {}

    async def metric(self, name: str, metric: str, **labels: str) -> float | None:
        """Sum of a Prometheus metric's samples whose labels include `labels`; None when the
        process does not answer."""
        response = await self.get(name, "/metrics")
        if response is None:
            return None
        return sum(sample.value
                   for family in text_string_to_metric_families(response.text)
                   for sample in family.samples
                   if sample.name == metric and labels.items() <= sample.labels.items())

    async def live_workers(self, balancer: str) -> set[str]:
        return set((await self.health(balancer)).get("live_workers", []))

    async def wait_live(self, balancer: str, workers: set[str], timeout_s: float = 90) -> None:
        await eventually(lambda: self.live_workers(balancer), lambda live: workers <= live,
                         timeout_s=timeout_s, interval_s=0.2)

    def assert_running(self) -> None:
        dead = {n: c.proc.returncode for n, c in self.children.items() if not c.alive}
        assert not dead, f"exited early (see their logs): {dead}"

    def stop(self) -> dict[str, int | None]:
        """Stops every process (SIGTERM, then SIGKILL); returns the exit codes."""
        for child in self.children.values():
            if child.alive:  # a stopped process cannot drain
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.proc.pid, signal.SIGCONT)
        processes.stop(list(self.children.values()))
        return {name: child.proc.returncode for name, child in self.children.items()}

    def print_logs(self, tail_chars: int = 3000) -> None:
        for log in sorted(self.logs.glob("*.log")):
            print(f"----- {log.name} -----\n{log.read_text(errors='replace')[-tail_chars:]}")


@contextlib.contextmanager
def deployed(logs: Path, env: dict[str, str], remote_env: dict[str, str]
             ) -> Iterator[Deployment]:
    """A deployment whose processes are stopped on exit and whose log tails are printed."""
    logs.mkdir(parents=True, exist_ok=True)
    deployment = Deployment(logs, env, remote_env)
    try:
        yield deployment
    finally:
        deployment.stop()
        deployment.print_logs()
