"""This machine's own non-loopback IPv4 address: where the local stack and the tests serve
simulated cameras, since the registry refuses camera URLs on loopback."""

from __future__ import annotations

import ipaddress
import socket

# Documentation networks (RFC 5737): connecting a UDP socket towards one sends no packet but
# makes the kernel choose the source address of the default route.
_PROBES = ("198.51.100.1", "203.0.113.1", "192.0.2.1")


class NoHostAddress(RuntimeError):
    pass


def _usable(text: str) -> bool:
    address = ipaddress.IPv4Address(text)
    return not (address.is_loopback or address.is_link_local or address.is_unspecified)


def host_address() -> str:
    """The first non-loopback IPv4 address of this machine; NoHostAddress when it has none."""
    for probe in _PROBES:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            try:
                sock.connect((probe, 9))
            except OSError:
                continue  # no route there
            address = str(sock.getsockname()[0])
        if _usable(address):
            return address
    try:
        names = socket.gethostbyname_ex(socket.gethostname())[2]
    except OSError:
        names = []
    for address in names:
        if _usable(address):
            return address
    raise NoHostAddress(
        "this machine has no non-loopback IPv4 address, and simulated cameras must be served "
        "on one (camera URLs on loopback are refused); a dummy interface gives it one: "
        "`ip link add cam0 type dummy && ip addr add 10.254.0.1/24 dev cam0 && "
        "ip link set cam0 up`")
