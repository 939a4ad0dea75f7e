"""One byte-bounded LRU, shared by the image cache and the store of edit outputs served by URL."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CacheInfo:
    """Cache statistics, for tests and debugging endpoints."""

    entries: int
    size_bytes: int
    limit_bytes: int
    hits: int
    misses: int


class BytesLRU:
    """LRU bounded by total value size; the lock makes it safe to share across a thread pool."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._items: OrderedDict[Hashable, bytes] = OrderedDict()
        self._size = 0
        self._hits = 0
        self._misses = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> bytes | None:
        with self._lock:
            value = self._items.get(key)
            if value is None:
                self._misses += 1
                return None
            self._items.move_to_end(key)
            self._hits += 1
            return value

    def put(self, key: Hashable, value: bytes) -> None:
        if len(value) > self._limit:
            return  # would evict everything else and still not fit
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._size -= len(old)
            self._items[key] = value
            self._size += len(value)
            while self._size > self._limit:
                _, evicted = self._items.popitem(last=False)
                self._size -= len(evicted)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._size = 0
            self._hits = 0
            self._misses = 0

    def info(self) -> CacheInfo:
        with self._lock:
            return CacheInfo(len(self._items), self._size, self._limit, self._hits, self._misses)
