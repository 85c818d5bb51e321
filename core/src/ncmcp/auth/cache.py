"""A bounded TTL cache with single-flight loading, keyed by SHA-256 of the token.

Concurrent requests carrying the same new token share one upstream verification; the raw token is
never a key (it would sit in memory dumps and in any debug output of the cache).
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import anyio

T = TypeVar("T")


def token_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class _Flight(Generic[T]):
    def __init__(self) -> None:
        self.done = anyio.Event()
        self.value: T | None = None
        self.error: BaseException | None = None


class TokenCache(Generic[T]):
    def __init__(self, *, max_size: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._items: OrderedDict[str, tuple[float, T]] = OrderedDict()
        self._flights: dict[str, _Flight[T]] = {}
        self._max = max_size
        self._clock = clock

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: str) -> T | None:
        item = self._items.get(key)
        if item is None:
            return None
        expires, value = item
        if expires <= self._clock():
            del self._items[key]
            return None
        self._items.move_to_end(key)
        return value

    def put(self, key: str, value: T, ttl: float) -> None:
        if ttl <= 0:
            return
        self._items[key] = (self._clock() + ttl, value)
        self._items.move_to_end(key)
        while len(self._items) > self._max:
            self._items.popitem(last=False)

    async def get_or_load(self, key: str, load: Callable[[], Awaitable[tuple[T, float]]]) -> T:
        """Return the cached value, or run ``load`` once for all concurrent callers of ``key``.

        ``load`` returns ``(value, ttl_seconds)``; errors are shared with the waiters, not cached.
        """
        cached = self.get(key)
        if cached is not None:
            return cached
        flight = self._flights.get(key)
        if flight is not None:
            await flight.done.wait()
            if flight.error is not None:
                raise flight.error
            assert flight.value is not None
            return flight.value
        flight = self._flights[key] = _Flight()
        try:
            value, ttl = await load()
            self.put(key, value, ttl)
            flight.value = value
            return value
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            del self._flights[key]
            flight.done.set()
