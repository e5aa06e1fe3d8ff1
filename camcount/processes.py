"""Starting and stopping role processes: used by `camcount up` and by the end-to-end tests."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

ROLE_MODULES = {
    "registry": "registry",
    "broadcaster": "broadcaster",
    "balancer": "balancer",
    "worker": "workers",
    "ingest": "ingest",
    "videos": "videos",
}


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log: IO[bytes] | None = None

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None


def role_argv(role: str) -> list[str]:
    return [sys.executable, "-m", ROLE_MODULES[role]]


def cli_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "camcount", *args]


def spawn(
    name: str, argv: Sequence[str], env: Mapping[str, str], log_path: Path | None = None
) -> Child:
    """Start a child in its own process group (so Ctrl+C reaches only the supervisor, which
    then stops the children in order)."""
    log = log_path.open("ab") if log_path else None
    proc = subprocess.Popen(
        list(argv), env={**os.environ, **env}, stdin=subprocess.DEVNULL,
        stdout=log, stderr=subprocess.STDOUT if log else None, start_new_session=True,
    )
    return Child(name, proc, log)


def stop(children: Sequence[Child], timeout_s: float = 15.0) -> None:
    """SIGTERM in reverse start order (producers first is the caller's choice), then SIGKILL
    whatever has not drained by the deadline."""
    for child in reversed(children):
        if child.alive:
            with contextlib.suppress(ProcessLookupError):
                child.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for child in reversed(children):
        remaining = max(0.1, deadline - time.monotonic())
        try:
            child.proc.wait(remaining)
        except subprocess.TimeoutExpired:
            child.proc.kill()
            child.proc.wait(5)
        if child.log:
            child.log.close()


def wait_healthy(url: str, children: Sequence[Child], timeout_s: float = 60) -> None:
    """Poll an HTTP health URL until 200, failing fast if a child exits meanwhile."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        dead = [f"{c.name} (exit {c.proc.returncode})" for c in children if not c.alive]
        if dead:
            raise RuntimeError(f"{', '.join(dead)} exited during start-up (see its log)")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not become healthy in {timeout_s:.0f}s")
