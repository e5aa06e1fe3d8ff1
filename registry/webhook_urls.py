"""Which webhook URLs alert rules may name, and connections that reach only those.

A webhook makes the registry POST to wherever an operator said, so an operator could make the
registry knock on anything it can reach: the broker, the database, a cloud metadata service, a
loopback admin port (server-side request forgery). The camera URL checks
(registry/camera_urls.py) apply, with webhook rules:

* the URL is http(s) and of a shape every parser reads alike (`check_url_shape`: no
  non-canonical IPv4 forms, no second '@', no percent-encoded host);
* its port is any port but this system's own service ports;
* every address its host resolves to lies inside `WEBHOOK_NETWORKS` (default: everywhere) and
  is never loopback, link-local, multicast, unspecified, broadcast or reserved, also when
  embedded in an IPv6 form (`forbidden_kind`).

A rule's URL is checked when it is written (a 422 naming webhook_url), and every connection the
sender opens is checked again: `GuardedBackend` resolves the host itself, checks the addresses
and connects to a checked one, so a name that resolves elsewhere later (DNS rebinding) cannot
redirect a webhook. TLS still verifies the certificate of the URL's host name: only the TCP
connection is made to the checked address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpcore
import httpx

from registry.camera_urls import (
    CameraUrlRefused,
    IPAddress,
    IPNetwork,
    Resolver,
    check_url_shape,
    forbidden_kind,
    own_service_ports,
    system_resolver,
)

if TYPE_CHECKING:
    from registry.settings import RegistrySettings

WEBHOOK_SCHEMES = ("http", "https")
EVERYWHERE = ("0.0.0.0/0", "::/0")


class WebhookUrlRefused(ValueError):
    """The webhook URL may not be used; the message says why (never its secrets: the path,
    the query and the password are not quoted)."""


@dataclass(frozen=True, slots=True)
class WebhookPolicy:
    service_ports: frozenset[int]
    networks: tuple[IPNetwork, ...]
    resolve_timeout_s: float = 5.0

    @classmethod
    def from_settings(cls, settings: RegistrySettings) -> WebhookPolicy:
        return cls(
            service_ports=frozenset(settings.service_ports) | own_service_ports(settings),
            networks=tuple(settings.webhook_networks),
            resolve_timeout_s=settings.camera_resolve_timeout_s,
        )


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    host: str  # lower case; an IPv6 literal without brackets
    port: int  # explicit or the scheme's default


# --- pure checks ------------------------------------------------------------------------------


def check_webhook_shape(url: str) -> WebhookTarget:
    """Where a webhook URL points; WebhookUrlRefused saying what is wrong with its shape."""
    scheme = url.partition(":")[0].lower()
    if scheme not in WEBHOOK_SCHEMES:
        raise WebhookUrlRefused(f"webhook_url scheme must be http or https; got {scheme!r}")
    try:
        target = check_url_shape(url)
    except CameraUrlRefused as exc:
        # The camera checks speak of a "camera url"; their rules are the same here.
        raise WebhookUrlRefused(str(exc).replace("camera url", "webhook_url", 1)) from None
    assert target is not None  # not a file URL: the scheme is http(s)
    return WebhookTarget(target.host, target.port)


def check_webhook_port(port: int, policy: WebhookPolicy) -> None:
    if port in policy.service_ports:
        raise WebhookUrlRefused(f"webhook_url port {port} is one of this system's own service "
                                "ports")


def _comparable(address: IPAddress) -> IPAddress:
    # ::ffff:a.b.c.d is a.b.c.d on the wire: judged against IPv4 networks.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def check_webhook_addresses(host: str, addresses: Iterable[str],
                            policy: WebhookPolicy) -> list[str]:
    """`addresses` in the resolver's order, once every one of them has passed (a name with one
    bad address is refused: which one a client picks is not ours to decide)."""
    checked: list[str] = []
    for text in addresses:
        try:
            address = _comparable(ipaddress.ip_address(text))
        except ValueError:
            raise WebhookUrlRefused(f"webhook host {host!r} resolved to {text!r}, not an IP "
                                    "address") from None
        where = f"webhook host {host!r} resolves to {address}"
        if _literal(host) is not None:
            where = f"webhook address {address}"
        kind = forbidden_kind(address)
        if kind is not None:
            raise WebhookUrlRefused(f"{where}, {kind}: webhooks are never sent there")
        if not any(address in net for net in policy.networks):
            nets = ", ".join(str(n) for n in policy.networks) or "none"
            raise WebhookUrlRefused(f"{where}, outside the webhook networks "
                                    f"(WEBHOOK_NETWORKS: {nets})")
        checked.append(str(address))
    if not checked:
        raise WebhookUrlRefused(f"webhook host {host!r} resolves to no address")
    return checked


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


# --- resolution and the guard -----------------------------------------------------------------


class WebhookHostUnresolved(WebhookUrlRefused):
    """The host does not resolve (now): refused when a rule is written, retried when sending."""


class WebhookUrlGuard:
    """Checks webhook URLs for rules, and the addresses the sender may connect to."""

    def __init__(self, policy: WebhookPolicy, resolver: Resolver = system_resolver) -> None:
        self.policy = policy
        self._resolver = resolver

    async def check(self, url: str) -> None:
        """WebhookUrlRefused saying why `url` may not be a rule's webhook."""
        target = check_webhook_shape(url)
        await self.connectable(target.host, target.port)

    async def connectable(self, host: str, port: int) -> list[str]:
        """The checked addresses of `host` (resolved now), for a connection to `port`."""
        check_webhook_port(port, self.policy)
        literal = _literal(host)
        if literal is not None:
            return check_webhook_addresses(host, [str(literal)], self.policy)
        return check_webhook_addresses(host, await self._resolve(host, port), self.policy)

    async def _resolve(self, host: str, port: int) -> Sequence[str]:
        try:
            async with asyncio.timeout(self.policy.resolve_timeout_s):
                return await self._resolver(host, port)
        except TimeoutError:
            raise WebhookHostUnresolved(f"webhook host {host!r} did not resolve within "
                                        f"{self.policy.resolve_timeout_s:g} s") from None
        except (OSError, UnicodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise WebhookHostUnresolved(f"webhook host {host!r} does not resolve "
                                        f"({reason})") from None


# --- sending: every TCP connection through the guard ------------------------------------------


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend that connects only to addresses the guard passed.

    A refused address raises WebhookUrlRefused (not an httpx error: the sender gives up at
    once instead of retrying); a name that does not resolve is a connection error (retried).
    """

    def __init__(self, guard: WebhookUrlGuard,
                 inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._guard = guard
        self._inner = inner or httpcore.AnyIOBackend()

    # `timeout` and the rest are httpcore's interface, passed on as they come.
    async def connect_tcp(
        self, host: str, port: int, timeout: float | None = None,  # noqa: ASYNC109
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await self._guard.connectable(host, port)
        except WebhookHostUnresolved as exc:
            raise httpcore.ConnectError(str(exc)) from None
        return await self._inner.connect_tcp(addresses[0], port, timeout=timeout,
                                             local_address=local_address,
                                             socket_options=socket_options)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None,  # noqa: ASYNC109
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise WebhookUrlRefused("webhooks are sent over TCP only")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport (no proxies, no environment) over a GuardedBackend."""

    def __init__(self, guard: WebhookUrlGuard) -> None:
        super().__init__(trust_env=False)
        # httpx has no public way to pass a network backend; its pool takes one. Replaced
        # before first use, with the defaults httpx itself would have given it.
        # tests/integration/test_webhook_urls.py proves connections go through the guard.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0,
            network_backend=GuardedBackend(guard),
        )
