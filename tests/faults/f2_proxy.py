"""A TCP proxy in front of a camera, to cut it off the way networks and cameras fail (the aio-pika
tests' way: a real proxy instead of mocks):

- `down()`: the camera is gone; the listener closes and every connection is reset, so new
  connects are refused; `up()` listens again on the same port.
- `hang()`: TCP still accepts, but nothing passes either way (a camera wedged after accept, or
  a network path that black-holes packets); `release()` forwards again, for new connections
  only: a hung connection stays hung, as it would.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from infra.runner import cancel_and_wait

_CHUNK = 65536


class _Link:
    silent = False


class CameraProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.connections = 0
        self._hung = False
        self._server: asyncio.Server | None = None
        self._links: dict[asyncio.Task[None], _Link] = {}

    async def up(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def down(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._links):
            await cancel_and_wait(task)

    def hang(self) -> None:
        self._hung = True
        for link in self._links.values():
            link.silent = True

    def release(self) -> None:
        self._hung = False

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        link = self._links[task] = _Link()
        upstream: asyncio.StreamWriter | None = None
        try:
            if self._hung:
                await reader.read()  # accepted, never answered
                return
            up_reader, upstream = await asyncio.open_connection(*self.target)
            pumps = [asyncio.create_task(self._pump(reader, upstream, link)),
                     asyncio.create_task(self._pump(up_reader, writer, link))]
            try:
                await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for pump in pumps:
                    await cancel_and_wait(pump)
        except OSError:
            pass
        finally:
            del self._links[task]
            for w in (writer, upstream):
                if w is not None:
                    w.transport.abort()  # a reset, like a camera that vanished

    @staticmethod
    async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter,
                    link: _Link) -> None:
        with contextlib.suppress(OSError):
            while data := await source.read(_CHUNK):
                if link.silent:
                    continue  # swallowed: the connection stays open and says nothing
                sink.write(data)
                await sink.drain()


@contextlib.asynccontextmanager
async def camera_proxy(target_host: str, target_port: int) -> AsyncIterator[CameraProxy]:
    proxy = CameraProxy(target_host, target_port)
    await proxy.up()
    try:
        yield proxy
    finally:
        await proxy.down()
