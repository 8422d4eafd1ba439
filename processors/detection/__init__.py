"""Topic detection: YAML watchlists compiled into one automaton, and a pure `detect()` over articles.

    wl = load_watchlists(Path("seeds/watchlists"))   # ConfigError with file:line on bad packs
    hits = detect(article, wl)                         # tuple[TopicHit, ...], sorted by topic id
"""

from processors.detection.engine import detect
from processors.detection.watchlist import Topic, Watchlist, load_watchlists, problems

__all__ = ["Topic", "Watchlist", "detect", "load_watchlists", "problems"]
