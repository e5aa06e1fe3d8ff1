"""How a bench stops, and what it must not leave behind.

- `StopSignals`: SIGINT and SIGTERM both ask for an orderly stop; a second one forces it.
- `die_with_us`: an argv whose process the kernel SIGTERMs when the bench dies, however it
  dies (SIGKILL, OOM, a crash before any cleanup could run).
- `check_ports_free`: a private server's port still held, or a process of an earlier run
  still pointed at this bench's servers, is named with the command that clears it.

Usage::

    with StopSignals() as stop, private_endpoints(...) as (endpoints, logs):
        result = asyncio.run(stop.run(bench(...)))  # None when a signal ended it
    return stop.exit_code if stop.requested else ...
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from types import FrameType, TracebackType
from typing import Any, TypeVar

import psutil

from contracts.secrets import mask_url

T = TypeVar("T")
Say = Callable[[str], None]
SIGNALS = (signal.SIGINT, signal.SIGTERM)
SETPRIV = shutil.which("setpriv")


def say_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class StopSignals:
    """SIGINT and SIGTERM while the block runs (installed explicitly: a shell starts a
    background job with SIGINT ignored, and asyncio.run only takes over a default handler,
    which is how Ctrl+C once went unheard for the whole soak).

    The first signal asks for an orderly stop: inside `cancels_this_task` it cancels that task
    as asyncio.run does with a first Ctrl+C, so the bench's own `finally` blocks stop what it
    started and it reports what it gathered; outside (servers starting or stopping) it is only
    noted, for the bench to act on at its next step. A second signal forces: every process
    this one started is SIGKILLed at once and the task cancelled again, so no drain is waited
    for; the private servers are still stopped. The handler only notes and hands the work to
    the event loop (call_soon_threadsafe), because a signal can interrupt any line, a print
    to the same stream included."""

    def __init__(self, say: Say = say_stderr) -> None:
        self.say = say
        self.signum: int | None = None
        self.forced = False
        self._task: asyncio.Task[Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._cancels = 0
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""

    @property
    def exit_code(self) -> int:
        """128 + the signal, as a shell reports a process that a signal ended."""
        return 128 + self.signum if self.signum is not None else 0

    def __enter__(self) -> StopSignals:
        for sig in SIGNALS:
            self._previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        # The safety net: whatever this bench started and failed to stop is ended here.
        for line in kill_descendants():
            self.say(f"left running at exit, SIGKILLed: {line}")

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        first = self.signum is None
        if first:
            self.signum = signum
        else:
            self.forced = True
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._act, signum, first)
        else:
            # No loop to hand over to: a raw write cannot collide with a print it interrupts.
            what = "stopping" if first else "forcing: SIGKILL to every process started"
            os.write(2, f"{signal.Signals(signum).name}: {what}\n".encode())
            if not first:
                kill_descendants()

    def _act(self, signum: int, first: bool) -> None:
        name = signal.Signals(signum).name
        if first:
            self.say(f"{name}: stopping every process started, in order ({name} again "
                     "forces it)")
        else:
            killed = kill_descendants()
            self.say(f"{name} again: forcing; SIGKILLed {len(killed)} process(es)"
                     + "".join(f"\n  {line}" for line in killed))
        self._cancel()

    def _cancel(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            self._cancels += 1

    @contextlib.asynccontextmanager
    async def cancels_this_task(self) -> AsyncIterator[None]:
        """While inside, a signal cancels the current task; the CancelledError that causes
        ends the block quietly (`requested` tells the caller). A signal noted before the block
        cancels it at once."""
        task = asyncio.current_task()
        assert task is not None, "cancels_this_task runs in a task"
        self._task, self._loop, self._cancels = task, asyncio.get_running_loop(), 0
        if self.requested:
            self._cancel()
        try:
            yield
        except asyncio.CancelledError:
            if not self._cancels:
                raise  # not ours
        finally:
            # After the block a signal is acted on in the handler itself: a callback handed
            # to a loop that is about to close might never run.
            self._task = self._loop = None
            for _ in range(self._cancels):
                task.uncancel()

    async def run(self, work: Awaitable[T]) -> T | None:
        """`work`'s result, or None when a signal ended it (after its own cleanup)."""
        async with self.cancels_this_task():
            return await work
        return None


def die_with_us(argv: Sequence[str]) -> list[str]:
    """`argv` under `setpriv --pdeathsig TERM`, which sets PR_SET_PDEATHSIG and execs argv in
    the same process (same pid): when this process dies, even by SIGKILL, the kernel sends the
    child SIGTERM, and a role or the worker pool drains and exits instead of running on as an
    orphan. Chosen over a ctypes prctl in preexec_fn, which is unsafe in a process with threads.
    Spawn from the main thread: the signal follows the thread that forked, not the process.
    Without setpriv (util-linux) the argv is returned as it is."""
    return [SETPRIV, "--pdeathsig", "TERM", "--", *argv] if SETPRIV else list(argv)


def kill_descendants() -> list[str]:
    """SIGKILL every live process below this one; a line per process killed."""
    killed = []
    with contextlib.suppress(psutil.Error):
        for proc in psutil.Process().children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if proc.status() != psutil.STATUS_ZOMBIE:
                    line = f"pid {proc.pid} ({' '.join(proc.cmdline())[:120]})"
                    proc.kill()
                    killed.append(line)
    return killed


class Leftovers(RuntimeError):
    """A port or a process from an earlier run stands in this bench's way."""


def check_ports_free(ports: Mapping[int, str], client_ports: Sequence[int],
                     stopped_in: str, cleanup: str) -> None:
    """Raise `Leftovers` when one of `ports` ({port: what listens there}) is held (this
    bench's own servers in `stopped_in` were stopped just before, so the holder is something
    else: a server of a crashed run whose pid file is gone, another program) or when a process
    other than this one has a RABBITMQ_URL or DATABASE_URL on one of `client_ports` (a role or
    worker pool orphaned by a run killed before it could stop them: it would join this run).
    The message names each, and `cleanup` says what else clears them."""
    problems, pids = [], []
    for pid, port, command in _listeners(set(ports)):
        holder = f"pid {pid} ({command})" if pid else "a process not visible to this user " \
            f"(`ss -ltnp 'sport = :{port}'` names it)"
        problems.append(f"port {port} ({ports[port]}) is in use by {holder}")
        pids += [pid] if pid else []
    for pid, command, url in _clients(client_ports):
        problems.append(f"pid {pid} ({command}) of an earlier run still uses {url}")
        pids.append(pid)
    if problems:
        kill = f"`kill {' '.join(str(p) for p in sorted(set(pids)))}`" if pids else "stop them"
        raise Leftovers("\n  ".join([
            f"cannot start the private servers (those in {stopped_in} are stopped):",
            *problems,
            f"stop them with {kill} and run again, or {cleanup}"]))


def _listeners(ports: set[int]) -> Iterator[tuple[int | None, int, str]]:
    try:
        connections = psutil.net_connections(kind="tcp")
    except psutil.AccessDenied:  # not root on a system that hides others' sockets
        for port in sorted(ports):
            with socket.socket() as sock:
                sock.settimeout(1)
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    yield None, port, "?"
        return
    seen = set()
    for conn in connections:
        local = conn.laddr.port if isinstance(conn.laddr, tuple) and conn.laddr else None
        if conn.status == psutil.CONN_LISTEN and local in ports and local not in seen:
            seen.add(local)
            yield conn.pid, local, _command(conn.pid)


def _clients(ports: Sequence[int]) -> Iterator[tuple[int, str, str]]:
    needles = tuple(f"127.0.0.1:{port}/" for port in ports)
    for proc in psutil.process_iter(["pid", "environ"]):
        if proc.pid == os.getpid():
            continue
        environ = proc.info.get("environ") or {}
        for name in ("RABBITMQ_URL", "DATABASE_URL"):
            value = environ.get(name, "")
            if any(needle in value for needle in needles):
                yield proc.pid, _command(proc.pid), f"{name}={mask_url(value)}"
                break


def _command(pid: int | None) -> str:
    if not pid:
        return "?"
    with contextlib.suppress(psutil.Error):
        return " ".join(" ".join(psutil.Process(pid).cmdline()).split())[:160]
    return "?"
