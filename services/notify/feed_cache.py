"""What a notify web process keeps of the calendar feeds it built: whole feeds by ETag, entries by content."""

from __future__ import annotations

from dataclasses import dataclass

from shared.cache import Lru


@dataclass(frozen=True)
class BuiltFeed:
    """A feed body, raw and gzip-compressed, and how long building it took."""

    body: bytes
    gzipped: bytes
    build_ms: float


class FeedCache:
    """Built feeds by (provider, ETag) and serialized entries by what they depend on, per process."""

    def __init__(self, feeds: int = 64, entries: int = 50_000) -> None:
        self.feeds = Lru(feeds)
        self.entries = Lru(entries)
        self.builds = 0  # how many feeds this process built (tests and the benchmark read it)
