"""A thread-safe LRU bounded by the total size of what it holds.

Everything cached by the API is keyed by a version id, and versions never
change, so entries are never stale: they only make room for newer ones.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any


class LRU:
    def __init__(self, capacity: int):
        self.capacity = capacity
        self._items: OrderedDict[Any, tuple[Any, int]] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: Any) -> Any:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return item[0]

    def put(self, key: Any, value: Any, size: int) -> None:
        if size > self.capacity // 8:  # one huge answer must not empty the cache
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._size -= old[1]
            self._items[key] = (value, size)
            self._size += size
            while self._size > self.capacity and self._items:
                _, (_, s) = self._items.popitem(last=False)
                self._size -= s
