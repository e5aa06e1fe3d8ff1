"""Where tests serve simulated cameras that they register through the API: this machine's
non-loopback IPv4 address (camera URLs on loopback are refused), with the registry settings
that let the registry accept a camera there."""

from __future__ import annotations

import functools
from typing import Any

import pytest

from camcount.host_address import NoHostAddress, host_address
from registry.camera_urls import DEFAULT_CAMERA_NETWORKS, DEFAULT_CAMERA_PORTS


@functools.cache
def _host() -> str | NoHostAddress:
    try:
        return host_address()
    except NoHostAddress as exc:
        return exc


def camera_host() -> str:
    """The address to bind a simulated camera to; fails the test saying why when none."""
    found = _host()
    if isinstance(found, NoHostAddress):
        pytest.fail(str(found), pytrace=False)
    return found


def camera_settings(*ports: int) -> dict[str, Any]:
    """Registry settings accepting cameras at camera_host() on `ports` (besides the defaults)."""
    return {"camera_networks": [*DEFAULT_CAMERA_NETWORKS, f"{camera_host()}/32"],
            "camera_ports": [*DEFAULT_CAMERA_PORTS, *ports]}


def camera_env(*ports: int) -> dict[str, str]:
    """camera_settings() as the environment of a registry process."""
    settings = camera_settings(*ports)
    return {name.upper(): ",".join(str(v) for v in values) for name, values in settings.items()}
