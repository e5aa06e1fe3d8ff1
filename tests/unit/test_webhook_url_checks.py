"""The pure checks of webhook URLs (registry/webhook_urls.py): shape, port, addresses."""

from __future__ import annotations

import ipaddress

import pytest

from registry.webhook_urls import (
    EVERYWHERE,
    WebhookPolicy,
    WebhookTarget,
    WebhookUrlRefused,
    check_webhook_addresses,
    check_webhook_port,
    check_webhook_shape,
)

POLICY = WebhookPolicy(service_ports=frozenset({5432, 8080}),
                       networks=tuple(ipaddress.ip_network(n) for n in EVERYWHERE))


@pytest.mark.parametrize(("url", "target"), [
    ("https://hooks.example/services/T0/s3cr3t", WebhookTarget("hooks.example", 443)),
    ("http://u:p%40ss@Hooks.Example:9000/x?token=t", WebhookTarget("hooks.example", 9000)),
    ("http://[2001:db8::1]/x", WebhookTarget("2001:db8::1", 80)),
    ("HTTPS://203.0.113.7", WebhookTarget("203.0.113.7", 443)),
])
def test_the_target_of_a_webhook(url: str, target: WebhookTarget) -> None:
    assert check_webhook_shape(url) == target


@pytest.mark.parametrize(("url", "says"), [
    ("ftp://hooks.example/x", "scheme must be http or https"),
    ("file:///etc/passwd", "scheme must be http or https"),
    ("hooks.example/x", "scheme must be http or https"),
    ("http://127.1/x", "non-canonical"),
    ("http://0x7f000001/x", "non-canonical"),
    ("http://a@b@hooks.example/x", "more than one '@'"),
    ("http://hooks.example\\@evil/x", "backslash"),
    ("http://%68ooks.example/x", "percent-encoded"),
    ("http://hooks.example/x#f", "fragment"),
    ("http:///x", "no host"),
])
def test_a_webhook_of_the_wrong_shape(url: str, says: str) -> None:
    with pytest.raises(WebhookUrlRefused, match=says) as refused:
        check_webhook_shape(url)
    assert "camera" not in str(refused.value)


def test_service_ports_are_refused_and_others_pass() -> None:
    with pytest.raises(WebhookUrlRefused, match="5432 is one of this system's own"):
        check_webhook_port(5432, POLICY)
    check_webhook_port(9000, POLICY)


@pytest.mark.parametrize(("addresses", "says"), [
    (["127.0.0.1"], "loopback"),
    (["203.0.113.7", "::1"], "loopback"),  # one bad address refuses the name
    (["::ffff:127.0.0.1"], "loopback"),
    (["64:ff9b::7f00:1"], "loopback"),  # NAT64
    (["2002:7f00:1::"], "loopback"),  # 6to4
    (["169.254.169.254"], "link-local"),
    (["fe80::1"], "link-local"),
    (["224.0.0.1"], "multicast"),
    (["0.0.0.0"], "unspecified"),
    (["0.1.2.3"], "this network"),
    (["255.255.255.255"], "broadcast"),
    (["not-an-address"], "not an IP address"),
    ([], "no address"),
])
def test_addresses_no_webhook_goes_to(addresses: list[str], says: str) -> None:
    with pytest.raises(WebhookUrlRefused, match=says):
        check_webhook_addresses("hooks.example", addresses, POLICY)


def test_addresses_inside_the_webhook_networks() -> None:
    assert check_webhook_addresses("h", ["203.0.113.7", "2001:db8::1"], POLICY) == [
        "203.0.113.7", "2001:db8::1"]
    assert check_webhook_addresses("h", ["::ffff:10.0.0.5"], POLICY) == ["10.0.0.5"]
    narrow = WebhookPolicy(frozenset(), (ipaddress.ip_network("10.0.0.0/8"),))
    with pytest.raises(WebhookUrlRefused, match="outside the webhook networks"):
        check_webhook_addresses("h", ["203.0.113.7"], narrow)
