"""A resolver for camera URL validation that answers from a table, recording what it was
asked: tests decide what a name resolves to without touching the machine's DNS (unless they
pass the real resolver as `fallback`, for the names the table lacks)."""

from __future__ import annotations

import socket
from collections.abc import Mapping, Sequence

from registry.camera_urls import Resolver


class FakeDns:
    def __init__(self, names: Mapping[str, Sequence[str]] | None = None,
                 fallback: Resolver | None = None) -> None:
        self.names = dict(names or {})
        self.asked: list[str] = []
        self._fallback = fallback

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        if host in self.names:
            return list(self.names[host])
        if self._fallback is not None:
            return list(await self._fallback(host, port))
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
