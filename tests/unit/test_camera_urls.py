"""Camera URL validation (registry/camera_urls.py) with a resolver answering from a table:
hostile URLs are refused saying why, good ones are accepted with the address to pin."""

from __future__ import annotations

import asyncio
import ipaddress
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from registry.camera_urls import (
    DEFAULT_CAMERA_NETWORKS,
    DEFAULT_CAMERA_PORTS,
    DEFAULT_SERVICE_PORTS,
    CameraUrlGuard,
    CameraUrlPolicy,
    CameraUrlRefused,
    check_url_shape,
    own_service_ports,
    system_resolver,
)
from registry.media import media_file_problem
from registry.settings import RegistrySettings
from tests.fake_dns import FakeDns

POLICY = CameraUrlPolicy(
    camera_ports=frozenset(DEFAULT_CAMERA_PORTS),
    service_ports=frozenset(DEFAULT_SERVICE_PORTS),
    networks=tuple(ipaddress.ip_network(n) for n in DEFAULT_CAMERA_NETWORKS),
)
DNS = {
    "localhost": ["127.0.0.1", "::1"],
    "ip6-localhost": ["::1"],
    "loopy.example": ["127.0.0.1"],
    "half.example": ["10.0.0.5", "127.0.0.1"],  # one good address does not excuse a bad one
    "mapped-loop.example": ["::ffff:127.0.0.1"],
    "metadata.example": ["169.254.169.254"],
    "public.example": ["93.184.216.34"],
    "weird.example": ["not-an-address"],
    "cam.example": ["192.168.1.20"],
    "cam.local": ["172.16.0.9"],
    "twin.example": ["10.0.0.7", "fd00::7"],
    "mapped.example": ["::ffff:10.0.0.8"],
}


def pin(url: str, policy: CameraUrlPolicy = POLICY, dns: FakeDns | None = None) -> str | None:
    return asyncio.run(CameraUrlGuard(policy, dns or FakeDns(DNS)).pin(url))


HOSTILE = [
    # Loopback, in every notation.
    ("rtsp://127.0.0.1/x", "loopback"),
    ("rtsp://127.0.0.1:554/x", "loopback"),
    ("rtsp://127.1/x", "non-canonical"),
    ("rtsp://2130706433/x", "non-canonical"),
    ("http://2130706433/", "non-canonical"),
    ("rtsp://0x7f000001/x", "non-canonical"),
    ("rtsp://0X7F.0.0.1/x", "non-canonical"),
    ("rtsp://0177.0.0.1/x", "non-canonical"),
    ("rtsp://127.000.000.001/x", "non-canonical"),
    ("rtsp://127.0.1/x", "non-canonical"),
    ("rtsp://[::1]/x", "loopback"),
    ("rtsp://[0:0:0:0:0:0:0:1]/x", "loopback"),
    ("rtsp://[::ffff:127.0.0.1]/x", "loopback"),
    ("rtsp://[::ffff:7f00:1]/x", "loopback"),
    ("rtsp://[::127.0.0.1]/x", "loopback"),  # IPv4-compatible
    ("rtsp://[64:ff9b::7f00:1]/x", "loopback"),  # NAT64
    ("rtsp://[2002:7f00:1::]/x", "loopback"),  # 6to4
    ("rtsp://localhost/x", "loopback"),
    ("rtsp://LocalHost/x", "loopback"),
    ("rtsp://ip6-localhost/x", "loopback"),
    ("rtsp://loopy.example/x", "loopback"),
    ("rtsp://half.example/x", "loopback"),
    ("rtsp://mapped-loop.example/x", "loopback"),
    # Link-local, cloud metadata, unspecified, broadcast, multicast.
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://metadata.example/latest/meta-data/", "link-local"),
    ("rtsp://[fe80::1]/x", "link-local"),
    ("rtsp://[fe80::1%25eth0]/x", "zone"),
    ("rtsp://0.0.0.0/x", "unspecified"),
    ("rtsp://0/x", "non-canonical"),
    ("rtsp://0.1.2.3/x", "this network"),
    ("rtsp://[::]/x", "unspecified"),
    ("rtsp://255.255.255.255/x", "broadcast"),
    ("rtsp://224.0.0.251/x", "multicast"),
    ("rtsp://[ff02::1]/x", "multicast"),
    ("rtsp://240.0.0.1/x", "reserved"),
    # Userinfo tricks and parser differentials.
    ("rtsp://10.0.0.5@127.0.0.1/", "loopback"),
    ("rtsp://10.0.0.5:554@127.0.0.1/", "loopback"),
    ("rtsp://127.0.0.1#@10.0.0.5/", "fragment"),
    ("rtsp://10.0.0.5\\@127.0.0.1/", "backslash"),
    ("rtsp://127.0.0.1\\10.0.0.5/", "backslash"),
    ("http://user:pass@127.0.0.1:80@10.0.0.5/", "more than one '@'"),
    ("http://user@127.0.0.1@10.0.0.5/", "more than one '@'"),
    ("rtsp://@10.0.0.5/x", "empty user name"),
    ('rtsp://user:pa"ss@10.0.0.5/x', "percent-encoded"),
    ("rtsp://user:pa%zzss@10.0.0.5/x", "broken %-escape"),
    ("rtsp://user:%0d%0aInjected:%20yes@10.0.0.5/x", "control characters"),
    ("rtsp://%31%32%37.0.0.1/x", "percent-encoded"),
    ("rtsp://cam%2eexample/x", "percent-encoded"),
    ("rtsp://10.0.0.5/x#frag", "fragment"),
    ("rtsp://10.0.0.5/x y", "whitespace"),
    (" rtsp://127.0.0.1/x", "whitespace"),
    ("rtsp://127.0.0.1/x\n", "control"),
    ("rtsp://10.0.0.5\t/x", "control"),
    ("rtsp://127.0.0.1\x00.10.0.0.5/x", "control"),
    ("rtsp://\u0435\u0445\u0430mple/x", "ASCII"),  # Cyrillic letters that look Latin
    ("rtsp://cam..example/x", "DNS name"),
    ("rtsp://cam.example./x", "DNS name"),
    ("rtsp://[v1.fe80::1]/x", "not a valid"),
    ("rtsp://[::1/x", "not a valid URL"),
    # Other schemes.
    ("ftp://10.0.0.5/x", "scheme must be one of"),
    ("gopher://10.0.0.5:70/_GET%20/", "scheme must be one of"),
    ("dict://10.0.0.5:11211/stat", "scheme must be one of"),
    ("rtspt://10.0.0.5/x", "scheme must be one of"),
    ("javascript:alert(1)", "scheme must be one of"),
    ("data:text/plain,hello", "scheme must be one of"),
    ("//10.0.0.5/x", "scheme must be one of"),
    ("file://otherhost/clip.mp4", "must not name a host"),
    # Ports: the system's own, and ones no camera uses.
    ("rtsp://10.0.0.5:5672/x", "own service ports"),
    ("rtsp://10.0.0.5:5432/x", "own service ports"),
    ("http://10.0.0.5:15672/api/overview", "own service ports"),
    ("http://10.0.0.5:8080/", "own service ports"),  # in camera_ports too: service ports win
    ("http://10.0.0.5:8765/ws", "own service ports"),
    ("rtsp://10.0.0.5:22/x", "not an allowed camera port"),
    ("rtsp://10.0.0.5:9999/x", "not an allowed camera port"),
    ("rtsp://10.0.0.5:0554/x", "leading zeros"),
    ("rtsp://10.0.0.5:/x", "port must be"),
    ("rtsp://10.0.0.5:0/x", "1-65535"),
    ("rtsp://10.0.0.5:65536/x", "not a valid URL"),
    # Outside the camera networks, or nowhere.
    ("rtsp://8.8.8.8/x", "outside the camera networks"),
    ("rtsp://[2001:db8::1]/x", "outside the camera networks"),
    ("rtsp://100.64.0.1/x", "outside the camera networks"),
    ("rtsp://public.example/x", "outside the camera networks"),
    ("rtsp://nowhere.invalid/x", "does not resolve"),
    ("rtsp://weird.example/x", "not an IP address"),
]


@pytest.mark.parametrize(("url", "message"), HOSTILE)
def test_hostile_camera_urls_are_refused_saying_why(url: str, message: str) -> None:
    with pytest.raises(CameraUrlRefused) as refused:
        pin(url)
    assert message in str(refused.value), str(refused.value)


@pytest.mark.parametrize(("url", "message"), HOSTILE)
def test_refusals_never_quote_the_credentials(url: str, message: str) -> None:
    if "@" not in url and "//" in url:
        url = url.replace("//", "//admin:Sup3rS3cret@", 1)
    userinfo = url.partition("//")[2].rpartition("@")[0]
    with pytest.raises(CameraUrlRefused) as refused:
        pin(url)
    assert "Sup3rS3cret" not in str(refused.value)
    assert not userinfo or userinfo not in str(refused.value)


GOOD = [
    ("rtsp://admin:pa55word@10.1.2.3:554/stream1", "10.1.2.3"),
    ("rtsp://10.0.0.5/x", "10.0.0.5"),
    ("RTSP://10.0.0.5/x?channel=1&subtype=0", "10.0.0.5"),
    ("rtsp://10.0.0.5:8554/x", "10.0.0.5"),
    ("rtsps://cam.example/x", "192.168.1.20"),  # default port 322
    ("rtsp://CAM.Example/x", "192.168.1.20"),
    ("http://cam.local:8081/video.mjpg", "172.16.0.9"),
    ("http://cam.local/?action=stream", "172.16.0.9"),
    ("https://user:p%40ss%23w@[fd00::5]:8443/x", "fd00::5"),
    ("http://twin.example/x", "10.0.0.7"),  # the resolver's first, once both passed
    ("http://mapped.example/x", "10.0.0.8"),
    ("http://u%3Aser:p%2F%3F%23@192.168.0.1/a/b", "192.168.0.1"),
    ("rtsp://ca_m-1.example.lan/x", None),  # resolved below
]


@pytest.mark.parametrize(("url", "pinned"), GOOD)
def test_good_camera_urls_are_accepted_with_the_address_to_pin(url: str, pinned: str | None,
                                                               ) -> None:
    dns = FakeDns({**DNS, "ca_m-1.example.lan": ["10.9.9.9"]})
    assert pin(url, dns=dns) == (pinned or "10.9.9.9")


def test_literal_addresses_and_refused_shapes_are_never_resolved() -> None:
    dns = FakeDns(DNS)
    assert pin("rtsp://10.0.0.5/x", dns=dns) == "10.0.0.5"
    for url in ("rtsp://127.1/x", "rtsp://localhost:5672/x", "rtsp://localhost:9999/x",
                "rtsp://127.0.0.1#@localhost/", "ftp://localhost/"):
        with pytest.raises(CameraUrlRefused):
            pin(url, dns=dns)
    assert dns.asked == []
    assert pin("rtsp://CAM.example/x", dns=dns) == "192.168.1.20"
    assert dns.asked == ["cam.example"]  # lower case, as URL hosts compare


def test_a_resolver_that_hangs_is_cut_off() -> None:
    async def never(host: str, port: int) -> list[str]:
        await asyncio.sleep(60)
        return []

    policy = CameraUrlPolicy(POLICY.camera_ports, POLICY.service_ports, POLICY.networks,
                             resolve_timeout_s=0.05)
    with pytest.raises(CameraUrlRefused, match="did not resolve within"):
        asyncio.run(CameraUrlGuard(policy, never).pin("rtsp://slow.example/x"))


def test_the_camera_networks_decide_what_else_passes() -> None:
    lab = CameraUrlPolicy(POLICY.camera_ports, POLICY.service_ports,
                          (ipaddress.ip_network("192.0.2.2/32"),))
    assert pin("rtsp://192.0.2.2:8554/x", lab) == "192.0.2.2"
    with pytest.raises(CameraUrlRefused, match="outside the camera networks"):
        pin("rtsp://192.0.2.3/x", lab)
    with pytest.raises(CameraUrlRefused, match="outside the camera networks"):
        pin("rtsp://10.0.0.5/x", lab)
    # Networks that contain forbidden addresses do not make them allowed.
    everything = CameraUrlPolicy(POLICY.camera_ports, POLICY.service_ports,
                                 (ipaddress.ip_network("0.0.0.0/0"),
                                  ipaddress.ip_network("::/0")))
    for url in ("rtsp://127.0.0.1/x", "rtsp://[::1]/x", "rtsp://169.254.169.254/x",
                "rtsp://[fe80::1]/x", "rtsp://0.0.0.0/x", "rtsp://[::ffff:127.0.0.1]/x",
                "rtsp://224.0.0.1/x", "rtsp://255.255.255.255/x", "rtsp://localhost/x"):
        with pytest.raises(CameraUrlRefused, match="never reached"):
            pin(url, everything)
    assert pin("rtsp://8.8.8.8/x", everything) == "8.8.8.8"


def test_service_ports_come_from_the_settings_too() -> None:
    settings = RegistrySettings(
        http_port=9100, ops_port=0, rabbitmq_url="amqp://guest:guest@10.0.0.2:5999/",
        database_url="postgresql+asyncpg://postgres@10.0.0.3:6000/camcount",
        broadcaster_public_url="ws://10.0.0.4:7000/ws", camera_ports=[554, 9100, 7000, 15999],
        rabbitmq_management_url="http://guest:guest@10.0.0.2:16000",
        pool_urls=["http://10.0.0.6:9090", "http://10.0.0.7:9091"],
        camera_networks=["10.0.0.0/8"])
    assert own_service_ports(settings) == {9100, 5999, 15999, 25999, 6000, 7000, 16000, 9090,
                                           9091}
    policy = CameraUrlPolicy.from_settings(settings)
    for port in (9100, 7000, 15999):
        with pytest.raises(CameraUrlRefused, match="own service ports"):
            pin(f"rtsp://10.0.0.5:{port}/x", policy)
    assert pin("rtsp://10.0.0.5/x", policy) == "10.0.0.5"
    # A URL without an explicit port names no port to refuse (ws:// would otherwise be 80).
    bare = RegistrySettings(broadcaster_public_url="ws://broadcaster/ws", ops_port=0)
    assert 80 not in own_service_ports(bare)


def test_file_urls_are_left_to_the_media_dir_check(tmp_path: Path) -> None:
    media = tmp_path / "media"
    media.mkdir()
    assert pin(f"file://{media}/clip.mp4") is None
    assert media_file_problem(f"file://{media}/clip.mp4", media) is None
    for outside in ("file:///etc/passwd", f"file://{media}/../secret.mp4",
                    f"file://{media}/%2e%2e/secret.mp4"):
        assert pin(outside) is None  # not a network url: nothing to connect to or pin
        problem = media_file_problem(outside, media)
        assert problem is not None and "under the media directory" in problem
    assert media_file_problem("file:///srv/clip.mp4", None) is not None


def test_the_shape_check_alone_needs_no_settings() -> None:
    target = check_url_shape("rtsps://admin:x@Cam.Example:7447/live")
    assert target is not None
    assert (target.scheme, target.host, target.port, target.literal) == (
        "rtsps", "cam.example", 7447, None)
    literal = check_url_shape("http://[fd00::1]/")
    assert literal is not None and literal.port == 80
    assert literal.literal == ipaddress.IPv6Address("fd00::1")


# --- numeric forms of forbidden IPv4 addresses, as inet_aton and WHATWG read them -------------

FORBIDDEN_V4 = [ipaddress.ip_network(n) for n in
                ("127.0.0.0/8", "169.254.0.0/16", "0.0.0.0/8", "224.0.0.0/4", "240.0.0.0/4")]


def _renderings(value: int) -> st.SearchStrategy[str]:
    octets = value.to_bytes(4, "big")
    a, b, c, d = octets

    def part(n: int, style: str) -> str:
        return {"dec": str(n), "hex": hex(n), "HEX": f"0X{n:X}", "oct": f"0{n:o}"}[style]

    styles = st.sampled_from(["dec", "hex", "HEX", "oct"])
    return st.one_of(
        st.builds(lambda s: ".".join(part(o, s) for o in octets), styles),
        st.builds(lambda s: part(value, s), styles),  # one number
        st.builds(lambda s: f"{part(a, s)}.{part(value & 0xFFFFFF, s)}", styles),  # a.b
        st.builds(lambda s: f"{part(a, s)}.{part(b, s)}.{part((c << 8) | d, s)}",
                  styles),  # a.b.c
        st.builds(lambda w: f"{'0' * w}{a}.{b}.{c}.{d}", st.integers(1, 3)),  # leading zeros
    )


forbidden_hosts = st.sampled_from(FORBIDDEN_V4).flatmap(
    lambda net: st.integers(int(net.network_address), int(net.broadcast_address))
).flatmap(_renderings)


@given(host=forbidden_hosts, userinfo=st.sampled_from(["", "admin:pw@", "10.0.0.5@"]),
       scheme=st.sampled_from(["rtsp", "rtsps", "http", "https"]))
def test_no_rendering_of_a_forbidden_ipv4_address_passes(host: str, userinfo: str,
                                                          scheme: str) -> None:
    # Refused by shape or by address; the real getaddrinfo (which reads 127.1 and 0x7f000001
    # offline, like inet_aton) stands behind, should a form ever reach it.
    with pytest.raises(CameraUrlRefused):
        asyncio.run(CameraUrlGuard(POLICY, system_resolver).pin(f"{scheme}://{userinfo}{host}/x"))


@given(st.integers(int(ipaddress.IPv4Address("10.0.0.0")),
                   int(ipaddress.IPv4Address("10.255.255.255"))))
def test_every_canonical_private_address_passes_and_is_pinned(value: int) -> None:
    address = str(ipaddress.IPv4Address(value))
    assert asyncio.run(CameraUrlGuard(POLICY, FakeDns()).pin(f"rtsp://{address}/x")) == address
