"""Serving an ncmcp app over real HTTP inside the test process, and connecting the official client."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx2
import uvicorn
from mcp import Client
from mcp.client.streamable_http import streamable_http_client


@contextmanager
def serve_in_thread(app_factory: Callable[[str], Any]) -> Iterator[str]:
    """Run ``app_factory(url)`` with uvicorn on an ephemeral 127.0.0.1 port in a background thread.

    The factory receives the URL first because an OAuth resource must know its own URL (audience,
    metadata) before it serves. Yields the URL.
    """
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted connections only then; without it
    # every response waits for the peer's delayed ACK (~40 ms per request on loopback).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    app = app_factory(url)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@asynccontextmanager
async def connect(url: str, token: str | None = None, mode: str = "auto") -> AsyncIterator[Client]:
    """The official MCP client over streamable HTTP, with an optional bearer token."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx2.AsyncClient(headers=headers, timeout=60) as http:
        async with Client(streamable_http_client(f"{url}/mcp", http_client=http), mode=mode) as client:  # type: ignore[arg-type]
            yield client
