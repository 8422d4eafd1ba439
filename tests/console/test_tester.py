"""The rule tester reads a pasted URL as ingest reads article pages: through the address guard."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from fastapi.testclient import TestClient

from console.app import create_app
from console.cli import build_context
from tests.console.test_security import write_config

PAGE = ("<!doctype html><html><head><title>Poland gets Patriot batteries</title></head><body><article>"
        "<h1>Poland gets Patriot batteries</h1>"
        + "<p>Poland took delivery of two more Patriot batteries on Monday under its air defence deal with the "
          "United States, the defence ministry in Warsaw said, adding that crews had finished training.</p>" * 4
        + "</article></body></html>").encode()


class Pages(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("content-type", "text/html; charset=utf-8")
                self.send_header("content-length", str(len(PAGE)))
                self.end_headers()
                self.wfile.write(PAGE)

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()


def test_a_url_is_read_through_ingests_guarded_fetch(tmp_path):
    server = Pages()
    url = f"http://127.0.0.1:{server.server_address[1]}/news/patriot"
    try:
        config = write_config(tmp_path)
        _, ctx = build_context(config, environ={}, with_feeder=False)
        client = TestClient(create_app(ctx))
        csrf = client.get("/test").cookies.get("nw_csrf")
        refused = client.post("/test", data={"url": url, "csrf_token": csrf})
        assert "address_refused" in refused.text  # loopback is off limits, as for ingest
        assert client.post("/api/test", json={"url": url}, headers={"x-csrf-token": csrf}).status_code == 422
        config.write_text(config.read_text(encoding="utf-8") + "ingest:\n  allow_private_networks: true\n",
                          encoding="utf-8")
        _, ctx = build_context(config, environ={}, with_feeder=False)
        client = TestClient(create_app(ctx))
        csrf = client.get("/test").cookies.get("nw_csrf")
        answer = client.post("/api/test", json={"url": url}, headers={"x-csrf-token": csrf}).json()
        assert {t["topic"] for t in answer["topics"]} == {"air_defense_system", "arms_deal"}
        assert answer["title"] == "Poland gets Patriot batteries"
    finally:
        server.shutdown()
        server.server_close()
