"""Many webhook receivers in a separate process, for latency tests and the delivery benchmark.

    python -m tests.alerts.receiver_farm HEALTHY [--hanging] [--failing]

Prints one JSON line with the ports ({"healthy": [...], "hanging": p, "failing": p}), then serves
(asyncio, minimal HTTP/1.1 with keep-alive) until stdin closes, and finally prints one JSON line
per request: {"port", "at" (time.monotonic(), comparable across processes on Linux), "status",
"story_id", "webhook_id"}. Running apart from the dispatcher keeps the receivers' CPU out of the
latency being measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time


async def serve(status: int | None, records: list, ports: list) -> asyncio.AbstractServer:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        port = writer.get_extra_info("sockname")[1]
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                at = time.monotonic()
                headers = dict(line.split(": ", 1) for line in head.decode("latin-1").split("\r\n")[1:] if ": " in line)
                headers = {k.lower(): v for k, v in headers.items()}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                story = json.loads(body).get("story_id")
                records.append({"port": port, "at": at, "status": status, "story_id": story,
                                "webhook_id": headers.get("webhook-id")})
                if status is None:
                    await asyncio.Event().wait()  # hang: never answer
                writer.write(f"HTTP/1.1 {status} X\r\ncontent-length: 0\r\n\r\n".encode())
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass  # the client went away, or the farm is shutting down
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    ports.append(server.sockets[0].getsockname()[1])
    return server


async def main(healthy: int, hanging: bool, failing: bool) -> None:
    records: list = []
    ports: dict = {"healthy": []}
    servers = [await serve(200, records, ports["healthy"]) for _ in range(healthy)]
    for name, flag, status in (("hanging", hanging, None), ("failing", failing, 500)):
        if flag:
            found: list = []
            servers.append(await serve(status, records, found))
            ports[name] = found[0]
    print(json.dumps(ports), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the test closes stdin
    for record in records:
        print(json.dumps(record))
    sys.stdout.flush()
    for server in servers:
        server.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("healthy", type=int)
    parser.add_argument("--hanging", action="store_true")
    parser.add_argument("--failing", action="store_true")
    args = parser.parse_args()
    asyncio.run(main(args.healthy, args.hanging, args.failing))
