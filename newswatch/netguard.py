"""Refuse outbound connections to addresses a feed or webhook URL must never reach.

Feeds and subscriber URLs come from users and from the Internet; left alone they can aim
newswatch at the cloud metadata service or the office network. The check runs where the
connection is made, on every address the name resolves to (so DNS rebinding and redirects
are covered too): loopback, private, link-local, CGNAT, metadata, multicast, reserved and
unspecified addresses are refused, including IPv6 forms that embed an IPv4 address
(::ffff:a.b.c.d, 64:ff9b::/96, 2002::/16, Teredo). `allow_private_networks` turns it off
(tests and the local demo).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Iterable

import httpcore
import httpx

from newswatch.errors import NewswatchError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("100.100.100.200"),
             ipaddress.ip_address("fd00:ec2::254")}
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")


class AddressRefused(NewswatchError):
    """A URL's host resolved to an address newswatch must not connect to."""

    def __init__(self, host: str, address: str, reason: str):
        self.host = host
        self.address = address
        self.reason = reason
        super().__init__(f"refused to connect to {host} ({address}): {reason}; "
                         "set allow_private_networks to permit it")


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, compatible, NAT64, 6to4, Teredo), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64 or address in _NAT64_LOCAL:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    packed = address.packed
    if packed[:12] == bytes(12) and int(address) > 1:  # deprecated IPv4-compatible ::a.b.c.d
        return ipaddress.IPv4Address(packed[12:])
    return None


def address_refusal(address: IPAddress | str) -> str | None:
    """Why `address` must not be connected to, or None when it is an ordinary public address."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address):
        inner = embedded_ipv4(ip)
        if inner is not None:
            reason = address_refusal(inner)
            return f"{reason} (embedded in {ip})" if reason else None
    if ip in _METADATA:
        return "cloud metadata address"
    checks = (("loopback", ip.is_loopback), ("unspecified", ip.is_unspecified),
              ("link-local", ip.is_link_local), ("multicast", ip.is_multicast),
              ("carrier-grade NAT", isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT),
              ("private", ip.is_private), ("reserved", ip.is_reserved))
    for name, hit in checks:
        if hit:
            return f"{name} address"
    if not ip.is_global:
        return "non-global address"
    return None


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that resolves names itself and checks every address first."""

    def __init__(self, allow_private_networks: bool = False, inner: httpcore.AsyncNetworkBackend | None = None):
        self.allow_private_networks = allow_private_networks
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable | None = None) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout)
        except (socket.gaierror, asyncio.TimeoutError) as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc or 'timed out'}") from None
        addresses = list(dict.fromkeys(info[4][0] for info in infos))
        if not self.allow_private_networks:
            for address in addresses:
                reason = address_refusal(address.split("%")[0])
                if reason:
                    raise AddressRefused(host, address, reason)
        last_error: Exception | None = None
        for address in addresses:  # connect to the checked address, never re-resolve the name
            try:
                return await self._inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                last_error = exc
        raise last_error or httpcore.ConnectError(f"no address for {host}")

    async def connect_unix_socket(self, path, timeout=None, socket_options=None):
        raise AddressRefused(path, path, "unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def guarded_transport(*, allow_private_networks: bool = False, limits: httpx.Limits | None = None,
                      verify: bool = True, http2: bool = False) -> httpx.AsyncHTTPTransport:
    """An httpx transport whose connections pass through GuardedBackend.

    httpx has no public hook for the network backend, so the transport's connection pool is
    rebuilt with the same settings plus ours (httpx is pinned below 0.29 for this reason).
    """
    limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
    transport = httpx.AsyncHTTPTransport(limits=limits, verify=verify, http2=http2)
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=httpx.create_ssl_context(verify=verify),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        http1=True, http2=http2,
        network_backend=GuardedBackend(allow_private_networks),
    )
    return transport
