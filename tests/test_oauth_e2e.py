"""OAuth 2.0 protected resource, end to end: the real IdP, ncmcp over real HTTP, the official MCP
client, the sandbox as Nextcloud. Covers the reference deployment's consent scenarios, metadata and
challenges."""

from __future__ import annotations

import re

import httpx
import pytest
from mcp.shared.exceptions import MCPError
from ncmcp.plugin.types import Access
from ncmcp.testing.http import connect
from support import OAuthServer, unique_user

pytestmark = pytest.mark.anyio


def challenge_params(header: str) -> dict[str, str]:
    assert header.startswith("Bearer ")
    return dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', header))


def tools_by_access(server: OAuthServer, access: Access) -> set[str]:
    return {name for name, t in server.host.tools.items() if t.access is access}


def test_protected_resource_metadata_at_root_and_path(oauth_server: OAuthServer) -> None:
    root = httpx.get(f"{oauth_server.url}/.well-known/oauth-protected-resource").json()
    suffixed = httpx.get(f"{oauth_server.url}/.well-known/oauth-protected-resource/mcp").json()
    assert root["resource"] == oauth_server.url
    assert suffixed["resource"] == oauth_server.resource
    for doc in (root, suffixed):
        assert doc["authorization_servers"] == [oauth_server.idp.issuer]
        assert doc["scopes_supported"] == ["nc:read", "nc:write"]
        assert "offline_access" not in doc["scopes_supported"]
        assert doc["bearer_methods_supported"] == ["header"]
        assert "RS256" in doc["resource_signing_alg_values_supported"]


def test_401_without_token_names_metadata_and_scopes(oauth_server: OAuthServer) -> None:
    r = oauth_server.post(None, {"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert r.status_code == 401
    params = challenge_params(r.headers["www-authenticate"])
    assert "error" not in params  # RFC 6750 §3: no error code when no credentials were sent
    assert params["scope"] == "nc:read nc:write"
    metadata = httpx.get(params["resource_metadata"])
    assert metadata.status_code == 200 and metadata.json()["resource"] == oauth_server.resource


def test_401_for_garbage_token_says_invalid_token(oauth_server: OAuthServer) -> None:
    r = oauth_server.post("not-a-token", {"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert r.status_code == 401
    params = challenge_params(r.headers["www-authenticate"])
    assert params["error"] == "invalid_token" and params["resource_metadata"].endswith("/.well-known/oauth-protected-resource/mcp")


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_consent_scenarios(oauth_server: OAuthServer, mode: str) -> None:
    """The reference's four scenarios: no custom scope → 0 tools; read → read tools; write → write tools; both → all."""
    read, write = tools_by_access(oauth_server, Access.READ), tools_by_access(oauth_server, Access.WRITE)
    assert read and write
    user = unique_user("consent")
    for scopes, expected in [("openid profile email", set()), ("nc:read", read), ("nc:write", write),
                             ("nc:read nc:write", read | write)]:
        async with connect(oauth_server.url, oauth_server.token(user, scopes), mode=mode) as client:
            listed = {t.name for t in (await client.list_tools()).tools}
            assert listed == expected, scopes


async def test_granted_call_reaches_nextcloud_as_the_token_user(oauth_server: OAuthServer, oauth_sandbox) -> None:
    alice, bob = unique_user("alice"), unique_user("bob")
    async with connect(oauth_server.url, oauth_server.token(alice, "nc:read nc:write")) as client:
        note = (await client.call_tool("nc_notes_create_note", {"title": "Mine", "content": "alice's"})).structured_content
        got = (await client.call_tool("nc_notes_get_note", {"note_id": note["id"]})).structured_content
        assert got["content"] == "alice's"
    async with connect(oauth_server.url, oauth_server.token(bob, "nc:read nc:write")) as client:
        other = await client.call_tool("nc_notes_get_note", {"note_id": note["id"]})
        assert other.is_error  # bob cannot read alice's note
        assert (await client.call_tool("nc_notes_list_notes", {})).structured_content["notes"] == []


async def test_opaque_token_is_verified_by_introspection(oauth_server: OAuthServer) -> None:
    user = unique_user("opaque")
    token = oauth_server.token(user, "notes.read", opaque=True)
    assert token.count(".") != 2
    async with connect(oauth_server.url, token) as client:
        listed = {t.name for t in (await client.list_tools()).tools}
        assert listed == {n for n, t in oauth_server.host.tools.items() if t.plugin == "notes" and t.access is Access.READ}
        assert not (await client.call_tool("nc_notes_list_notes", {})).is_error


async def test_step_up_403_names_needed_and_held_scopes(oauth_server: OAuthServer, oauth_sandbox) -> None:
    token = oauth_server.token(unique_user("stepup"), "nc:read")
    oauth_sandbox.reset_stats()
    r = oauth_server.post(token, {"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                                  "params": {"name": "nc_notes_create_note", "arguments": {"title": "x"}}})
    assert r.status_code == 403
    params = challenge_params(r.headers["www-authenticate"])
    assert params["error"] == "insufficient_scope"
    assert params["scope"].split() == ["nc:read", "nc:write"]  # held scope kept, so a re-authorization does not lose it
    assert httpx.get(params["resource_metadata"]).json()["resource"] == oauth_server.resource
    body = r.json()
    assert body["id"] == 7 and body["error"]["code"] == -32003
    assert oauth_sandbox.stats()["total"] == 0


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_official_client_surfaces_the_403_as_mcp_error(oauth_server: OAuthServer, mode: str) -> None:
    async with connect(oauth_server.url, oauth_server.token(unique_user("sdk"), "nc:read"), mode=mode) as client:
        with pytest.raises(MCPError) as info:
            await client.call_tool("nc_notes_delete_note", {"note_id": 1})
        assert info.value.code == -32003
        assert not (await client.call_tool("nc_notes_list_notes", {})).is_error  # the session stays usable


def test_resources_read_needs_scope_too(oauth_server: OAuthServer, oauth_sandbox) -> None:
    token = oauth_server.token(unique_user("res"), "nc:write")
    oauth_sandbox.reset_stats()
    r = oauth_server.post(token, {"jsonrpc": "2.0", "id": 3, "method": "resources/read", "params": {"uri": "nc://notes/1"}})
    assert r.status_code == 403
    assert challenge_params(r.headers["www-authenticate"])["scope"].split() == ["nc:write", "nc:read"]
    assert oauth_sandbox.stats()["total"] == 0


async def test_resource_templates_are_filtered(oauth_server: OAuthServer) -> None:
    async with connect(oauth_server.url, oauth_server.token(unique_user("tpl"), "nc:write")) as client:
        assert (await client.list_resource_templates()).resource_templates == []
    async with connect(oauth_server.url, oauth_server.token(unique_user("tpl"), "notes.read")) as client:
        assert "nc://notes/{note_id}" in {t.uri_template for t in (await client.list_resource_templates()).resource_templates}


def test_healthz_and_readyz(oauth_server: OAuthServer) -> None:
    assert httpx.get(f"{oauth_server.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{oauth_server.url}/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"nextcloud": "ok", "identity_provider": "ok"}
