"""A small in-process sliding-window limiter (per server process)."""

from __future__ import annotations

import time
from collections import deque


class SlidingWindow:
    """At most `limit` hits per key within `window` seconds; memory bounded by `max_keys`."""

    def __init__(self, *, limit: int, window: float, max_keys: int = 100_000) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._hits: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float]:
        hits = self._hits.get(key)
        if hits is None:
            return deque()
        while hits and now - hits[0] > self.window:
            hits.popleft()
        if not hits:
            del self._hits[key]
        return hits

    def blocked(self, key: str, now: float | None = None) -> bool:
        return len(self._recent(key, now or time.monotonic())) >= self.limit

    def hit(self, key: str, now: float | None = None) -> None:
        now = now or time.monotonic()
        hits = self._recent(key, now)
        if not hits:
            if len(self._hits) >= self.max_keys:
                self._hits.pop(next(iter(self._hits)))
            self._hits[key] = hits
        hits.append(now)
