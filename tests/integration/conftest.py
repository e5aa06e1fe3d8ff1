"""Fixtures of the integration tests that run roles as processes."""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from camcount import processes
from tests.conftest import Isolated
from tests.integration.pipeline_harness import camera_pipeline
from tests.integration.registry_client import registry
from tests.integration.roles import Fleet

__all__ = ["camera_pipeline"]  # a fixture, registered here for every integration test


@pytest.fixture
async def api(isolated: Isolated, engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    """The registry's API, in-process on the test's database."""
    async with registry(isolated, engine) as client:
        yield client


@pytest.fixture
def fleet(isolated: Isolated, tmp_path: Path) -> Iterator[Fleet]:
    procs = Fleet(isolated, tmp_path)
    try:
        yield procs
    finally:
        for child in procs.children.values():  # a stopped process cannot drain
            if child.alive:
                os.kill(child.proc.pid, signal.SIGCONT)
        processes.stop(list(procs.children.values()))
        for log in sorted(tmp_path.glob("*.log")):
            text = log.read_text(errors="replace")
            print(f"----- {log.name} -----\n{text[-3000:]}")
