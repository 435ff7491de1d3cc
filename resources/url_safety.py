"""Which addresses the downloader may connect to, and the one place that is enforced.

URLs come from outside, so a URL must not be able to reach the machine itself,
the private network or the cloud metadata service. Checking the *host name*
is not enough (DNS can point anywhere, and ``2130706433`` is ``127.0.0.1``), so
the check runs on the address actually connected to: ``GuardedNetworkBackend``
resolves the name itself, refuses non-public addresses and connects to the
checked IP literal. Redirects go through the same backend, so every hop is
re-checked; pooled connections are keyed by origin, so a connection made for a
checked origin is only reused for that origin.

Local development and tests name the hosts they trust in
``AD_ASSETS_ALLOW_HOSTS`` (``AllowList``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import select
import socket
import ssl
import typing
from collections.abc import Iterable
from dataclasses import dataclass

import httpcore
from httpcore import AsyncNetworkBackend, AsyncNetworkStream

from resources.fetch_errors import BlockedAddressError, DNSError, FetchConfigError

__all__ = [
    "AllowList",
    "BlockedAddressError",
    "GuardedNetworkBackend",
    "is_public_address",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# IANA special-purpose ranges (RFC 6890 and successors), listed explicitly
# rather than trusting ``ip.is_global`` alone, whose tables change between
# Python patch releases. ``is_global`` is still consulted as a second opinion.
_BLOCKED_V4 = tuple(
    ipaddress.IPv4Network(net)
    for net in (
        "0.0.0.0/8",  # "this network", incl. the unspecified 0.0.0.0
        "10.0.0.0/8",  # private
        "100.64.0.0/10",  # carrier-grade NAT
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local: 169.254.169.254 (EC2/GCP/Azure metadata), 169.254.170.2 (ECS)
        "172.16.0.0/12",  # private
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation TEST-NET-1
        "192.88.99.0/24",  # deprecated 6to4 relay anycast
        "192.168.0.0/16",  # private
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation TEST-NET-2
        "203.0.113.0/24",  # documentation TEST-NET-3
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, incl. broadcast 255.255.255.255
        # Not special-purpose, but a cloud platform endpoint every VM can reach:
        "168.63.129.16/32",  # Azure WireServer (VM agent config, health probes)
    )
)
_BLOCKED_V6 = tuple(
    ipaddress.IPv6Network(net)
    for net in (
        "::/96",  # unspecified, loopback and deprecated IPv4-compatible ::a.b.c.d
        "64:ff9b:1::/48",  # local-use NAT64
        "100::/64",  # discard-only
        "2001::/23",  # IETF protocol assignments, incl. Teredo 2001::/32
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation (RFC 9637)
        "5f00::/16",  # SRv6 SIDs
        "fc00::/7",  # unique local, incl. fd00:ec2::254 (EC2 metadata over IPv6)
        "fe80::/10",  # link-local
        "fec0::/10",  # deprecated site-local
        "ff00::/8",  # multicast
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def is_public_address(ip: IPAddress) -> bool:
    """True when ``ip`` is a globally routable unicast address the downloader may connect to.

    False for loopback, private, link-local (cloud metadata included), CGNAT,
    multicast, reserved, unspecified, broadcast and documentation ranges, and
    for IPv6 forms that embed such an IPv4 address (IPv4-mapped, 6to4, NAT64).
    """
    if isinstance(ip, ipaddress.IPv6Address):
        # Embedded IPv4: the packet ends up at the IPv4 address, so judge that.
        if ip.ipv4_mapped is not None:
            return is_public_address(ip.ipv4_mapped)
        if ip in _NAT64:
            return is_public_address(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        if ip.sixtofour is not None and not is_public_address(ip.sixtofour):
            return False
        if ip.scope_id:  # a zone index only makes sense for link-local targets
            return False
        blocked: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = _BLOCKED_V6
    else:
        blocked = _BLOCKED_V4
    if any(ip in net for net in blocked):
        return False
    # is_reserved: IPv6 outside the allocated unicast blocks (e.g. the IPv4-translated
    # ::ffff:0:7f00:1, which is_global calls global), and 240.0.0.0/4.
    return ip.is_global and not ip.is_multicast and not ip.is_reserved


def _normalise_host(host: str) -> str:
    """Lower-case, unbracketed, no trailing dot, canonical form for IP literals."""
    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    host = host.rstrip(".")
    try:
        return ipaddress.ip_address(host).compressed
    except ValueError:
        return host


@dataclass(frozen=True)
class AllowList:
    """Hosts trusted despite resolving to non-public addresses (``AD_ASSETS_ALLOW_HOSTS``).

    An entry ``host`` allows every port, ``host:port`` only that port; IPv6
    literals are written ``[::1]`` or ``[::1]:8080``. Matching is on the host
    *as written in the URL*, so ``http://2130706433/`` is not allowed by an
    entry ``127.0.0.1``: odd spellings stay refused.
    """

    any_port: frozenset[str] = frozenset()
    host_ports: frozenset[tuple[str, int]] = frozenset()

    @classmethod
    def from_entries(cls, entries: Iterable[str]) -> "AllowList":
        """Parse entries; raise ``FetchConfigError`` naming a malformed one."""
        any_port: set[str] = set()
        host_ports: set[tuple[str, int]] = set()
        for raw in entries:
            entry = raw.strip().lower()
            if not entry:
                continue
            host, port = _split_entry(entry, raw)
            if port is None:
                any_port.add(host)
            else:
                host_ports.add((host, port))
        return cls(frozenset(any_port), frozenset(host_ports))

    def allows(self, host: str, port: int) -> bool:
        """True when ``host`` (as written in the URL) on ``port`` is trusted."""
        host = _normalise_host(host)
        return host in self.any_port or (host, port) in self.host_ports

    def __bool__(self) -> bool:
        return bool(self.any_port or self.host_ports)


def _split_entry(entry: str, raw: str) -> tuple[str, int | None]:
    if entry.startswith("["):
        end = entry.find("]")
        if end < 0:
            raise FetchConfigError(f"allow-list entry {raw!r}: unclosed '[' (write IPv6 as [::1]:8080)")
        host, rest = entry[1:end], entry[end + 1 :]
        if rest and not rest.startswith(":"):
            raise FetchConfigError(f"allow-list entry {raw!r}: expected ':port' after ']'")
        port_text = rest[1:] if rest else None
    elif entry.count(":") > 1:  # a bare IPv6 literal: no port possible
        host, port_text = entry, None
    elif ":" in entry:
        host, port_text = entry.split(":", 1)
    else:
        host, port_text = entry, None
    if not host:
        raise FetchConfigError(f"allow-list entry {raw!r}: empty host")
    port: int | None = None
    if port_text is not None:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise FetchConfigError(f"allow-list entry {raw!r}: port must be 1-65535")
        port = int(port_text)
    return _normalise_host(host), port


class GuardedNetworkBackend(AsyncNetworkBackend):
    """httpcore network backend that resolves, checks, then connects to the checked IP.

    Wraps httpcore's default backend. httpcore calls ``connect_tcp`` with the
    URL's host; TLS then runs ``start_tls(server_hostname=<that host>)``, so
    certificate checks and SNI still use the name even though the socket was
    opened to an IP literal.
    """

    def __init__(self, allow_list: AllowList, inner: AsyncNetworkBackend | None = None) -> None:
        self._allow_list = allow_list
        self._inner = inner if inner is not None else httpcore.AnyIOBackend()

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        """Addresses ``host`` resolves to, in resolver order, without duplicates."""
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
        except socket.gaierror as exc:
            temporary = exc.errno == socket.EAI_AGAIN
            raise DNSError(f"host {host!r} did not resolve: {exc.strerror}", temporary=temporary) from exc
        except UnicodeError as exc:
            raise DNSError(f"host {host!r} is not a valid DNS name") from exc
        addresses: list[IPAddress] = []
        for family, _, _, _, sockaddr in infos:
            if family not in (socket.AF_INET, socket.AF_INET6):
                continue
            ip = ipaddress.ip_address(sockaddr[0])
            if ip not in addresses:
                addresses.append(ip)
        if not addresses:
            raise DNSError(f"host {host!r} resolved to no IP address")
        return addresses

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> AsyncNetworkStream:
        allowed = self._allow_list.allows(host, port)
        try:
            # getaddrinfo has no timeout of its own; the connect budget covers it.
            async with asyncio.timeout(timeout):
                addresses = await self.resolve(host, port)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host!r} took longer than {timeout}s") from None
        # Only public addresses are ever dialled; a name with some private
        # records still works through its public ones.
        candidates = addresses if allowed else [ip for ip in addresses if is_public_address(ip)]
        if not candidates:
            shown = ", ".join(str(ip) for ip in addresses)
            entry = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            raise BlockedAddressError(
                f"host {host!r} resolves to non-public address {shown}; "
                f"add '{entry}' to AD_ASSETS_ALLOW_HOSTS if it is trusted"
            )
        last_error: Exception | None = None
        for ip in candidates:
            try:
                stream = await self._inner.connect_tcp(
                    str(ip), port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except httpcore.ConnectError as exc:  # try the next address, like happy eyeballs would
                last_error = exc
                continue
            await self._check_peer(stream, host, port, allowed)
            return _PooledStream(stream)
        assert last_error is not None
        raise last_error

    async def _check_peer(self, stream: AsyncNetworkStream, host: str, port: int, allowed: bool) -> None:
        # Belt and braces: the socket is connected to an IP we chose, but verify
        # the kernel's idea of the peer too before sending a single byte.
        peer = stream.get_extra_info("server_addr")
        if allowed or peer is None:
            return
        ip = ipaddress.ip_address(peer[0])
        if not is_public_address(ip):
            await stream.aclose()
            raise BlockedAddressError(f"connection for {host!r}:{port} landed on non-public address {ip}")

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> AsyncNetworkStream:
        raise BlockedAddressError("unix sockets are never used for downloads")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _PooledStream(AsyncNetworkStream):
    """The connected stream, answering httpcore's ``is_readable`` question cheaply.

    On every request and response httpcore asks each idle pooled connection
    whether its socket is readable (a server hang-up). Through anyio that
    builds a dict of attribute getters per call, which profiled as ~20% of the
    client's CPU in bench_download; here it is one ``poll`` on the socket.
    """

    def __init__(self, inner: AsyncNetworkStream) -> None:
        self._inner = inner
        self._socket: socket.socket | None = inner.get_extra_info("socket")

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> AsyncNetworkStream:
        # TLS wraps the same socket, so readability is still asked of it.
        return _PooledStream(await self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> typing.Any:
        if info == "is_readable":
            sock = self._socket
            if sock is None or sock.fileno() < 0:
                return True  # treat an unknown or closed socket as "hung up"
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        return self._inner.get_extra_info(info)
