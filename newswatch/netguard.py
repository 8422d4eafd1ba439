"""Refuse outbound connections to addresses a feed or webhook URL must never reach.

Feeds and subscriber URLs come from users and from the Internet; left alone they can aim
newswatch at the cloud metadata service or the office network. The check runs where the
connection is made, on every address the name resolves to (so DNS rebinding and redirects
are covered too): loopback, private, link-local, CGNAT, metadata, multicast, reserved and
unspecified addresses are refused, including IPv6 forms that embed an IPv4 address
(::ffff:a.b.c.d, 64:ff9b::/96, 2002::/16, Teredo).

A stage may allow some networks (`allow_networks: [10.0.0.0/8, 127.0.0.1/32]` in its section of
newswatch.yaml): addresses inside them are reached. Cloud metadata addresses are never reached
unless listed by their exact address (169.254.169.254/32), however wide the allowed networks; the
deprecated `allow_private_networks: true` allows every private range but never those either.
`decide()` is the pure decision; `GuardedBackend` applies it to every resolved address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Iterable

import httpcore
import httpx
import pydantic

from newswatch.errors import NewswatchError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("100.100.100.200"),
             ipaddress.ip_address("fd00:ec2::254")}
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# What a refusal says to do about it: the config key and the command-line flag.
HOW_TO_ALLOW = ("list its network in allow_networks of the stage's section of newswatch.yaml "
                "(e.g. ingest.allow_networks: [10.0.0.0/8]), or pass --allow-private-networks to "
                "`newswatch fetch` or `newswatch detect`; metadata addresses only by their exact address")


class AddressRefused(NewswatchError):
    """A URL's host resolved to an address newswatch must not connect to."""

    def __init__(self, host: str, address: str, reason: str):
        self.host = host
        self.address = address
        self.reason = reason
        shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
        super().__init__(f"refused to connect to {shown} ({address}): {reason}; to permit it, {HOW_TO_ALLOW}")


@dataclass(frozen=True)
class NetworkPolicy:
    """Which non-public addresses a stage may reach: `networks` (an allow-list) and, deprecated,
    `private` (every private range). Metadata addresses need an exact entry in `networks`."""

    networks: tuple[IPNetwork, ...] = ()
    private: bool = False

    @classmethod
    def of(cls, allow_networks: Iterable[str | IPNetwork] = (), allow_private_networks: bool = False) -> "NetworkPolicy":
        return cls(tuple(ipaddress.ip_network(n, strict=False) if isinstance(n, str) else n for n in allow_networks),
                   allow_private_networks)


def parse_network(value: str) -> IPNetwork:
    """A network of an allow-list: CIDR (10.0.0.0/8, fd00::/8) or one address; ValueError saying why not."""
    try:
        return ipaddress.ip_network(str(value).strip(), strict=True)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a network (CIDR such as 10.0.0.0/8 or 127.0.0.1/32, "
                         f"host bits zero): {exc}") from None


# A config field: one network of an allow-list, validated (file:line on error) and kept as its text.
AllowedNetwork = Annotated[str, pydantic.BeforeValidator(lambda value: str(parse_network(value)))]


def _forms(ip: IPAddress) -> list[IPAddress]:
    """The address and the IPv4 address it embeds, if any."""
    inner = embedded_ipv4(ip) if isinstance(ip, ipaddress.IPv6Address) else None
    return [ip] if inner is None else [ip, inner]


def _listed_exactly(address: IPAddress, networks: tuple[IPNetwork, ...]) -> bool:
    return any(n.num_addresses == 1 and n.network_address == address for n in networks)


def decide(address: IPAddress | str, policy: NetworkPolicy = NetworkPolicy()) -> str | None:
    """Why `address` must not be connected to under `policy`, or None when it may be. Pure."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    forms = _forms(ip)
    metadata = [form for form in forms if form in _METADATA]
    if metadata:
        if any(_listed_exactly(form, policy.networks) for form in forms):
            return None
        embedded = f" (embedded in {ip})" if metadata[0] != ip else ""
        return (f"cloud metadata address{embedded}, allowed only when listed exactly "
                f"(allow_networks: [{metadata[0]}/{metadata[0].max_prefixlen}])")
    if any(form.version == net.version and form in net for form in forms for net in policy.networks):
        return None
    reason = address_refusal(ip)
    if reason is not None and policy.private:
        return None
    return reason


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


Resolver = Callable[[str, int], Awaitable[list[str]]]


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (numeric spellings included, as the C library reads them)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that resolves names itself and checks every address first.

    `resolve` and `inner` (what connects) can be swapped, e.g. by tests that must never connect.
    """

    def __init__(self, allow_private_networks: bool = False, inner: httpcore.AsyncNetworkBackend | None = None,
                 policy: NetworkPolicy | None = None, resolve: Resolver | None = None):
        self.policy = policy if policy is not None else NetworkPolicy(private=allow_private_networks)
        self._inner = inner or httpcore.AnyIOBackend()
        self._resolve = resolve or system_resolver

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable | None = None) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await asyncio.wait_for(self._resolve(host, port), timeout)
        except (socket.gaierror, asyncio.TimeoutError) as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc or 'timed out'}") from None
        for address in addresses:
            reason = decide(address.split("%")[0], self.policy)
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


def guarded_transport(*, allow_private_networks: bool = False, allow_networks: Iterable[str | IPNetwork] = (),
                      limits: httpx.Limits | None = None, verify: bool = True, http2: bool = False,
                      backend: GuardedBackend | None = None) -> httpx.AsyncHTTPTransport:
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
        network_backend=backend or GuardedBackend(policy=NetworkPolicy.of(allow_networks, allow_private_networks)),
    )
    return transport
