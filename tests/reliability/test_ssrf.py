"""SSRF, in the spirit of go-camo's tests: a URL from outside must never make the
downloader connect to this machine, the private network or a cloud metadata
service, however the address is spelled, however DNS answers, wherever a
redirect points.

Two kinds of check, never mixed:

- addresses we must never connect to (metadata services, private ranges) are
  checked against the policy function only, and every fetch in this module
  dials through ``LoopbackOnlyDialer``, so even a broken guard sends nothing;
- loopback is checked end to end: real listeners on 127.0.0.1 and ::1 must
  see no connection at all.

``tests/resources/test_url_safety.py`` has the basic spellings and the
allow-list; this suite adds the ranges one by one with their edges, the
metadata endpoints of each cloud, more spellings, names whose DNS answers are
private, redirects, and DNS rebinding.
"""

from __future__ import annotations

import ipaddress

import pytest

from resources.fetch_errors import BlockedAddressError
from resources.fetcher import Fetcher, FetchPolicy, FetchResult
from resources.url_safety import AllowList, GuardedNetworkBackend, is_public_address
from tests.reliability.conftest import LoopbackOnlyDialer
from tests.support.loopback_http import LoopbackHTTPServer, Redirect, Static

# Every special-purpose block of the IANA IPv4/IPv6 registries that is not globally
# reachable, written out here independently of resources/url_safety.py, plus the
# IPv6 space outside the allocated unicast blocks (RFC 4291 "reserved by IETF").
# (IPv4-mapped ::ffff:0:0/96 is judged by the IPv4 address it embeds: see METADATA.)
NON_PUBLIC_RANGES = [
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24",
    "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
    "::/128", "::1/128", "::/96", "64:ff9b:1::/48", "100::/64", "2001::/23", "2001:2::/48",
    "2001:10::/28", "2001:20::/28", "2001:db8::/32", "3fff::/20", "5f00::/16", "fc00::/7", "fe80::/10",
    "fec0::/10", "ff00::/8",
    "::ffff:0:0:0/96", "100::/8", "4000::/3", "e000::/4", "fe00::/9",
]  # fmt: skip

# The neighbours just outside the private blocks are ordinary public addresses.
PUBLIC_EDGES = [
    "9.255.255.255", "11.0.0.0", "100.63.255.255", "100.128.0.0", "126.255.255.255", "128.0.0.0",
    "169.253.255.255", "169.255.0.0", "172.15.255.255", "172.32.0.0", "192.167.255.255", "192.169.0.0",
    "198.17.255.255", "198.20.0.0", "223.255.255.255", "2001:4860:4860::8888", "2a00:1450::1",
    "2001:200::1",
]  # fmt: skip

# Cloud metadata and platform endpoints, and the IPv6 spellings that embed them.
METADATA = {
    "AWS/GCP/Azure/OpenStack/DigitalOcean instance metadata": "169.254.169.254",
    "AWS IMDS over IPv6": "fd00:ec2::254",
    "AWS ECS task metadata and credentials": "169.254.170.2",
    "AWS EKS Pod Identity agent": "169.254.170.23",
    "AWS EKS Pod Identity agent over IPv6": "fd00:ec2::23",
    "AWS VPC DNS resolver": "169.254.169.253",
    "AWS time sync": "169.254.169.123",
    "Alibaba Cloud metadata": "100.100.100.200",
    "Oracle Cloud metadata": "192.0.0.192",
    "Tencent Cloud metadata": "169.254.0.23",
    "Azure WireServer": "168.63.129.16",
    "IPv4-mapped metadata": "::ffff:169.254.169.254",
    "IPv4-translated metadata": "::ffff:0:a9fe:a9fe",
    "NAT64 metadata": "64:ff9b::a9fe:a9fe",
    "6to4 metadata": "2002:a9fe:a9fe::1",
    "IPv4-compatible metadata": "::169.254.169.254",
    "metadata with a zone": "fe80::a9fe:a9fe%1",
}


def _edges(cidr: str) -> list[str]:
    net = ipaddress.ip_network(cidr)
    middle = net.network_address + net.num_addresses // 2
    return [str(net.network_address), str(middle), str(net.broadcast_address)]


@pytest.mark.parametrize("address", [a for cidr in NON_PUBLIC_RANGES for a in _edges(cidr)])
def test_every_address_of_every_non_public_range_is_refused(address):
    assert not is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", PUBLIC_EDGES)
def test_the_public_neighbours_of_those_ranges_are_allowed(address):
    assert is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", METADATA.values(), ids=METADATA.keys())
def test_cloud_metadata_endpoints_are_refused(address):
    assert not is_public_address(ipaddress.ip_address(address))


# -- names that resolve to what must not be reached (resolver and dialer are fakes) --------------
class _NoStream:
    """What the dialer hands back when it "connects" to a public address: nothing is sent."""

    def __init__(self, peer: str) -> None:
        self.peer = peer

    async def aclose(self) -> None:
        pass

    def get_extra_info(self, info: str):
        return (self.peer, 80) if info == "server_addr" else None


class _PretendDialer(LoopbackOnlyDialer):
    """Records what would be dialled; "connects" to public addresses without a socket."""

    async def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):  # noqa: ANN001
        self.dialled.append((host, port))
        return _NoStream(host)


@pytest.mark.parametrize(
    ("name", "answer"),
    [
        ("metadata.google.internal", ["169.254.169.254"]),
        ("instance-data.ec2.internal", ["169.254.169.254", "fd00:ec2::254"]),
        ("metadata.tencentyun.com", ["169.254.0.23"]),
        ("kubernetes.default.svc", ["10.96.0.1"]),
        ("cdn.ads.example", ["127.0.0.1"]),
        ("v6.ads.example", ["::1"]),
        ("mapped.ads.example", ["::ffff:127.0.0.1"]),
        ("zero.ads.example", ["0.0.0.0"]),
    ],
)
async def test_a_name_resolving_to_a_non_public_address_is_refused_before_dialling(fake_dns, name, answer):
    fake_dns.serve(name, answer)
    dialer = _PretendDialer()
    with pytest.raises(BlockedAddressError, match="non-public address"):
        await GuardedNetworkBackend(AllowList(), inner=dialer).connect_tcp(name, 80)
    assert dialer.dialled == []
    assert fake_dns.lookups == [name]


async def test_dns_rebinding_the_address_dialled_is_the_address_checked(fake_dns):
    """First lookup public, second private: the guard never re-resolves between check and connect."""
    fake_dns.serve("rebind.ads.example", ["93.184.216.34"], ["127.0.0.1"])
    dialer = _PretendDialer()
    backend = GuardedNetworkBackend(AllowList(), inner=dialer)

    stream = await backend.connect_tcp("rebind.ads.example", 80)
    assert stream.get_extra_info("server_addr") == ("93.184.216.34", 80)
    with pytest.raises(BlockedAddressError, match="127.0.0.1"):
        await backend.connect_tcp("rebind.ads.example", 80)

    assert dialer.dialled == [("93.184.216.34", 80)]  # the checked literal, never the name
    assert fake_dns.lookups == ["rebind.ads.example"] * 2  # one lookup per connection, none by the dialer


# -- end to end: loopback listeners that must hear nothing -----------------------------------
@pytest.fixture
def victims():
    """A listener on 127.0.0.1 and one on ::1 holding a secret; neither may ever be connected to."""
    with LoopbackHTTPServer() as v4, LoopbackHTTPServer(host="::1") as v6:
        for server in (v4, v6):
            server.route("/", Static(b"secret"), prefix=True)
        yield v4, v6


async def _fetch(url: str, work, **policy) -> FetchResult:
    settings = {"max_attempts": 1, "total_timeout_s": 10, **policy}
    async with Fetcher(FetchPolicy(**settings), work) as fetcher:
        return await fetcher.fetch(url)


def _nothing_reached(victims, dialer: LoopbackOnlyDialer, allowed: set[tuple[str, int]] = frozenset()) -> None:
    v4, v6 = victims
    assert (v4.connections, v6.connections) == (0, 0)
    assert [d for d in dialer.dialled if d not in allowed] == []


SPELLINGS = {
    # host as written -> causes that count as refused
    "0x7f.0x0.0x0.0x1": {"blocked_address"},  # hex per octet
    "017700000001": {"blocked_address"},  # one octal number
    "127.0.1": {"blocked_address"},  # three-part inet_aton form
    "0": {"blocked_address"},  # 0.0.0.0 reaches the local host on Linux
    "0x0": {"blocked_address"},
    "[::]": {"blocked_address"},
    "[::1]": {"blocked_address"},
    "[0:0:0:0:0:0:0:1]": {"blocked_address"},
    "[0:0:0:0:0:ffff:127.0.0.1]": {"blocked_address"},  # IPv4-mapped, long form
    "[::ffff:0:127.0.0.1]": {"blocked_address"},  # IPv4-translated (SIIT)
    "[::127.0.0.1]": {"blocked_address"},  # IPv4-compatible
    "user:pw@127.0.0.1": {"blocked_address"},  # userinfo does not hide the host
    "LOCALHOST": {"blocked_address"},
    "localhost.": {"blocked_address"},  # trailing dot on a name
    "127.0.0.1.": {"blocked_address", "dns_error"},  # trailing dot on a literal
    "127.000.000.001": {"invalid_url"},  # zero-padded octets: refused as a URL
    "１２７.０.０.１": {"invalid_url"},  # fullwidth digits (IDNA would fold them)
    "%31%32%37.0.0.1": {"dns_error"},  # percent-encoded: a name, and not one that exists
    "[::1%25lo]": {"dns_error"},  # a zone index
}


@pytest.mark.parametrize("host", SPELLINGS)
async def test_loopback_in_any_spelling_reaches_no_listener(host, victims, dialer, fake_dns, tmp_path):
    v4, v6 = victims
    port = v4.port if not host.startswith("[") else v6.port
    result = await _fetch(f"http://{host}:{port}/secret", tmp_path)
    assert not result.ok
    assert result.cause in SPELLINGS[host], result.detail
    _nothing_reached(victims, dialer)


@pytest.mark.parametrize("answer", [["127.0.0.1"], ["::1"], ["::1", "127.0.0.1"], ["::ffff:127.0.0.1"], ["0.0.0.0"]])
async def test_a_public_looking_name_resolving_to_loopback_reaches_no_listener(
    answer, victims, dialer, fake_dns, tmp_path
):
    fake_dns.serve("media.ads.example", answer)
    v4, v6 = victims
    port = v6.port if answer == ["::1"] else v4.port
    result = await _fetch(f"http://media.ads.example:{port}/ad.png", tmp_path)
    assert result.cause == "blocked_address", result.detail
    assert "add 'media.ads.example:" in result.detail
    _nothing_reached(victims, dialer)


async def test_rebinding_across_retries_ends_blocked_and_dials_only_checked_literals(
    victims, dialer, fake_dns, tmp_path
):
    """Attempt 1 resolves to a public address (the test dialer refuses it: connect_error, retried);
    attempt 2 resolves to loopback: refused before any connection."""
    v4, _ = victims
    fake_dns.serve("rebind.ads.example", ["93.184.216.34"], ["127.0.0.1"])
    result = await _fetch(f"http://rebind.ads.example:{v4.port}/x", tmp_path, max_attempts=3, backoff_base_s=0.001,
                          backoff_cap_s=0.001)  # fmt: skip
    assert (result.cause, result.attempts) == ("blocked_address", 2), result.detail
    assert dialer.dialled == [("93.184.216.34", v4.port)]
    _nothing_reached(victims, dialer, {("93.184.216.34", v4.port)})


@pytest.mark.parametrize(
    "location",
    [
        "http://127.0.0.1:{v4}/admin",
        "http://localhost:{v4}/admin",
        "http://[::1]:{v6}/admin",
        "http://2130706433:{v4}/admin",
        "http://0x7f.1:{v4}/admin",
        "//127.0.0.1:{v4}/admin",  # scheme-relative
        "http://127.0.0.1:{front}@127.0.0.1:{v4}/admin",  # the allowed netloc as userinfo
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://169.254.170.2/v2/credentials/",
        "http://100.100.100.200/latest/meta-data/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://cdn.ads.example:{v4}/admin",  # a public-looking name that resolves to loopback
    ],
)
async def test_a_redirect_to_a_forbidden_address_is_refused_at_that_hop(location, victims, dialer, fake_dns, tmp_path):
    v4, v6 = victims
    fake_dns.serve("metadata.google.internal", ["169.254.169.254"])
    fake_dns.serve("cdn.ads.example", ["127.0.0.1"])
    with LoopbackHTTPServer() as front:
        target = location.format(v4=v4.port, v6=v6.port, front=front.port)
        front.route("/a.png", Redirect("/hop", 301))
        front.route("/hop", Redirect(target, 307))
        result = await _fetch(front.url("/a.png"), tmp_path, allow_hosts=(front.netloc,))
        assert result.cause == "blocked_address", result.detail
        assert front.hits["/a.png"] == front.hits["/hop"] == 1
    _nothing_reached(victims, dialer, {("127.0.0.1", front.port)})


async def test_environment_proxies_are_ignored(monkeypatch, victims, dialer, fake_dns, tmp_path):
    """A proxy variable pointing at loopback must not become a way to reach it."""
    v4, _ = victims
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{v4.port}")
    fake_dns.serve("cdn.ads.example", ["93.184.216.34"])
    result = await _fetch("http://cdn.ads.example/ad.png", tmp_path)
    assert result.cause == "connect_error"  # the test dialer refused the public address itself
    _nothing_reached(victims, dialer, {("93.184.216.34", 80)})
