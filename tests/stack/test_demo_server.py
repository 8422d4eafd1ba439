"""The demo feed server: conditional GET semantics (table) and a real server on 127.0.0.1."""

from __future__ import annotations

import os
import time

import httpx
import pytest

from newswatch.stack.demo_server import (DemoFeedServer, content_type, entity_tag, http_date, is_not_modified,
                                         resolve_file)

MTIME = 1_764_000_000.0
TAG = '"abc"'


@pytest.mark.parametrize("if_none_match, if_modified_since, want", [
    (None, None, False),
    ('"abc"', None, True),
    ('W/"abc"', None, True),                  # weak comparison for GET
    ('"x", "abc"', None, True),
    ("*", None, True),
    ('"other"', None, False),
    ('"other"', http_date(MTIME), False),      # If-None-Match wins over If-Modified-Since
    (None, http_date(MTIME), True),
    (None, http_date(MTIME - 10), False),
    (None, "not a date", False),
])
def test_is_not_modified(if_none_match, if_modified_since, want):
    assert is_not_modified(TAG, MTIME, if_none_match, if_modified_since) is want


@pytest.mark.parametrize("path, found", [("/a.xml", True), ("/a.xml?x=1", True), ("/../secret", False),
                                         ("/sub/a.xml", False), ("/%2e%2e/secret", False), ("/", False),
                                         ("/.hidden", False), ("/missing.xml", False)])
def test_resolve_file_stays_in_the_folder(tmp_path, path, found):
    root = tmp_path / "feeds"
    root.mkdir()
    (root / "a.xml").write_text("<rss/>")
    (root / ".hidden").write_text("x")
    (tmp_path / "secret").write_text("x")
    assert (resolve_file(root, path) is not None) is found


@pytest.mark.parametrize("body, name, want", [
    (b'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom">', "a.xml", "application/atom+xml"),
    (b'<?xml version="1.0"?><rss version="2.0">', "a.xml", "application/rss+xml"),
    (b"{}", "expected.json", "application/json"),
])
def test_content_type(body, name, want):
    assert content_type(body, name).startswith(want)


def test_conditional_get_round_trip_and_live_edits(tmp_path):
    feed = tmp_path / "news.xml"
    feed.write_text('<rss version="2.0"><channel><title>t</title></channel></rss>', encoding="utf-8")
    served = []
    server = DemoFeedServer(tmp_path, port=0, on_served=served.append).start()
    try:
        with httpx.Client(base_url=server.base_url, trust_env=False) as client:
            first = client.get("/news.xml")
            assert first.status_code == 200 and first.headers["etag"] == entity_tag(feed.read_bytes())
            assert first.headers["content-type"].startswith("application/rss+xml")
            again = client.get("/news.xml", headers={"If-None-Match": first.headers["etag"],
                                                     "If-Modified-Since": first.headers["last-modified"]})
            assert again.status_code == 304 and again.content == b""
            feed.write_text('<rss version="2.0"><channel><title>t2</title></channel></rss>', encoding="utf-8")
            os.utime(feed, (time.time() + 5, time.time() + 5))
            changed = client.get("/news.xml", headers={"If-None-Match": first.headers["etag"]})
            assert changed.status_code == 200 and b"t2" in changed.content
            assert client.get("/nope.xml").status_code == 404
    finally:
        server.stop()
    assert [s.status for s in served] == [200, 304, 200, 404]
    assert served[2].etag != served[0].etag and served[0].path == "/news.xml"
