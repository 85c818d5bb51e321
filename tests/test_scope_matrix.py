"""For every tool and each scope set: the listing is exactly right, and every refused call is answered
403 with a step-up challenge before any request reaches Nextcloud (security tested by calling)."""

from __future__ import annotations

import re

import httpx
import pytest
from ncmcp.auth.scopes import is_granted
from ncmcp.testing.http import connect
from support import OAuthServer, unique_user

pytestmark = pytest.mark.anyio


def scope_sets(server: OAuthServer) -> list[str]:
    plugins = sorted({t.plugin for t in server.host.tools.values()})
    other = next((p for p in plugins if p != "notes"), None)
    sets = ["openid", "nc:read", "nc:write", "nc:read nc:write", "notes.read", "notes.write"]
    if other:
        sets.append(f"{other}.read {other}.write")
    return sets


def test_matrix_covers_every_installed_plugin(oauth_server: OAuthServer) -> None:
    plugins = {t.plugin for t in oauth_server.host.tools.values()}
    assert "notes" in plugins
    assert len(scope_sets(oauth_server)) >= 6


async def test_listing_is_exactly_the_granted_tools(oauth_server: OAuthServer) -> None:
    for scopes in scope_sets(oauth_server):
        held = set(scopes.split())
        expected = {n for n, t in oauth_server.host.tools.items() if is_granted(t.plugin, t.access, held)}
        async with connect(oauth_server.url, oauth_server.token(unique_user("matrix"), scopes)) as client:
            assert {t.name for t in (await client.list_tools()).tools} == expected, scopes


def test_every_refused_call_is_403_with_no_upstream_request(oauth_server: OAuthServer, oauth_sandbox) -> None:
    refused_total = 0
    for scopes in scope_sets(oauth_server):
        held = set(scopes.split())
        token = oauth_server.token(unique_user("matrix"), scopes)
        oauth_sandbox.reset_stats()
        for name, tool in sorted(oauth_server.host.tools.items()):
            if is_granted(tool.plugin, tool.access, held):
                continue
            refused_total += 1
            r = oauth_server.post(token, {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                          "params": {"name": name, "arguments": {}}})
            assert r.status_code == 403, (scopes, name, r.status_code)
            header = r.headers["www-authenticate"]
            params = dict(re.findall(r'(\w+)="([^"]*)"', header))
            assert params["error"] == "insufficient_scope"
            needed = params["scope"].split()
            assert f"nc:{tool.access.value}" in needed  # the default (coarse) style names nc:read / nc:write
            assert all(s in needed for s in held if s.startswith("nc:"))
            assert r.json()["error"]["code"] == -32003
        assert oauth_sandbox.stats()["total"] == 0, f"a refused call reached Nextcloud with {scopes}"
    assert refused_total > 0


def test_granted_calls_pass_the_gate(oauth_server: OAuthServer) -> None:
    token = oauth_server.token(unique_user("matrix"), "nc:read nc:write")
    for name in sorted(oauth_server.host.tools):
        # Arguments that fail validation: the call passes the gate and is answered by the tool layer.
        r = oauth_server.post(token, {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                      "params": {"name": name, "arguments": {"__not_an_argument__": True}}})
        assert r.status_code == 200, name
        assert r.json()["result"]["isError"] is True


def test_per_plugin_scope_style_names_plugin_scopes(idp, oauth_sandbox) -> None:
    from support import oauth_server_for

    with oauth_server_for(idp, oauth_sandbox, scope_style="plugin") as server:
        meta = httpx.get(f"{server.url}/.well-known/oauth-protected-resource/mcp").json()
        assert "notes.read" in meta["scopes_supported"] and "nc:read" not in meta["scopes_supported"]
        token = server.token(unique_user("style"), "notes.read")
        r = server.post(token, {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                "params": {"name": "nc_notes_create_note", "arguments": {"title": "x"}}})
        assert r.status_code == 403
        assert dict(re.findall(r'(\w+)="([^"]*)"', r.headers["www-authenticate"]))["scope"].split() == ["notes.read", "notes.write"]
        # the coarse scopes are still accepted
        ok = server.post(server.token(unique_user("style"), "nc:write"), {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                                                           "params": {"name": "nc_notes_create_note", "arguments": {"title": "x"}}})
        assert ok.status_code == 200 and ok.json()["result"].get("isError") is not True
