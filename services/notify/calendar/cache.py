"""What a notify web process keeps of the calendar feeds it built: whole feeds by ETag, entries by content."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any


class Lru:
    """A small thread-safe LRU map."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: Hashable, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


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
