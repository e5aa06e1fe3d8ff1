"""Fixtures of the fault suite: a private RabbitMQ and PostgreSQL per module (for scenarios
that restart, kill or stop them), and a fresh database and vhost on them per scenario."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.conftest import Isolated
from tests.faults.figures import REPORTS
from tests.faults.servers import PrivateServers, private_servers


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if REPORTS:
        terminalreporter.section("fault suite figures")
        for scenario, text in REPORTS:
            terminalreporter.write_line(f"[{scenario}]")
            for line in text.splitlines():
                terminalreporter.write_line(f"  {line}")


@pytest.fixture(scope="module")
def private() -> Iterator[PrivateServers]:
    # A short path under /tmp: PostgreSQL's socket path must fit in 107 bytes.
    with private_servers(Path(tempfile.mkdtemp(prefix="camcount-faults-"))) as servers:
        yield servers


@pytest.fixture
async def private_isolated(private: PrivateServers) -> AsyncIterator[Isolated]:
    async with private.isolated() as iso:
        yield iso
