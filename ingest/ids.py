"""Stable article ids and the keys that make one entry published once across feeds.

Id rule (docs/contracts.md, in order): the entry's guid; else its canonical link; else a hash of title
and published time. A guid that is an http(s) URL is canonicalised like a link, so the same
story carried with a permalink guid in one feed and only a link in another gets one id. A guid
that is a bare token ("12345") is only unique inside its publisher, so it is scoped by the feed's
host; otherwise two unrelated feeds numbering their posts from 1 would swallow each other's news.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

MAX_ID_CHARS = 512
_URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S")
# Query parameters that only say where a click came from; they never change the article.
_TRACKING_PARAMS = re.compile(r"^(utm_[a-z_]+|fbclid|gclid|yclid|mc_cid|mc_eid|_ga|ref_src|at_medium|at_campaign)$",
                              re.IGNORECASE)


def canonical_link(link: str | None, base_url: str | None = None) -> str | None:
    """`link` resolved against `base_url`, with scheme/host lower-cased, default port, fragment and
    tracking parameters removed; None when it is not an http(s) URL."""
    if not link or not link.strip():
        return None
    link = link.strip()
    try:
        absolute = urljoin(base_url, link) if base_url else link
        parts = urlsplit(absolute)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    if port and not (scheme == "http" and port == 80 or scheme == "https" and port == 443):
        host = f"{host}:{port}"
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
                       if not _TRACKING_PARAMS.match(k)])
    return urlunsplit((scheme, host, parts.path or "/", query, ""))


def _hashed(*parts: str) -> str:
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()
    return f"sha256:{digest[:40]}"


def article_id(*, guid: str | None, link: str | None, title: str | None, published: datetime | None,
               feed_url: str) -> str:
    """The entry's stable id (the same entry polled twice, or restarted, gets the same id)."""
    guid = (guid or "").strip()
    if guid:
        if re.match(r"^https?://", guid, re.IGNORECASE):
            value = canonical_link(guid) or guid
        elif _URI_SCHEME.match(guid):  # tag:, urn:, ... are globally unique by construction
            value = guid
        else:
            host = (urlsplit(feed_url).hostname or feed_url).lower()
            value = f"guid:{host}:{guid}"
    else:
        value = canonical_link(link, feed_url) or ""
    if not value:
        stamp = published.isoformat() if published else ""
        return _hashed((title or "").strip(), stamp)
    if len(value) > MAX_ID_CHARS:
        return _hashed(value)
    return value


def dedupe_keys(article_id_: str, url: str | None, link_shared: bool) -> tuple[str, ...]:
    """Keys under which an article counts as already seen: its id, and its canonical link unless
    several entries of the same document share that link (a feed that points every item at its
    home page must not collapse all of them into one)."""
    keys = [article_id_]
    link = canonical_link(url)
    if link and not link_shared and link != article_id_:
        keys.append(f"link:{link}")
    return tuple(keys)
