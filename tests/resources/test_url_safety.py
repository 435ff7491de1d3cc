"""The address policy: URLs come from outside, so a URL must never reach this
machine, the private network or the cloud metadata service, however the
address is spelled. The classification is tested over many addresses; the
enforcement is tested end to end (a real listener on 127.0.0.1 must receive no
connection) and with a fake resolver for what loopback cannot show (a name
resolving to a mix of private and public addresses, a peer that is not the
address dialled)."""

from __future__ import annotations

import ipaddress
import typing

import httpcore
import pytest

from resources.fetch_errors import BlockedAddressError, FetchConfigError
from resources.fetcher import Fetcher, FetchPolicy
from resources.url_safety import AllowList, GuardedNetworkBackend, is_public_address
from tests.support.loopback_http import LoopbackHTTPServer, Static

BLOCKED = [
    "127.0.0.1",
    "127.255.255.254",
    "0.0.0.0",
    "0.1.2.3",
    "10.0.0.1",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "169.254.169.254",  # EC2/GCP/Azure metadata
    "169.254.170.2",  # ECS task metadata
    "100.64.0.1",  # CGNAT
    "100.127.255.255",
    "192.0.0.1",
    "192.0.2.10",  # documentation
    "198.51.100.7",
    "203.0.113.9",
    "198.18.0.1",  # benchmarking
    "224.0.0.1",  # multicast
    "239.255.255.250",
    "240.0.0.1",  # reserved
    "255.255.255.255",  # broadcast
    "::",
    "::1",
    "::ffff:127.0.0.1",  # IPv4-mapped loopback
    "::ffff:169.254.169.254",
    "::ffff:10.0.0.1",
    "::127.0.0.1",  # deprecated IPv4-compatible
    "fe80::1",
    "fc00::1",
    "fd00:ec2::254",  # EC2 metadata over IPv6
    "ff02::1",
    "2001:db8::1",  # documentation
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "64:ff9b:1::1",  # local-use NAT64
    "100::1",  # discard
    "fec0::1",  # site-local
]

PUBLIC = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.216.34",
    "151.101.1.69",
    "2606:4700:4700::1111",
    "2a00:1450:4001:80b::200e",
    "::ffff:8.8.8.8",
    "2002:808:808::1",  # 6to4 of a public address
    "64:ff9b::808:808",  # NAT64 of a public address
]


@pytest.mark.parametrize("address", BLOCKED)
def test_non_public_addresses_are_refused(address):
    assert not is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_allowed(address):
    assert is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    ("entries", "host", "port", "allowed"),
    [
        (["localhost"], "localhost", 8080, True),
        (["localhost"], "LOCALHOST", 1, True),
        (["localhost"], "localhost.", 80, True),  # the trailing dot names the same host
        (["localhost:8080"], "localhost", 8080, True),
        (["localhost:8080"], "localhost", 8081, False),
        (["127.0.0.1"], "127.0.0.1", 5, True),
        (["127.0.0.1"], "2130706433", 5, False),  # odd spellings stay refused
        (["127.0.0.1"], "localhost", 5, False),
        (["[::1]:8080"], "::1", 8080, True),
        (["[::1]:8080"], "[::1]", 8080, True),
        (["[::1]:8080"], "::1", 80, False),
        (["[::1]"], "::1", 80, True),
        (["::1"], "0:0::1", 80, True),  # IPv6 compared in canonical form
        ([" Media.Example.test:443 ", ""], "media.example.test", 443, True),
        ([], "localhost", 80, False),
    ],
)
def test_allow_list_matches_host_and_port(entries, host, port, allowed):
    assert AllowList.from_entries(entries).allows(host, port) is allowed


@pytest.mark.parametrize("entry", ["host:", "host:0", "host:70000", "host:http", "[::1", "[::1]x", ":80"])
def test_malformed_allow_list_entry_names_it(entry):
    with pytest.raises(FetchConfigError, match="allow-list entry"):
        AllowList.from_entries([entry])


async def _fetch(url: str, work, allow: tuple[str, ...] = ()):
    async with Fetcher(FetchPolicy(allow_hosts=allow, max_attempts=1, total_timeout_s=10), work) as fetcher:
        return await fetcher.fetch(url)


BLOCKED_ONLY = {"blocked_address"}


@pytest.mark.parametrize(
    ("host", "causes"),
    [
        ("127.0.0.1", BLOCKED_ONLY),
        ("localhost", BLOCKED_ONLY),
        ("2130706433", BLOCKED_ONLY),  # decimal
        ("0x7f.1", BLOCKED_ONLY),  # hex, short form
        ("0x7f000001", BLOCKED_ONLY),
        ("127.1", BLOCKED_ONLY),
        ("[::ffff:127.0.0.1]", BLOCKED_ONLY),
        ("[::ffff:7f00:1]", BLOCKED_ONLY),
        ("0.0.0.0", BLOCKED_ONLY),  # reaches the local host on Linux
        ("0177.0.0.1", {"invalid_url"}),  # octal: httpx refuses it as a URL
        ("localhost.", {"blocked_address", "dns_error"}),  # resolvers differ on the trailing dot
    ],
)
async def test_loopback_in_any_spelling_is_never_connected(host, causes, tmp_path):
    with LoopbackHTTPServer() as server:
        server.route("/a", Static(b"secret"))
        result = await _fetch(f"http://{host}:{server.port}/a", tmp_path)
        assert not result.ok
        assert result.cause in causes, result.detail
        assert server.connections == 0


async def test_loopback_is_fetched_once_allowed(loopback_http, tmp_path):
    loopback_http.route("/a", Static(b"ok"))
    result = await _fetch(loopback_http.url("/a"), tmp_path, allow=(loopback_http.netloc,))
    assert result.ok and result.bytes == 2


async def test_allow_entry_for_other_port_does_not_open_this_one(loopback_http, tmp_path):
    loopback_http.route("/a", Static(b"ok"))
    result = await _fetch(loopback_http.url("/a"), tmp_path, allow=(f"127.0.0.1:{loopback_http.port + 1}",))
    assert result.cause == "blocked_address"
    assert f"add '127.0.0.1:{loopback_http.port}' to AD_ASSETS_ALLOW_HOSTS" in result.detail
    assert loopback_http.connections == 0


# -- enforcement details a loopback server cannot stage ------------------------
class _Stream(httpcore.AsyncNetworkStream):
    def __init__(self, peer: str) -> None:
        self.peer = peer
        self.closed = False

    async def aclose(self) -> None:
        self.closed = True

    def get_extra_info(self, info: str) -> typing.Any:
        return (self.peer, 80) if info == "server_addr" else None


class _RecordingBackend(httpcore.AsyncNetworkBackend):
    """Stands in for the socket layer: records what would be dialled."""

    def __init__(self, peer: str | None = None) -> None:
        self.dialled: list[str] = []
        self.streams: list[_Stream] = []
        self._peer = peer

    async def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        self.dialled.append(host)
        stream = _Stream(self._peer or host)
        self.streams.append(stream)
        return stream


class _FakeDNS(GuardedNetworkBackend):
    def __init__(self, answers: list[str], inner: _RecordingBackend, allow: AllowList = AllowList()) -> None:
        super().__init__(allow, inner=inner)
        self._answers = [ipaddress.ip_address(a) for a in answers]

    async def resolve(self, host, port):
        return self._answers


async def test_name_resolving_only_to_private_addresses_is_not_dialled():
    inner = _RecordingBackend()
    with pytest.raises(BlockedAddressError, match="10.0.0.5"):
        await _FakeDNS(["10.0.0.5", "169.254.169.254"], inner).connect_tcp("media.example.test", 80)
    assert inner.dialled == []


async def test_only_the_public_addresses_of_a_mixed_answer_are_dialled():
    inner = _RecordingBackend()
    await _FakeDNS(["127.0.0.1", "93.184.216.34"], inner).connect_tcp("media.example.test", 80)
    assert inner.dialled == ["93.184.216.34"]  # the checked literal, not the name


async def test_a_peer_that_is_not_public_is_refused_and_closed():
    inner = _RecordingBackend(peer="127.0.0.1")
    with pytest.raises(BlockedAddressError, match="landed on"):
        await _FakeDNS(["93.184.216.34"], inner).connect_tcp("media.example.test", 80)
    assert inner.streams[0].closed


async def test_allowed_name_may_resolve_to_private_addresses():
    inner = _RecordingBackend()
    allow = AllowList.from_entries(["minio.local:9000"])
    await _FakeDNS(["10.0.0.5"], inner, allow).connect_tcp("minio.local", 9000)
    assert inner.dialled == ["10.0.0.5"]
