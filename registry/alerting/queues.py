"""Queue depths for queue_lag and dlq_not_empty, read once per evaluation from RabbitMQ's
management API (infra/broker_admin.py) over one long-lived client.

Management counts are as fresh as its statistics interval (5 s by default): fine for alerting,
which wants minutes of lag, not milliseconds.
"""

from __future__ import annotations

import logging

import httpx

from contracts.secrets import mask_credentials
from infra.broker_admin import QueueDepth, management_client, read_queue_depths, vhost_of
from registry.settings import RegistrySettings

log = logging.getLogger("camcount.registry.alerts")

__all__ = ["QueueDepth", "QueueStats"]


class QueueStats:
    """Reads queue depths; owns its HTTP client (close it with `aclose`)."""

    def __init__(self, settings: RegistrySettings,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._client = management_client(settings.rabbitmq_management_url,
                                          settings.rabbitmq_management_timeout_s, transport)
        self._vhost = vhost_of(settings.rabbitmq_url)
        self._failing = False

    async def aclose(self) -> None:
        await self._client.aclose()

    async def depths(self) -> dict[str, QueueDepth] | None:
        """Every queue of the virtual host by name; None when the API cannot be read (logged
        once per outage, not once per evaluation)."""
        try:
            found = {q.name: q for q in await read_queue_depths(self._client, self._vhost)}
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            if not self._failing:
                log.warning("queue depths unavailable from the management API: %s",
                            mask_credentials(f"{type(exc).__name__}: {exc}")[:300])
            self._failing = True
            return None
        if self._failing:
            log.info("queue depths available again from the management API")
        self._failing = False
        return found
