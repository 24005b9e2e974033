"""The one per-process cache type: cachetools' LRU map behind a lock, shared by a process's threads."""

from __future__ import annotations

import threading
from collections.abc import Hashable
from typing import Any

from cachetools import LRUCache


class Lru:
    """A thread-safe LRU map of at most ``size`` entries; ``get`` counts as a use."""

    def __init__(self, size: int) -> None:
        self._items: LRUCache[Hashable, Any] = LRUCache(maxsize=size)
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any:
        """The value under ``key``, or None."""
        with self._lock:
            return self._items.get(key)

    def put(self, key: Hashable, value: Any) -> None:
        """Keep ``value`` under ``key``, dropping the least recently used entry when full."""
        with self._lock:
            self._items[key] = value
