"""Allow-lists per stage, and cloud metadata addresses that no allow-list reaches unless it names
them exactly, in every spelling. These tests never open a connection to such an address, even
when they fail: the decision is tested pure, and the backend runs with a resolver that reads
numbers only (no DNS) and a connector that refuses to connect and records that it was asked.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import httpcore
import httpx
import pytest

from ingest.settings import IngestSettings
from alerts.settings import AlertsSettings
from newswatch.errors import ConfigError
from newswatch.netguard import AddressRefused, GuardedBackend, NetworkPolicy, decide, guarded_transport
from newswatch.yamlconf import load_text

# Every way of writing a metadata address that a URL or a resolver can produce.
METADATA_SPELLINGS = {
    "aws/gcp/azure v4": "169.254.169.254",
    "alibaba v4": "100.100.100.200",
    "aws v6": "fd00:ec2::254",
    "aws v6 long": "fd00:0ec2:0000:0000:0000:0000:0000:0254",
    "aws v6 upper": "FD00:EC2::254",
    "v4-mapped": "::ffff:169.254.169.254",
    "v4-mapped hex": "::ffff:a9fe:a9fe",
    "v4-mapped alibaba": "::ffff:100.100.100.200",
    "v4-compatible": "::169.254.169.254",
    "nat64": "64:ff9b::a9fe:a9fe",
    "nat64 local": "64:ff9b:1::a9fe:a9fe",
    "6to4": "2002:a9fe:a9fe::1",
    "teredo": "2001:0:4136:e378:8000:63bf:5601:5601",
    "decimal": "2852039166",
    "decimal alibaba": "1684301000",
    "octal": "0251.0376.0251.0376",
    "octal partial": "0251.254.169.254",
    "hex": "0xa9fea9fe",
    "hex dotted": "0xa9.0xfe.0xa9.0xfe",
    "two parts": "169.254.43518",
    "three parts": "169.16689662",
}
# Allow-lists that do not name a metadata address exactly, however much they cover.
ALLOW_LISTS = {
    "none": NetworkPolicy(),
    "private (deprecated switch)": NetworkPolicy(private=True),
    "link-local": NetworkPolicy.of(["169.254.0.0/16"]),
    "the /24 around it": NetworkPolicy.of(["169.254.169.0/24"]),
    "cgnat": NetworkPolicy.of(["100.64.0.0/10"]),
    "everything": NetworkPolicy.of(["0.0.0.0/0", "::/0"]),
    "ula": NetworkPolicy.of(["fd00::/8", "fc00::/7"]),
    "embedding prefixes": NetworkPolicy.of(["::ffff:0:0/96", "64:ff9b::/96", "2002::/16", "2001::/32"]),
    "everything and private": NetworkPolicy.of(["0.0.0.0/0", "::/0"], True),
    "the other metadata address": NetworkPolicy.of(["100.100.100.201/32", "169.254.169.253/32"]),
}


def _numeric(spelling: str) -> str:
    """The address the C library reads from a numeric spelling (no DNS: AI_NUMERICHOST)."""
    return socket.getaddrinfo(spelling, 80, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)[0][4][0]


def test_every_spelling_reads_as_a_metadata_address():
    metadata = {ipaddress.ip_address(a) for a in ("169.254.169.254", "100.100.100.200", "fd00:ec2::254")}
    from newswatch.netguard import embedded_ipv4

    for name, spelling in METADATA_SPELLINGS.items():
        ip = ipaddress.ip_address(_numeric(spelling))
        inner = embedded_ipv4(ip) if ip.version == 6 else None
        assert ip in metadata or inner in metadata, name


@pytest.mark.parametrize("policy", ALLOW_LISTS.values(), ids=ALLOW_LISTS.keys())
@pytest.mark.parametrize("spelling", METADATA_SPELLINGS.values(), ids=METADATA_SPELLINGS.keys())
def test_metadata_is_refused_by_every_allow_list_that_does_not_name_it(spelling, policy):
    reason = decide(_numeric(spelling), policy)
    assert reason is not None and "cloud metadata address" in reason


@pytest.mark.parametrize("listed, spelling", [
    ("169.254.169.254/32", "169.254.169.254"), ("169.254.169.254/32", "::ffff:169.254.169.254"),
    ("169.254.169.254/32", "2852039166"), ("fd00:ec2::254/128", "FD00:EC2::254"),
    ("100.100.100.200/32", "100.100.100.200"),
])
def test_a_metadata_address_listed_exactly_is_allowed(listed, spelling):
    assert decide(_numeric(spelling), NetworkPolicy.of([listed])) is None


@pytest.mark.parametrize("address, networks, private, allowed", [
    ("10.1.2.3", ["10.0.0.0/8"], False, True),
    ("10.1.2.3", ["192.168.0.0/16"], False, False),
    ("127.0.0.1", ["127.0.0.1/32"], False, True),
    ("127.0.0.2", ["127.0.0.1/32"], False, False),
    ("::ffff:10.9.9.9", ["10.0.0.0/8"], False, True),  # the embedded address is what is reached
    ("fd12::1", ["fd00::/8"], False, True),
    ("192.168.1.1", [], True, True),  # the deprecated switch still allows private ranges
    ("8.8.8.8", [], False, True),
    ("169.254.10.1", ["10.0.0.0/8"], False, False),
])
def test_allow_lists_let_through_exactly_their_networks(address, networks, private, allowed):
    assert (decide(address, NetworkPolicy.of(networks, private)) is None) is allowed


class NeverConnect(httpcore.AsyncNetworkBackend):
    """Stands in for the socket layer: records any attempt and connects nowhere."""

    def __init__(self):
        self.attempts: list[str] = []

    async def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        self.attempts.append(host)
        raise httpcore.ConnectError(f"test backend: would have connected to {host}")

    async def sleep(self, seconds):
        await asyncio.sleep(seconds)


async def numeric_resolver(host: str, port: int) -> list[str]:
    return [_numeric(host)]


@pytest.mark.parametrize("policy", ALLOW_LISTS.values(), ids=ALLOW_LISTS.keys())
async def test_the_backend_refuses_every_spelling_before_connecting(policy):
    inner = NeverConnect()
    backend = GuardedBackend(policy=policy, inner=inner, resolve=numeric_resolver)
    for name, spelling in METADATA_SPELLINGS.items():
        with pytest.raises(AddressRefused, match="cloud metadata address"):
            await backend.connect_tcp(spelling, 80, timeout=5)
    assert inner.attempts == []


URL_HOSTS = ["169.254.169.254", "[fd00:ec2::254]", "[::ffff:a9fe:a9fe]", "2852039166", "0xa9fea9fe",
             "0xa9.0xfe.0xa9.0xfe", "169.254.43518", "100.100.100.200", "[64:ff9b::a9fe:a9fe]"]


@pytest.mark.parametrize("host", URL_HOSTS)
async def test_urls_with_metadata_hosts_are_refused_through_httpx_with_a_bracketed_host(host):
    inner = NeverConnect()
    backend = GuardedBackend(policy=NetworkPolicy.of(["0.0.0.0/0", "::/0"], True), inner=inner,
                             resolve=numeric_resolver)
    async with httpx.AsyncClient(transport=guarded_transport(backend=backend)) as client:
        with pytest.raises(AddressRefused) as refused:
            await client.get(f"http://{host}/latest/meta-data/")
    assert inner.attempts == []
    message = str(refused.value)
    if ":" in host:
        assert f"refused to connect to {host} (" in message  # IPv6 shown in brackets, as in a URL
    assert "allow_networks" in message and "--allow-private-networks" in message


@pytest.mark.parametrize("model, section", [(IngestSettings, "ingest"), (AlertsSettings, "alerts")])
def test_allow_networks_is_validated_with_file_and_line(model, section):
    good = load_text('allow_networks: [10.0.0.0/8, "127.0.0.1/32", 169.254.169.254/32, "fd00::/8"]\n', model, "x.yaml")
    assert good.allow_networks == ("10.0.0.0/8", "127.0.0.1/32", "169.254.169.254/32", "fd00::/8")
    with pytest.raises(ConfigError) as raised:
        load_text("allow_networks:\n  - 10.0.0.0/8\n  - 10.0.0.1/8\n  - intranet\n", model, "x.yaml")
    found = [(p.line, p.key) for p in raised.value.problems]
    assert found == [(3, "allow_networks.1"), (4, "allow_networks.2")]
    assert "host bits" in str(raised.value) and "'intranet' is not a network" in str(raised.value)


def test_the_stages_pass_their_allow_lists_to_the_guard():
    from alerts.cli import http_client
    from ingest.poller import build_client

    def policy(client: httpx.AsyncClient) -> NetworkPolicy:
        return client._transport._pool._network_backend.policy

    ingest = build_client(IngestSettings(allow_networks=("10.0.0.0/8",)))
    alerts = http_client(AlertsSettings(allow_networks=("172.16.0.0/12",), allow_private_networks=True))
    assert policy(ingest) == NetworkPolicy.of(["10.0.0.0/8"])
    assert policy(alerts) == NetworkPolicy.of(["172.16.0.0/12"], True)
