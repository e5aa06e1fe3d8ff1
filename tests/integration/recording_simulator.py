"""The project's RTSP simulator, in-process, with every session's span recorded: tests check
from it that no camera was ever read by two sessions at once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from simulator.mounts import MountSpec, SimulatorSettings
from simulator.rtsp_server import RtspServer
from simulator.sources import prepare_mount

_PLAYING = re.compile(r"session (\w+) playing (\S+) to (\S+)")
_TORN_DOWN = re.compile(r"session (\w+) \((\S+)\) torn down by (\S+)")


@dataclass
class Session:
    mount: str
    peer: str
    opened: float
    ended: float | None = None


@dataclass(eq=False)
class RecordingSimulator(logging.Handler):
    """The project's RTSP server, with every session's PLAY and end (TEARDOWN, or the
    connection closing when the client died) timed from its own log lines and connections."""

    sessions: dict[str, Session] = field(default_factory=dict)
    closed: dict[str, float] = field(default_factory=dict)  # peer -> connection end

    def __post_init__(self) -> None:
        logging.Handler.__init__(self)

    def emit(self, record: logging.LogRecord) -> None:
        now, message = time.monotonic(), record.getMessage()
        if match := _PLAYING.search(message):
            self.sessions[match[1]] = Session(match[2], match[3], now)
        elif (match := _TORN_DOWN.search(message)) and match[1] in self.sessions:
            self.sessions[match[1]].ended = now

    def intervals(self) -> dict[str, list[tuple[float, float]]]:
        out: dict[str, list[tuple[float, float]]] = {}
        for s in self.sessions.values():
            end = s.ended if s.ended is not None else self.closed.get(s.peer, float("inf"))
            out.setdefault(s.mount, []).append((s.opened, end))
        return {mount: sorted(spans) for mount, spans in out.items()}

    def playing(self) -> set[str]:
        return {mount for mount, spans in self.intervals().items() if spans[-1][1] == float("inf")}


@contextlib.asynccontextmanager
async def recording_simulator(
    specs: list[MountSpec], host: str = "127.0.0.1",
) -> AsyncIterator[tuple[RecordingSimulator, int]]:
    """The simulator serving `specs` on a free port of `host`, recording every session's
    span."""
    media = await asyncio.gather(*(asyncio.to_thread(prepare_mount, s) for s in specs))
    server = RtspServer(SimulatorSettings(port=0, mounts=tuple(specs)),
                        {m.spec.name: m for m in media})
    recorder = RecordingSimulator()
    logger = logging.getLogger("simulator.rtsp_server")
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(recorder)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host, port = writer.get_extra_info("peername")[:2]
        try:
            await server.handle(reader, writer)
        finally:  # a session also ends when its connection does, TEARDOWN or not
            recorder.closed[f"{host}:{port}"] = time.monotonic()

    listener = await asyncio.start_server(handle, host, 0)
    try:
        yield recorder, int(listener.sockets[0].getsockname()[1])
    finally:
        listener.close()
        await server.close_all()
        logger.removeHandler(recorder)
        logger.setLevel(level)
