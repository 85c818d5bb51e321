"""One writer at a time per path, within this server process.

The server's precondition (``If-Match``, ``If-None-Match``, ``Overwrite: F``) is what protects a
file, but a WebDAV server checks it when a request arrives and writes when the body is in: two
writes of the same version that overlap can both pass the check. Sabre (Nextcloud) has that window
too. Queuing this process's own writes to a path closes it for every caller of this server: the
second writer reaches the server after the first has landed, and its stale ETag is refused.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from ncmcp import ToolContext

_locks: dict[tuple[str, str, str], tuple[anyio.Lock, int]] = {}


@asynccontextmanager
async def one_writer(ctx: ToolContext, *rels: str) -> AsyncIterator[None]:
    """Hold the write locks of ``rels`` (taken in a fixed order, so two moves cannot deadlock)."""
    keys = sorted({(ctx.http.base_url, ctx.user_id, rel) for rel in rels})
    registered: list[tuple[str, str, str]] = []
    acquired: list[anyio.Lock] = []
    try:
        for key in keys:
            lock, users = _locks.get(key) or (anyio.Lock(), 0)
            _locks[key] = (lock, users + 1)
            registered.append(key)
            await lock.acquire()
            acquired.append(lock)
        yield
    finally:
        for lock in reversed(acquired):
            lock.release()
        for key in registered:  # forget locks nobody waits for, so the table stays small
            lock, users = _locks[key]
            if users <= 1:
                del _locks[key]
            else:
                _locks[key] = (lock, users - 1)
