"""bench/lifetime.py with real processes (no servers): SIGINT and SIGTERM stop a bench in order
even when it was started with SIGINT ignored, a second signal forces a stuck cleanup, a child
dies with a bench killed outright, and leftovers in a bench's way are named."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from bench.lifetime import Leftovers, check_ports_free
from tests.support import eventually

REPO_ROOT = Path(__file__).resolve().parents[2]


def _ignore_sigint() -> None:
    # What a non-interactive shell does to a job it starts with `&`.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class Bench:
    def __init__(self, mode: str, until: str = "ready ") -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.bench_lifetime_child", mode],
            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            preexec_fn=_ignore_sigint)
        assert self.proc.stdout is not None
        self.lines: list[str] = []
        seen = False
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())
            if line.startswith("ready "):
                self.grandchild = psutil.Process(int(line.split()[1]))
            seen = seen or line.startswith(until)
            if seen and hasattr(self, "grandchild"):
                return
        raise AssertionError(f"no {until!r} line: {self.lines}")

    def finish(self, timeout_s: float = 60) -> str:
        out, _ = self.proc.communicate(timeout=timeout_s)
        self.lines += out.splitlines()
        return "\n".join(self.lines)


@pytest.fixture
def benches() -> Iterator[list[Bench]]:
    started: list[Bench] = []
    yield started
    for bench in started:  # a failed test leaves nothing running
        if bench.proc.poll() is None:
            bench.proc.kill()
            bench.proc.wait(10)
        with contextlib.suppress(psutil.Error):
            bench.grandchild.kill()  # psutil checks it is still the process it was


async def _gone(proc: psutil.Process) -> None:
    async def running() -> bool:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE

    await eventually(running, lambda alive: not alive, timeout_s=30)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
async def test_a_signal_stops_the_bench_in_order_even_with_sigint_ignored(
        benches: list[Bench], sig: signal.Signals) -> None:
    bench = Bench("orderly")
    benches.append(bench)
    bench.proc.send_signal(sig)
    log = bench.finish()
    assert bench.proc.returncode == 128 + sig, log
    assert "cleaned" in log and "result None" in log, log  # its finally ran; no result
    await _gone(bench.grandchild)


async def test_a_second_signal_forces_a_cleanup_that_waits_on_a_stuck_child(
        benches: list[Bench]) -> None:
    bench = Bench("stubborn", until="armed")
    benches.append(bench)
    bench.proc.send_signal(signal.SIGINT)
    # The grandchild ignores the SIGTERM of the orderly stop, which waits for it.
    with pytest.raises(subprocess.TimeoutExpired):
        bench.proc.wait(2)
    assert bench.grandchild.is_running()
    bench.proc.send_signal(signal.SIGINT)
    log = bench.finish()
    assert bench.proc.returncode == 130, log
    assert "SIGINT again: forcing; SIGKILLed 1 process(es)" in log, log
    await _gone(bench.grandchild)


async def test_a_child_dies_with_a_bench_killed_outright(benches: list[Bench]) -> None:
    bench = Bench("orphan")
    benches.append(bench)
    bench.proc.kill()  # no cleanup can run
    bench.finish()
    await _gone(bench.grandchild)  # the kernel's SIGTERM (PR_SET_PDEATHSIG)


def test_a_held_port_and_a_process_of_an_earlier_run_are_named() -> None:
    with socket.socket() as held, socket.socket() as free:
        held.bind(("127.0.0.1", 0))
        held.listen()
        free.bind(("127.0.0.1", 0))
        held_port, free_port = held.getsockname()[1], free.getsockname()[1]
        free.close()
        check_ports_free({free_port: "PostgreSQL"}, [free_port], "/state", "pick others")
        url = f"amqp://guest:s3cret@127.0.0.1:{free_port}/"
        orphan = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"],
                                  env={"RABBITMQ_URL": url})
        try:
            with pytest.raises(Leftovers) as raised:
                check_ports_free({held_port: "RabbitMQ"}, [free_port], "/state", "pick others")
        finally:
            orphan.kill()
            orphan.wait()
    message = str(raised.value)
    assert f"port {held_port} (RabbitMQ) is in use by pid {psutil.Process().pid}" in message
    assert f"pid {orphan.pid} (" in message and f"127.0.0.1:{free_port}/" in message
    assert "s3cret" not in message, message
    assert f"`kill {' '.join(str(p) for p in sorted([psutil.Process().pid, orphan.pid]))}`" \
        in message, message
    assert "in /state are stopped" in message and "pick others" in message
