"""Fixtures of the reliability suite: a dialer that can only ever reach loopback,
a resolver that never asks real DNS, and the figures the suite measures.

Why a loopback-only dialer under every in-process ``Fetcher``: these tests feed
the downloader addresses it must refuse (cloud metadata, private ranges). If
the guard had a bug, the test must fail on its assertions, not send a packet to
169.254.169.254. ``LoopbackOnlyDialer`` replaces httpcore's socket layer below
``GuardedNetworkBackend``: it records every address the guard asks it to dial
and refuses, without touching the network, anything that is not loopback.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpcore
import pytest

import resources.fetcher as fetcher_module
from resources.url_safety import GuardedNetworkBackend

#: Figures measured by this session's tests: name -> (value, unit, what).
FIGURES: dict[str, tuple[Any, str, str]] = {}


@pytest.fixture
def figures() -> Callable[[str, Any, str, str], None]:
    """``record(name, value, unit, what)``: keep a measured figure for the summary (and docs/reliability.md)."""

    def record(name: str, value: Any, unit: str, what: str) -> None:
        FIGURES[name] = (value, unit, what)

    return record


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the figures; with ``AD_ASSETS_RELIABILITY_FIGURES=path`` also write them as JSON."""
    if not FIGURES:
        return
    terminalreporter.section("reliability figures")
    for name, (value, unit, what) in sorted(FIGURES.items()):
        terminalreporter.write_line(f"{name:38} {value!s:>12} {unit:8} {what}")
    target = os.environ.get("AD_ASSETS_RELIABILITY_FIGURES")
    if target:
        doc = {name: {"value": v, "unit": u, "what": w} for name, (v, u, w) in sorted(FIGURES.items())}
        with open(target, "w", encoding="utf-8") as handle:
            json.dump(doc, handle, indent=1)


# -- never dial anything but loopback -----------------------------------------------------
class LoopbackOnlyDialer(httpcore.AsyncNetworkBackend):
    """The socket layer under ``GuardedNetworkBackend`` in tests: loopback only, every dial recorded."""

    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()
        self.dialled: list[tuple[str, int]] = []

    async def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):  # noqa: ANN001
        self.dialled.append((host, port))
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False  # a name, not the checked literal: never resolved here
        if not loopback:
            raise httpcore.ConnectError(f"test dialer refuses {host}:{port} (not loopback; nothing was sent)")
        return await self._inner.connect_tcp(
            host, port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )

    async def connect_unix_socket(self, path, timeout=None, socket_options=None):  # noqa: ANN001
        raise httpcore.ConnectError("test dialer refuses unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


@pytest.fixture(autouse=True)
def dialer(monkeypatch: pytest.MonkeyPatch) -> LoopbackOnlyDialer:
    """Every ``Fetcher`` made in this test dials through a fresh ``LoopbackOnlyDialer``."""
    recording = LoopbackOnlyDialer()
    monkeypatch.setattr(
        fetcher_module, "GuardedNetworkBackend", functools.partial(GuardedNetworkBackend, inner=recording)
    )
    return recording


# -- a resolver that never leaves the machine ------------------------------------------------
@dataclass
class FakeDNS:
    """Answers for names, per lookup: ``answers[name]`` is a list of address lists, the last repeating.

    Numeric hosts and ``localhost`` go to the system resolver with no DNS
    traffic (``AI_NUMERICHOST`` / ``/etc/hosts``); any other unknown name
    fails like NXDOMAIN, so no test ever queries real DNS.
    """

    answers: dict[str, list[list[str]]] = field(default_factory=dict)
    lookups: list[str] = field(default_factory=list)
    real: Callable[..., Any] = socket.getaddrinfo

    def serve(self, name: str, *rounds: list[str]) -> None:
        """``name`` resolves to ``rounds[0]`` first, then ``rounds[1]``… (the last one repeats)."""
        self.answers[name.lower().rstrip(".")] = list(rounds)

    def getaddrinfo(self, host, port, family=0, type=0, proto=0, flags=0):  # noqa: A002, ANN001
        name = host.decode() if isinstance(host, bytes) else str(host)
        self.lookups.append(name)
        key = name.lower().rstrip(".")
        if key in self.answers:
            rounds = self.answers[key]
            served = sum(1 for looked in self.lookups if looked.lower().rstrip(".") == key)
            addresses = rounds[min(served, len(rounds)) - 1]
            infos = []
            for address in addresses:
                ip = ipaddress.ip_address(address)
                af = socket.AF_INET if ip.version == 4 else socket.AF_INET6
                sockaddr = (address, port) if ip.version == 4 else (address, port, 0, 0)
                infos.append((af, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr))
            return infos
        if key == "localhost":
            return self.real(key, port, family, type, proto, flags)  # /etc/hosts, with or without the dot
        try:
            return self.real(host, port, family, type, proto, flags | socket.AI_NUMERICHOST)
        except socket.gaierror:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDNS]:
    """Replace ``socket.getaddrinfo`` (what asyncio's resolver calls) with a ``FakeDNS``."""
    dns = FakeDNS()
    monkeypatch.setattr(socket, "getaddrinfo", dns.getaddrinfo)
    yield dns
