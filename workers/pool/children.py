"""Worker processes as asyncio subprocesses: spawned with their own environment, their output
relayed with the worker id on every line, signalled, and polled on their ops endpoint.

Not camcount/processes.py's `spawn`: that one blocks (Popen.wait) and writes to a file, while
the pool must watch many children from one event loop and tag their output line by line.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import socket
import sys
from collections.abc import Mapping, Sequence
from typing import Any, BinaryIO

import httpx

log = logging.getLogger("camcount.pool")

WORKER_ARGV = (sys.executable, "-m", "workers")
MAX_LINE_BYTES = 64 * 1024  # a longer "line" (a binary blob) is cut, not buffered forever
_PR_SET_PDEATHSIG = 1

_LIBC: ctypes.CDLL | None = None
if sys.platform == "linux":
    with contextlib.suppress(OSError):
        _LIBC = ctypes.CDLL(None, use_errno=True)


def _die_with_the_manager() -> None:
    """In the child, before exec: SIGTERM it (a drain) if the manager dies, even by SIGKILL.
    An orphan would keep consuming its queue beside the replacement a new manager starts
    under the same worker id."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


async def spawn(argv: Sequence[str], env: Mapping[str, str]) -> asyncio.subprocess.Process:
    """In its own session, so a terminal's Ctrl+C reaches only the manager, which then drains
    the workers itself; stdout and stderr in one pipe, for the relay."""
    return await asyncio.create_subprocess_exec(
        *argv, env=dict(env), stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        start_new_session=True, preexec_fn=_die_with_the_manager,
    )


async def relay_output(stream: asyncio.StreamReader, worker_id: str, sink: BinaryIO) -> None:
    """Copy a child's output to the manager's, each line tagged `[worker_id]` unless the
    worker's own log format (infra/logs.py) already put the tag there."""
    tag = f"[{worker_id}]".encode()

    def emit(lines: list[bytes]) -> None:
        if lines:
            sink.write(b"".join((line if tag in line else tag + b" " + line) + b"\n"
                                for line in lines))
            sink.flush()

    pending = b""
    while chunk := await stream.read(MAX_LINE_BYTES):
        *lines, pending = (pending + chunk).split(b"\n")
        if len(pending) >= MAX_LINE_BYTES:
            lines.append(pending)
            pending = b""
        emit(lines)
    emit([pending] if pending else [])


def send(proc: asyncio.subprocess.Process, sig: signal.Signals) -> None:
    """A signal to the worker itself (SIGTERM: it drains on its own terms)."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)


def kill_group(proc: asyncio.subprocess.Process) -> None:
    """SIGKILL to the worker's whole process group: nothing it started outlives it."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


def free_port(host: str) -> int:
    """A port free now. Another process could take it before the worker binds it; the worker
    then fails to start, and its restart gets a new port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def poll_host(ops_host: str) -> str:
    return "127.0.0.1" if ops_host in ("", "0.0.0.0") else ops_host


async def poll_health(http: httpx.AsyncClient, host: str, port: int) -> dict[str, Any] | None:
    """A worker's /health (503 while it does not consume, with the same JSON); None when it is
    not answering yet or any more."""
    try:
        response = await http.get(f"http://{host}:{port}/health")
        report = response.json()
    except (httpx.HTTPError, ValueError):
        return None
    return report if isinstance(report, dict) else None
