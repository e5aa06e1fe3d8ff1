"""GStreamer's RTSP server (tests/peers/gst_rtsp_server.py) as a process tests can start,
kill -9, freeze (SIGSTOP), thaw and restart on the same port.

It runs under Debian's /usr/bin/python3 because python3-gi serves only that interpreter;
./scripts/bootstrap installs the packages. Where they are missing, `start()` skips the test
and says which package to install.
"""

from __future__ import annotations

import functools
import os
import selectors
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Literal
from urllib.parse import quote, urlsplit

import pytest

SYSTEM_PYTHON = "/usr/bin/python3"
SERVER_SCRIPT = Path(__file__).resolve().parents[1] / "peers" / "gst_rtsp_server.py"
READY_PREFIX = "gst-rtsp ready "
INSTALL_HINT = (
    "run ./scripts/bootstrap (Debian packages gir1.2-gst-rtsp-server-1.0, gstreamer1.0-rtsp,"
    " gstreamer1.0-plugins-ugly, python3-gi, ...)"
)
_PROBE = """
import gi
gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gst, GstRtspServer
Gst.init(None)
print(" ".join(e for e in ("videotestsrc", "x264enc", "rtph264pay")
               if Gst.ElementFactory.find(e) is None))
"""

Auth = Literal["basic", "digest"]


class GstPeerError(RuntimeError):
    """The peer did not come up (or misbehaved); the message carries its stderr."""


@functools.cache
def gst_missing_reason() -> str | None:
    """Why the peer cannot run here, or None when /usr/bin/python3 has everything it needs."""
    if not Path(SYSTEM_PYTHON).is_file():
        return f"{SYSTEM_PYTHON} not found: the GStreamer RTSP peer needs Debian's python3-gi"
    try:
        probe = subprocess.run(
            [SYSTEM_PYTHON, "-c", _PROBE], capture_output=True, text=True, timeout=60,
            env=_clean_env(),
        )
    except subprocess.TimeoutExpired:
        return f"{SYSTEM_PYTHON} took over 60 s to load GStreamer"
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["no output"])[-1]
        return f"{SYSTEM_PYTHON} cannot import gi/GstRtspServer ({last}): {INSTALL_HINT}"
    if missing := probe.stdout.strip():
        return f"GStreamer elements missing: {missing}: {INSTALL_HINT}"
    return None


def free_port() -> int:
    """A TCP port nothing listens on right now (another process may take it later)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _clean_env() -> dict[str, str]:
    # The venv must not leak into Debian's interpreter: it would find the wrong packages.
    drop = {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}
    return {key: value for key, value in os.environ.items() if key not in drop}


class GstRtspPeer:
    """One GStreamer RTSP server process; `with GstRtspPeer(...) as peer:` always kills it.

    `port=None` lets the server pick a free port on the first start; `restart()` reuses it.
    The stream is H.264 640x360 at 25 fps on `mount`; UDP is offered unless `udp_ok=False`.
    It listens on `host`: loopback by default, tests/camera_host.py's address for a camera
    registered through the API (which refuses loopback).
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        mount: str = "/cam",
        auth: Auth | None = None,
        user: str | None = None,
        password: str | None = None,
        frozen: bool = False,
        udp_ok: bool = True,
        ready_timeout_s: float = 20.0,
    ) -> None:
        if auth is not None and (user is None or password is None):
            raise ValueError("auth needs user and password")
        self.port = port
        self.host = host
        self.mount = mount
        self.auth = auth
        self.user = user
        self.password = password
        self.frozen = frozen
        self.udp_ok = udp_ok
        self.ready_timeout_s = ready_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> GstRtspPeer:
        """Start the server and wait for its ready line; skip the test where GStreamer is absent."""
        if self.running:
            raise GstPeerError("already running")
        if (reason := gst_missing_reason()) is not None:
            pytest.skip(reason)
        if self._stderr is None:
            self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the peer
        self._proc = subprocess.Popen(
            [SYSTEM_PYTHON, str(SERVER_SCRIPT), *self._arguments()],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=_clean_env(),
        )
        try:
            line = self._read_ready_line()
        except BaseException:
            self.kill()
            raise
        port = urlsplit(line.removeprefix(READY_PREFIX)).port
        if port is None or (self.port not in (None, port)):
            self.kill()
            raise GstPeerError(f"unexpected ready line {line!r} (wanted port {self.port})")
        self.port = port
        return self

    def kill(self) -> None:
        """SIGKILL: the server vanishes without a TEARDOWN, an RTCP BYE or a FIN of its own."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()  # SIGKILL also ends a SIGSTOPped process
        proc.wait(timeout=10)
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()

    def pause(self) -> None:
        """SIGSTOP: connections stay open but nothing is sent or answered."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    def restart(self) -> GstRtspPeer:
        """Kill and start again on the same port (clients see a new SSRC and session)."""
        self.kill()
        return self.start()

    def close(self) -> None:
        self.kill()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def __enter__(self) -> GstRtspPeer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- queries -------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def url(
        self, user: str | None = None, password: str | None = None, path: str | None = None
    ) -> str:
        """rtsp://[user[:password]@]host:port/path, credentials percent-encoded;
        `path` defaults to the mount."""
        if self.port is None:
            raise GstPeerError("the peer has no port yet: start() it first")
        userinfo = ""
        if user is not None:
            userinfo = quote(user, safe="")
            if password is not None:
                userinfo += ":" + quote(password, safe="")
            userinfo += "@"
        return f"rtsp://{userinfo}{self.host}:{self.port}{path or self.mount}"

    def stderr_tail(self, limit: int = 3000) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-limit:]

    # -- internals -----------------------------------------------------------------------

    def _arguments(self) -> list[str]:
        args = ["--port", str(self.port or 0), "--host", self.host, "--mount", self.mount,
                "--quit-on-stdin-eof"]
        if self.auth is not None:
            args += ["--auth", self.auth, "--user", self.user or "", "--password",
                     self.password or ""]
        if self.frozen:
            args.append("--frozen")
        if self.udp_ok:
            args.append("--udp-ok")
        return args

    def _read_ready_line(self) -> str:
        assert self._proc is not None and self._proc.stdout is not None
        deadline = time.monotonic() + self.ready_timeout_s
        buffer = b""
        with selectors.DefaultSelector() as selector:
            selector.register(self._proc.stdout, selectors.EVENT_READ)
            while b"\n" not in buffer:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise GstPeerError(
                        f"no ready line within {self.ready_timeout_s:g} s; stderr:\n"
                        f"{self.stderr_tail()}"
                    )
                if not selector.select(timeout=left):
                    continue
                chunk = os.read(self._proc.stdout.fileno(), 4096)
                if not chunk:
                    code = self._proc.wait(timeout=10)
                    raise GstPeerError(
                        f"the server exited ({code}) before it was ready; stderr:\n"
                        f"{self.stderr_tail()}"
                    )
                buffer += chunk
        line = buffer.split(b"\n", 1)[0].decode()
        if not line.startswith(READY_PREFIX):
            raise GstPeerError(f"unexpected first line {line!r}; stderr:\n{self.stderr_tail()}")
        return line

    def _signal(self, signum: signal.Signals) -> None:
        if not self.running:
            raise GstPeerError(f"cannot send {signum.name}: the server is not running")
        assert self._proc is not None
        os.kill(self._proc.pid, signum)
