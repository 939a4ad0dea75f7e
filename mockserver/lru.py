"""The one LRU implementation, bounded by the total size of its values.

The renderer keeps encoded images and their shared pieces in it, and the store of edit outputs
served by URL is one too.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class CacheInfo:
    """Cache statistics, for tests and debugging endpoints."""

    entries: int
    size_bytes: int
    limit_bytes: int
    hits: int
    misses: int


class SizedLRU(Generic[V]):
    """LRU bounded by the total of the sizes its values are put with; the lock makes it safe to
    share across a thread pool."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._items: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()
        self._size = 0
        self._hits = 0
        self._misses = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                self._misses += 1
                return None
            self._items.move_to_end(key)
            self._hits += 1
            return item[0]

    def put_sized(self, key: Hashable, value: V, size: int) -> None:
        if size > self._limit:
            return  # would evict everything else and still not fit
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._size -= old[1]
            self._items[key] = (value, size)
            self._size += size
            while self._size > self._limit:
                _, (_, evicted) = self._items.popitem(last=False)
                self._size -= evicted

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._size = 0
            self._hits = 0
            self._misses = 0

    def info(self) -> CacheInfo:
        with self._lock:
            return CacheInfo(len(self._items), self._size, self._limit, self._hits, self._misses)


class BytesLRU(SizedLRU[bytes]):
    """The common case: the value's size is its length."""

    def put(self, key: Hashable, value: bytes) -> None:
        self.put_sized(key, value, len(value))
