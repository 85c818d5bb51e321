"""pytest fixtures of the test kit (opt in with ``pytest_plugins = ["ncmcp.testing"]``)."""

from __future__ import annotations

import base64
import itertools
import os
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import mcp_types as types
import pytest
from mcp import Client

from ncmcp.config import load_settings
from ncmcp.host import Host, Principal
from ncmcp.nextcloud.client import NextcloudPool
from ncmcp.plugin.manager import PluginRegistry, load_plugins
from ncmcp.server import build_server
from ncmcp.http_app import create_app
from ncmcp.testing.http import connect, serve_in_thread
from ncmcp.testing.sandbox import SandboxProcess

_users = itertools.count(1)


class _ScopedHost(Host):
    """A host whose caller holds a chosen set of scopes while Nextcloud sees a sandbox app password."""

    def __init__(self, *args: Any, scopes: Iterable[str] | None, basic: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._scopes = None if scopes is None else frozenset(scopes)
        self._basic_auth = basic

    def principal(self) -> Principal | None:
        return Principal(authorization=self._basic_auth, scopes=self._scopes, cache_key=self._basic_auth, subject="test")


class InProcessHost:
    """An MCP host in this process, driven by the official client: in memory (direct dispatch, or
    JSON-RPC with ``mode="legacy"``) or, from ``http_host``, over real HTTP (``url`` is then set)."""

    def __init__(self, host: Host, mode: str = "auto") -> None:
        self.host = host
        self.mode = mode
        self.client: Client | None = None
        self.url: str | None = None

    async def list_tools(self) -> list[str]:
        assert self.client is not None
        return sorted(t.name for t in (await self.client.list_tools()).tools)

    async def call(self, name: str, arguments: dict[str, Any] | None = None) -> types.CallToolResult:
        assert self.client is not None
        return await self.client.call_tool(name, arguments or {})


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def plugin_registry() -> Any:
    """``plugin_registry(*modules)`` → a freshly loaded registry (no entry-point discovery)."""

    def build(*plugins: object) -> PluginRegistry:
        return load_plugins(discover=False, plugins=plugins)

    return build


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxProcess]:
    """One Nextcloud-compatible sandbox per test session (set ``NCMCP_SANDBOX_URL`` to reuse one)."""
    with SandboxProcess() as process:
        yield process


@pytest.fixture
def sandbox_user(sandbox: SandboxProcess) -> tuple[str, str]:
    """A fresh sandbox user for this test: ``(user_id, app_password)``."""
    user = f"u{os.getpid()}x{next(_users)}"
    return user, sandbox.add_user(user)


@pytest.fixture
def make_host(sandbox: SandboxProcess, sandbox_user: tuple[str, str]) -> Any:
    """``async with make_host(plugins=[mod], scopes={"notes.read"}) as host:`` → :class:`InProcessHost`.

    ``scopes=None`` is Basic mode (every tool). Calls reach the session's sandbox as this test's user.
    """

    @asynccontextmanager
    async def build(plugins: Iterable[object] = (), scopes: Iterable[str] | None = None, mode: str = "auto",
                    registry: PluginRegistry | None = None) -> AsyncIterator[InProcessHost]:
        user, password = sandbox_user
        settings = load_settings({}, nextcloud_host=sandbox.url, username=user, password=password)
        registry = registry or load_plugins(discover=False, plugins=list(plugins))
        basic = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        host = _ScopedHost(settings, registry, NextcloudPool(sandbox.url), scopes=scopes, basic=basic)
        wrapper = InProcessHost(host, mode)
        try:
            async with Client(build_server(host), mode=mode) as client:  # type: ignore[arg-type]
                wrapper.client = client
                yield wrapper
        finally:
            await host.pool.aclose()

    return build


@pytest.fixture
def http_host(sandbox: SandboxProcess, sandbox_user: tuple[str, str]) -> Any:
    """Like ``make_host`` but over real HTTP: uvicorn on an ephemeral port, the official client over
    streamable HTTP. Basic mode (every tool), as this test's sandbox user.

    ``async with http_host(plugins=[mod]) as host:`` → :class:`InProcessHost` with ``url`` set.
    """

    @asynccontextmanager
    async def build(plugins: Iterable[object] = (), mode: str = "auto", sandbox_process: SandboxProcess | None = None,
                    user: tuple[str, str] | None = None) -> AsyncIterator[InProcessHost]:
        target = sandbox_process or sandbox
        user_id, password = user or (sandbox_user if target is sandbox else (f"h{next(_users)}", ""))
        if target is not sandbox and not password:
            password = target.add_user(user_id)
        settings = load_settings({}, nextcloud_host=target.url, username=user_id, password=password)
        registry = load_plugins(discover=False, plugins=list(plugins))
        host = Host(settings, registry, NextcloudPool(target.url))
        wrapper = InProcessHost(host, mode)
        with serve_in_thread(lambda _url: create_app(host)) as url:
            wrapper.url = url
            async with connect(url, mode=mode) as client:
                wrapper.client = client
                yield wrapper

    return build
