"""What the dashboard's browser tests share: real Chromium (Playwright's Python API launching
Debian's /usr/bin/chromium), role processes serving the page and the live channel, a page
that fails the test on any uncaught script error, and screenshots kept under test-artifacts/."""

from __future__ import annotations

import contextlib
import secrets
import socket
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from camcount import processes
from tests.conftest import Isolated
from tests.support import eventually

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
    "--disable-dev-shm-usage",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
WIDTH = 1100  # the narrowest screen the dashboard is made for


def need_chromium() -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (./scripts/bootstrap installs it)")


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    need_chromium()
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@contextlib.asynccontextmanager
async def dashboard(browser: Browser, base: str, key: str, *, view: str = "",
                    height: int = 900, timezone: str = "UTC") -> AsyncIterator[Page]:
    """The dashboard opened with `key` in the link's fragment, as an administrator hands it
    out, in a browser whose clock shows `timezone`. An uncaught error in the page's scripts
    fails the test when the block ends."""
    page = await browser.new_page(viewport={"width": WIDTH, "height": height},
                                  accept_downloads=True, timezone_id=timezone)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(f"{base}/#key={key}")
    await page.wait_for_selector("#views:not([hidden])", timeout=10_000)
    if view:
        await show(page, view)
    try:
        yield page
    finally:
        await page.close()
    assert not errors, errors


async def show(page: Page, view: str) -> None:
    """Switch to a view by its tab, as a person does, and wait until it is shown."""
    await page.click(f'#tabs a[data-view="{view}"]')
    await page.wait_for_selector(f"#view-{view}:not([hidden])", timeout=5000)


async def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Roles:
    """Role processes of one test, sharing a WebSocket ticket secret; the registry serves the
    page and the API at `base`, the broadcaster the live channel the page is allowed on."""

    isolated: Isolated
    logs: Path
    http_port: int = field(default_factory=free_port)
    ws_port: int = field(default_factory=free_port)
    secret: str = field(default_factory=lambda: secrets.token_hex(32))
    children: list[processes.Child] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def env(self) -> dict[str, str]:
        return {
            **self.isolated.env(), "HTTP_PORT": str(self.http_port),
            "WS_PORT": str(self.ws_port), "WS_TICKET_SECRET": self.secret,
            "BROADCASTER_PUBLIC_URL": f"ws://127.0.0.1:{self.ws_port}/ws",
            "ALLOWED_ORIGINS": self.base, "LOG_LEVEL": "INFO",
        }

    def start(self, role: str, **env: str) -> processes.Child:
        return self.spawn(role, processes.role_argv(role), **env)

    def spawn(self, name: str, argv: list[str], **env: str) -> processes.Child:
        full = {**self.env(), "OPS_PORT": str(free_port()), **env}
        child = processes.spawn(name, argv, full, self.logs / f"{name}.log")
        self.children.append(child)
        return child

    async def ready(self) -> None:
        """The registry answers and the broadcaster relays (its /health says ok)."""
        async def registry_health() -> int:
            self._none_exited()
            try:
                async with httpx.AsyncClient(timeout=2) as http:
                    return (await http.get(f"{self.base}/health")).status_code
            except httpx.HTTPError:
                return 0

        await eventually(registry_health, lambda code: code == 200, timeout_s=60)

    def _none_exited(self) -> None:
        dead = [f"{c.name} (exit {c.proc.returncode})" for c in self.children if not c.alive]
        if dead:
            raise RuntimeError(f"{', '.join(dead)} exited (see the logs printed below)")

    def stop(self) -> dict[str, int | None]:
        processes.stop(self.children)
        return {c.name: c.proc.returncode for c in self.children}

    def print_logs(self) -> None:
        for log in sorted(self.logs.glob("*.log")):
            print(f"----- {log.name} -----\n{log.read_text(errors='replace')[-4000:]}")


@contextlib.asynccontextmanager
async def roles(isolated: Isolated, logs: Path, names: Iterable[str],
                **env: Any) -> AsyncIterator[Roles]:
    """Start `names` (registry first, so the API is up before anything needs it), stop them
    gracefully afterwards and print their logs' tails."""
    started = Roles(isolated, logs)
    try:
        for name in names:
            started.start(name, **{k: str(v) for k, v in env.items()})
        await started.ready()
        yield started
        codes = started.stop()
        assert all(code == 0 for code in codes.values()), codes  # graceful shutdown
    finally:
        started.stop()
        started.print_logs()
