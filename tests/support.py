"""Helpers shared by the integration tests (importable as ``support``)."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from ncmcp.cli import build_host
from ncmcp.config import load_settings
from ncmcp.host import Host
from ncmcp.http_app import create_app
from ncmcp.plugin.manager import load_plugins
from ncmcp.testing.http import serve_in_thread
from ncmcp.testing.idp import TEST_CLIENT_ID, TEST_CLIENT_SECRET, TestIdP
from ncmcp.testing.sandbox import SandboxProcess

_names = itertools.count(1)


def unique_user(prefix: str = "user") -> str:
    return f"{prefix}{os.getpid()}n{next(_names)}"


@dataclass
class OAuthServer:
    url: str
    host: Host
    app: Any
    idp: TestIdP

    @property
    def resource(self) -> str:
        return f"{self.url}/mcp"

    def token(self, user: str, scopes: str, *, opaque: bool = False) -> str:
        return self.idp.token(user, scopes, resource=self.resource, opaque=opaque)

    def post(self, token: str | None, message: dict[str, Any], headers: dict[str, str] | None = None) -> httpx.Response:
        h = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json",
             "MCP-Protocol-Version": "2025-11-25", **(headers or {})}
        if token is not None:
            h["Authorization"] = f"Bearer {token}"
        return httpx.post(f"{self.url}/mcp", json=message, headers=h, timeout=30)


@contextmanager
def oauth_server_for(idp: TestIdP, sandbox: SandboxProcess, *, registry: Any = None, **overrides: Any) -> Iterator[OAuthServer]:
    holder: dict[str, Any] = {}

    def factory(url: str) -> Any:
        settings = load_settings(
            {}, oauth=True, nextcloud_host=sandbox.url, server_url=url, issuer_url=idp.issuer,
            oidc_client_id=TEST_CLIENT_ID, oidc_client_secret=TEST_CLIENT_SECRET, **overrides,
        )
        host = build_host(settings, registry if registry is not None else load_plugins())
        holder["host"] = host
        holder["app"] = create_app(host)
        return holder["app"]

    with serve_in_thread(factory) as url:
        yield OAuthServer(url=url, host=holder["host"], app=holder["app"], idp=idp)


