"""Which network camera URLs the registry accepts, and the address each one is pinned to.

Ingest connects wherever a camera URL points, so an API caller who could register any URL
could make ingest knock on anything ingest can reach: the broker, the database, a cloud
metadata service, a loopback admin port. A URL is therefore accepted only when

* its shape is one every parser reads alike (`check_url_shape`): no backslash, whitespace,
  control character, fragment, second '@', percent-encoded host or non-canonical IPv4 form
  (`127.1`, `2130706433`, `0x7f000001`, `0177.0.0.1`) for URL parsers to disagree about;
* its port (explicit, or the scheme's default) is an allowed camera port and never one of this
  system's own service ports, whatever the allowed list says;
* every address its host resolves to lies inside the configured camera networks and is never
  loopback, link-local, multicast, unspecified, broadcast or reserved, also when embedded in an
  IPv6 form (`::ffff:127.0.0.1`, 6to4, NAT64, Teredo), whatever the networks say.

The address that passed is pinned: stored beside the URL, and ingest connects there and never
resolves the name again, so a name that resolves elsewhere later (DNS rebinding) changes
nothing. `file://` URLs are not network URLs: registry/media.py judges them.

The checks are pure (`check_url_shape`, `check_port`, `check_addresses`); `CameraUrlGuard`
adds the one piece of I/O, name resolution, behind an injectable resolver.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import SplitResult, unquote, urlsplit

from registry.media import FILE_SCHEME, check_file_url_shape

if TYPE_CHECKING:
    from registry.settings import RegistrySettings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# http(s): MJPEG cameras; file: recorded footage, only under the registry's MEDIA_DIR.
NETWORK_SCHEMES = ("rtsp", "rtsps", "http", "https")
ALLOWED_SCHEMES = (*NETWORK_SCHEMES, FILE_SCHEME)
DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322, "http": 80, "https": 443}

# Ports cameras serve on: RTSP 554 (and 8554, 10554 on many NVRs and simulators), RTSPS 322
# (7441 and 7447 on UniFi Protect), HTTP/MJPEG 80, 88 (Foscam), 8000, 8080, 8081
# (mjpg-streamer, motion), HTTPS 443, 8443. 8080 is refused while the registry itself
# listens there (its default): service ports always win.
DEFAULT_CAMERA_PORTS = (80, 88, 322, 443, 554, 7441, 7447, 8000, 8080, 8081, 8443, 8554, 10554)
# Defaults of this system's own servers and their siblings (the dev and test profiles of
# camcount.services): RabbitMQ AMQP/management/distribution, epmd, streams; PostgreSQL; the
# registry, broadcaster and worker pool APIs. Those the settings name are added to these.
DEFAULT_SERVICE_PORTS = (4369, 5432, 5442, 5552, 5672, 5682, 8080, 8090, 8765, 15672, 15682,
                         25672, 25682)
# Private address space: RFC 1918 and IPv6 unique local addresses.
DEFAULT_CAMERA_NETWORKS = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")

# camcount.services runs RabbitMQ's management and distribution ports at these offsets.
_AMQP_SIBLING_OFFSETS = (10_000, 20_000)
_THIS_NETWORK = ipaddress.IPv4Network("0.0.0.0/8")
_BROADCAST = ipaddress.IPv4Address("255.255.255.255")
_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")

_USERINFO = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:]|%[0-9A-Fa-f]{2})*")
_REG_NAME = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*")
_NUMERIC_LABEL = re.compile(r"[0-9]+|0[xX][0-9A-Fa-f]*")
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_DOTTED_QUAD = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
_PORT = re.compile(r"[1-9][0-9]{0,4}")


class CameraUrlRefused(ValueError):
    """The camera URL may not be registered; the message says why (never the credentials)."""


@dataclass(frozen=True, slots=True)
class CameraTarget:
    """Where a network camera URL points: what ingest would connect to."""

    scheme: str
    host: str  # lower case; an IPv6 literal without brackets
    port: int  # explicit or the scheme's default
    literal: IPAddress | None  # the host when it is an IP address


@dataclass(frozen=True, slots=True)
class CameraUrlPolicy:
    camera_ports: frozenset[int]
    service_ports: frozenset[int]
    networks: tuple[IPNetwork, ...]
    resolve_timeout_s: float = 5.0

    @classmethod
    def from_settings(cls, settings: RegistrySettings) -> CameraUrlPolicy:
        return cls(
            camera_ports=frozenset(settings.camera_ports),
            service_ports=frozenset(settings.service_ports) | own_service_ports(settings),
            networks=tuple(settings.camera_networks),
            resolve_timeout_s=settings.camera_resolve_timeout_s,
        )


def own_service_ports(settings: RegistrySettings) -> frozenset[int]:
    """The ports this deployment's servers listen on, as the registry's settings name them."""
    ports = {settings.http_port, settings.ops_port}
    for url in (settings.database_url, settings.broadcaster_public_url,
                settings.rabbitmq_management_url, *settings.pool_urls):
        ports.add(_explicit_port(url))
    amqp = _explicit_port(settings.rabbitmq_url)
    ports.update((amqp, *(amqp + offset for offset in _AMQP_SIBLING_OFFSETS)) if amqp else ())
    ports.discard(0)  # "any free port": nothing to refuse
    return frozenset(port for port in ports if 0 < port <= 65535)


def _explicit_port(url: str) -> int:
    # Only an explicit port: a default (80 for ws://) would refuse every camera on it.
    try:
        return urlsplit(url).port or 0
    except ValueError:
        return 0


# --- the URL's shape: pure, no settings (registry/models.py runs it on every camera) ----------


def check_url_shape(url: str) -> CameraTarget | None:
    """The target of a network camera URL, or None for a file URL (its shape checked too).
    Raises CameraUrlRefused saying what is wrong."""
    if url.partition(":")[0].lower() != FILE_SCHEME:
        _check_characters(url)  # file URLs keep their own rules (registry/media.py)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise CameraUrlRefused(f"camera url is not a valid URL: {exc}") from None
    if parts.scheme not in ALLOWED_SCHEMES:
        raise CameraUrlRefused(
            f"camera url scheme must be one of {', '.join(ALLOWED_SCHEMES)}; "
            f"got {parts.scheme or 'none'!r}"
        )
    if parts.scheme == FILE_SCHEME:
        try:
            check_file_url_shape(parts)
        except ValueError as exc:
            raise CameraUrlRefused(str(exc)) from None
        return None
    if not parts.hostname:
        raise CameraUrlRefused("camera url has no host")
    if port == 0:
        raise CameraUrlRefused("camera url port must be 1-65535")
    host_port = _check_userinfo(parts)
    literal = _check_host(host_port, parts.hostname)
    return CameraTarget(parts.scheme, parts.hostname, port or DEFAULT_PORTS[parts.scheme],
                        literal)


def _check_characters(url: str) -> None:
    # Each of these is read differently by different parsers (WHATWG turns '\' into '/',
    # drops tabs and newlines, splits at '#'; urlsplit strips some): refused outright.
    if not url.isascii():
        raise CameraUrlRefused("camera url must be ASCII: percent-encode other characters")
    if any(ch <= " " or ch == "\x7f" for ch in url):
        raise CameraUrlRefused("camera url contains whitespace or control characters")
    if "\\" in url:
        raise CameraUrlRefused("camera url contains a backslash")
    if "#" in url:
        raise CameraUrlRefused("camera url must not have a fragment ('#'; in a password, "
                               "percent-encode it as %23)")


def _check_userinfo(parts: SplitResult) -> str:
    """The host[:port] part of the authority, after checking the userinfo before it."""
    userinfo, at, host_port = parts.netloc.rpartition("@")
    if not at:
        return host_port
    # The messages never quote the userinfo: it holds the password.
    if "@" in userinfo:
        raise CameraUrlRefused("camera url has more than one '@' before its host: "
                               "percent-encode '@' in a user name or password as %40")
    if not userinfo:
        raise CameraUrlRefused("camera url has an empty user name before '@'")
    if not _USERINFO.fullmatch(userinfo):
        raise CameraUrlRefused("camera url user name or password has characters that must be "
                               "percent-encoded, or a broken %-escape")
    if any(ch < " " or ch == "\x7f" for ch in unquote(userinfo)):
        raise CameraUrlRefused("camera url user name or password encodes control characters")
    return host_port


def _check_host(host_port: str, hostname: str) -> IPAddress | None:
    if host_port.startswith("["):
        literal, _, port = host_port[1:].partition("]")
        if "%" in literal:
            raise CameraUrlRefused("camera url host must not carry an IPv6 zone ('%')")
        try:
            address: IPAddress = ipaddress.IPv6Address(literal)
        except ValueError:
            raise CameraUrlRefused("camera url host is not a valid IPv6 address") from None
        _check_port_text(port)
        return address
    host, colon, port = host_port.partition(":")
    if colon:
        _check_port_text(":" + port)
    if "%" in host:
        raise CameraUrlRefused("camera url host must not be percent-encoded")
    if not _REG_NAME.fullmatch(host):
        raise CameraUrlRefused("camera url host must be a DNS name (letters, digits, '-', '_' "
                               "and dots between labels) or an IP address")
    if _NUMERIC_LABEL.fullmatch(host.rsplit(".", 1)[-1]):
        # WHATWG parses any host ending in a number as IPv4, inet_aton accepts 127.1, octal
        # and hex: only the one form they all read alike passes.
        if not _DOTTED_QUAD.fullmatch(host):
            raise CameraUrlRefused("camera url host is a numeric address in a non-canonical "
                                   "form: write IPv4 as four decimal numbers (a.b.c.d)")
        return ipaddress.IPv4Address(hostname)
    return None


def _check_port_text(port: str) -> None:
    if port == "":
        return
    if not port.startswith(":") or not _PORT.fullmatch(port[1:]):
        raise CameraUrlRefused("camera url port must be a number 1-65535 without leading "
                               "zeros or signs")


# --- port and addresses against the policy: pure ----------------------------------------------


def check_port(target: CameraTarget, policy: CameraUrlPolicy) -> None:
    if target.port in policy.service_ports:
        raise CameraUrlRefused(f"camera url port {target.port} is one of this system's own "
                               "service ports")
    if target.port not in policy.camera_ports:
        allowed = ", ".join(str(p) for p in sorted(policy.camera_ports - policy.service_ports))
        raise CameraUrlRefused(f"camera url port {target.port} is not an allowed camera port "
                               f"(CAMERA_PORTS: {allowed or 'none'})")


def forbidden_kind(address: IPAddress) -> str | None:
    """What makes `address` a place no camera may be, whatever the camera networks say
    ("a loopback address"), or None."""
    # The embedded IPv4 first: "loopback (embedded in ::7f00:1)" says more than "reserved".
    for candidate in (*_embedded_ipv4(address), address):
        kind = _forbidden_kind(candidate)
        if kind is not None:
            article = "an" if kind[0] in "aeiou" else "a"
            inside = "" if candidate is address else f" ({candidate} inside it)"
            return f"{article} {kind} address{inside}"
    return None


def _forbidden_kind(address: IPAddress) -> str | None:
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address.is_unspecified:
        return "unspecified"
    if isinstance(address, ipaddress.IPv4Address):
        if address == _BROADCAST:
            return "broadcast"
        if address in _THIS_NETWORK:
            return "'this network' (0.0.0.0/8)"  # 0.x.x.x reaches this host on Linux
    elif address.is_site_local:
        return "site-local"
    if address.is_reserved:
        return "reserved"
    return None


def _embedded_ipv4(address: IPAddress) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address carries and that some stack may connect to instead."""
    if isinstance(address, ipaddress.IPv4Address):
        return []
    found = [a for a in (address.ipv4_mapped, address.sixtofour) if a is not None]
    if address.teredo is not None:
        found.extend(address.teredo)
    low32 = ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    compatible = address in _IPV4_COMPATIBLE and int(address) > 1  # not :: or ::1 itself
    if compatible or any(address in net for net in _NAT64):
        found.append(low32)
    return found


def _comparable(address: IPAddress) -> IPAddress:
    # ::ffff:a.b.c.d is a.b.c.d on the wire: judged against IPv4 networks.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def check_addresses(host: str, addresses: Iterable[str], policy: CameraUrlPolicy) -> str:
    """The address to pin: the first of `addresses` (the resolver's preference), once every
    one of them has passed. Raises CameraUrlRefused naming the first that did not."""
    parsed: list[IPAddress] = []
    for text in addresses:
        try:
            parsed.append(_comparable(ipaddress.ip_address(text)))
        except ValueError:
            raise CameraUrlRefused(f"camera host {host!r} resolved to {text!r}, "
                                   "not an IP address") from None
    if not parsed:
        raise CameraUrlRefused(f"camera host {host!r} resolves to no address")
    shown = "" if _is_literal(host) else f"camera host {host!r} resolves to "
    for address in parsed:
        where = f"{shown}{address}" if shown else f"camera address {address}"
        kind = forbidden_kind(address)
        if kind is not None:
            raise CameraUrlRefused(f"{where}, {kind}: cameras are never reached there")
        if not any(address in net for net in policy.networks):
            nets = ", ".join(str(n) for n in policy.networks) or "none"
            raise CameraUrlRefused(f"{where}, outside the camera networks "
                                   f"(CAMERA_NETWORKS: {nets})")
    return str(parsed[0])


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


# --- resolution: the one piece of I/O -----------------------------------------------------------

# (host, port) -> the addresses the host resolves to; raises OSError when it does not resolve.
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]


async def system_resolver(host: str, port: int) -> list[str]:
    """getaddrinfo, in the event loop's executor (it blocks)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class CameraUrlGuard:
    """Validates camera URLs for registration and gives the address to pin."""

    def __init__(self, policy: CameraUrlPolicy, resolver: Resolver = system_resolver) -> None:
        self.policy = policy
        self._resolver = resolver

    async def pin(self, url: str) -> str | None:
        """The address ingest must connect to for `url` (None for a file URL, judged by
        registry/media.py). Raises CameraUrlRefused saying why the URL is refused."""
        target = check_url_shape(url)
        if target is None:
            return None
        check_port(target, self.policy)
        if target.literal is not None:
            return check_addresses(target.host, [str(target.literal)], self.policy)
        return check_addresses(target.host, await self._resolve(target), self.policy)

    async def _resolve(self, target: CameraTarget) -> Sequence[str]:
        try:
            async with asyncio.timeout(self.policy.resolve_timeout_s):
                return await self._resolver(target.host, target.port)
        except TimeoutError:
            raise CameraUrlRefused(f"camera host {target.host!r} did not resolve within "
                                   f"{self.policy.resolve_timeout_s:g} s") from None
        except (OSError, UnicodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise CameraUrlRefused(f"camera host {target.host!r} does not resolve "
                                   f"({reason})") from None
