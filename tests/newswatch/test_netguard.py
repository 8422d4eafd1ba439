import asyncio
import http.server
import threading

import httpx
import pytest

from newswatch.netguard import AddressRefused, address_refusal, guarded_transport


@pytest.mark.parametrize("address, reason", [
    ("127.0.0.1", "loopback"), ("127.8.9.10", "loopback"), ("::1", "loopback"),
    ("10.1.2.3", "private"), ("172.16.0.1", "private"), ("192.168.1.1", "private"),
    ("169.254.169.254", "metadata"), ("100.100.100.200", "metadata"), ("fd00:ec2::254", "metadata"),
    ("169.254.10.1", "link-local"), ("fe80::1", "link-local"),
    ("100.64.0.1", "carrier-grade NAT"), ("100.127.255.254", "carrier-grade NAT"),
    ("224.0.0.1", "multicast"), ("ff02::1", "multicast"),
    ("0.0.0.0", "unspecified"), ("::", "unspecified"),
    ("fc00::1", "private"), ("240.0.0.1", "address"),
    ("::ffff:127.0.0.1", "loopback"), ("::ffff:169.254.169.254", "metadata"),
    ("64:ff9b::a9fe:a9fe", "metadata"), ("2002:7f00:1::", "loopback"), ("::10.0.0.1", "private"),
    ("2001:0:4136:e378:8000:63bf:f5ff:fffe", "private"),  # Teredo wrapping 10.0.0.1
])
def test_refused_addresses(address, reason):
    refusal = address_refusal(address)
    assert refusal is not None and reason in refusal


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700::6810:85e5", "::ffff:8.8.8.8",
                                     "100.128.0.1"])
def test_public_addresses_pass(address):
    assert address_refusal(address) is None


@pytest.fixture
def local_server():
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"hello")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", server.server_address[1]
    server.shutdown()


async def test_guard_refuses_loopback_by_name_and_literal(local_server):
    url, port = local_server
    async with httpx.AsyncClient(transport=guarded_transport()) as client:
        for target in (url, f"http://localhost:{port}/"):
            with pytest.raises(AddressRefused, match="loopback address"):
                await client.get(target)


async def test_guard_allows_private_networks_when_told(local_server):
    url, _ = local_server
    async with httpx.AsyncClient(transport=guarded_transport(allow_private_networks=True)) as client:
        response = await client.get(url)
    assert response.text == "hello"


async def test_unresolvable_host_is_a_connect_error():
    async with httpx.AsyncClient(transport=guarded_transport()) as client:
        with pytest.raises(httpx.ConnectError, match="cannot resolve"):
            await asyncio.wait_for(client.get("http://no-such-host.invalid/"), 30)
