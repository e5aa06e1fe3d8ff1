"""Every role exits promptly on SIGTERM even when its RabbitMQ and PostgreSQL are gone.

Kubernetes and systemd send SIGTERM and wait a grace period before SIGKILL; orphaned roles whose
broker and database had been stopped once ignored SIGTERM (reconnect loops, a consumer cancel
waiting for a broker that never comes back, uvicorn waiting on connections). All roles run at
once against private servers, which are then stopped (or SIGKILLed); each role's exit time is
recorded per variant, and one test per (variant, role) checks it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from camcount import processes
from tests.faults.servers import PrivateServers, private_servers
from tests.integration.roles import free_port

pytestmark = pytest.mark.slow

BOUND_S = 10.0  # infra/runner.py's default shutdown timeout
SECRET = "s" * 40
VARIANTS = ("stopped", "killed")


@dataclass(frozen=True)
class Role:
    argv: list[str]
    env: dict[str, str]
    ready: str  # the role's one "ready" log line starts with this


def _roles() -> dict[str, Role]:
    ops = {"LOG_LEVEL": "INFO"}
    return {
        "registry": Role(processes.role_argv("registry"), {
            **ops, "HTTP_PORT": str(free_port()), "WS_TICKET_SECRET": SECRET}, "registry ready"),
        "broadcaster": Role(processes.role_argv("broadcaster"), {
            **ops, "WS_PORT": str(free_port()), "WS_TICKET_SECRET": SECRET},
            "broadcaster ready"),
        "balancer": Role(processes.role_argv("balancer"), {**ops, "BALANCER_ID": "b1"},
                         "balancer ready"),
        "ingest": Role(processes.role_argv("ingest"), {**ops, "NODE_ID": "i1"}, "ingest ready"),
        "worker": Role(processes.role_argv("worker"), {**ops, "WORKER_ID": "w1"},
                       "worker ready"),
        "pool": Role(processes.cli_argv("workers"), {
            **ops, "POOL_HTTP_PORT": str(free_port()), "NUM_WORKERS": "1", "POOL_ID": "p1",
            "WORKER_OPS_PORT_BASE": "0"}, "camcount.worker: worker ready"),  # its worker's
        "videos": Role(processes.role_argv("videos"), {**ops, "RUNNER_ID": "v1"},
                       "video runner ready"),
    }


ROLES = tuple(_roles())


@dataclass(frozen=True)
class Outcome:
    exit_s: float | None  # None: still running at the deadline (then SIGKILLed)
    code: int | None
    log_tail: str
    crashed: bool  # exited before the SIGTERM, when its servers went away


def _sigkill_servers(private: PrivateServers) -> None:
    """SIGKILL both servers and leave them down (PrivateServers.kill_rabbitmq restarts)."""
    pids = [int(private.cfg.rabbit_pid_file.read_text().split()[0]),
            int((private.cfg.pg_data / "postmaster.pid").read_text().split()[0])]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in pids):
        time.sleep(0.05)
    private.cfg.rabbit_pid_file.unlink(missing_ok=True)


def _stop_servers(private: PrivateServers) -> None:
    private.stop_rabbitmq()
    private.stop_postgresql()


def _log(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def _run_variant(private: PrivateServers, variant: str, logs: Path) -> dict[str, Outcome]:
    iso = asyncio.run(private.kept_space())
    roles = _roles()
    children: dict[str, processes.Child] = {}
    try:
        for name, role in roles.items():
            env = {**iso.env(), **role.env, "OPS_PORT": str(free_port())}
            children[name] = processes.spawn(name, role.argv, env, logs / f"{name}.log")
        deadline = time.monotonic() + 90
        waiting = set(roles)
        while waiting and time.monotonic() < deadline:
            for name in list(waiting):
                if roles[name].ready in _log(logs / f"{name}.log"):
                    waiting.discard(name)
                elif children[name].proc.poll() is not None:
                    raise AssertionError(f"{name} exited before ready:\n"
                                         f"{_log(logs / f'{name}.log')[-3000:]}")
            time.sleep(0.2)
        assert not waiting, f"never ready: {sorted(waiting)}"
        (_stop_servers if variant == "stopped" else _sigkill_servers)(private)
        time.sleep(3)  # long enough for every reconnect loop to be in full swing
        crashed = {name for name, child in children.items() if child.proc.poll() is not None}
        sent = time.monotonic()
        for child in children.values():
            child.proc.send_signal(signal.SIGTERM)
        exits: dict[str, float | None] = dict.fromkeys(children)
        patience = sent + BOUND_S + 20  # to tell "slow" from "hangs" in the failure message
        while time.monotonic() < patience and None in exits.values():
            for name, child in children.items():
                if exits[name] is None and child.proc.poll() is not None:
                    exits[name] = time.monotonic() - sent
            time.sleep(0.05)
        return {name: Outcome(exits[name], children[name].proc.returncode,
                              _log(logs / f"{name}.log")[-3000:], name in crashed)
                for name in roles}
    finally:
        for child in children.values():
            if child.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.proc.pid, signal.SIGKILL)
                child.proc.wait(10)
            if child.log:
                child.log.close()
        private.start()


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, dict[str, Outcome]]]:
    # A short path under /tmp: PostgreSQL's socket path must fit in 107 bytes.
    with private_servers(Path(tempfile.mkdtemp(prefix="camcount-shutdown-"))) as private:
        results: dict[str, dict[str, Outcome]] = {}
        for variant in VARIANTS:
            logs = tmp_path_factory.mktemp(f"shutdown-{variant}")
            results[variant] = _run_variant(private, variant, logs)
        for variant, found in results.items():  # shown with -s: the figures behind the verdicts
            print(f"[servers {variant}] " + ", ".join(
                f"{name} {'hung' if o.exit_s is None else f'{o.exit_s:.1f}s'} code={o.code}"
                for name, o in found.items()))
        yield results


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("variant", VARIANTS)
def test_role_exits_promptly_on_sigterm_with_services_gone(
    outcomes: dict[str, dict[str, Outcome]], variant: str, role: str
) -> None:
    outcome = outcomes[variant][role]
    # Supervisors restart a crashed role, but it must ride out its servers' absence instead.
    assert not outcome.crashed, f"{role} died when its servers were {variant}\n{outcome.log_tail}"
    assert outcome.exit_s is not None and outcome.exit_s <= BOUND_S + 2, (
        f"{role} with servers {variant}: exit after SIGTERM "
        f"{'never (SIGKILLed)' if outcome.exit_s is None else f'{outcome.exit_s:.1f}s'}\n"
        f"{outcome.log_tail}")
    # 0: a clean stop; 124: the shutdown timeout passed and what hung was abandoned (logged).
    assert outcome.code in (0, 124), f"{role}: exit code {outcome.code}\n{outcome.log_tail}"
    if outcome.code == 124:
        assert "abandoned" in outcome.log_tail, outcome.log_tail
