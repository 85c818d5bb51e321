"""The third-party path: a separately installed distribution found through its entry point."""

from __future__ import annotations

import subprocess
import sys

import pytest
from ncmcp.plugin.manager import load_plugins
from ncmcp.testing import assert_plugin_contract
from ncmcp.testing.http import connect
from support import OAuthServer, unique_user

pytestmark = pytest.mark.anyio


def test_discovered_through_its_entry_point() -> None:
    registry = load_plugins()
    record = registry.records["hello"]
    assert record.status == "loaded" and record.distribution == "ncmcp-hello" and record.version == "1.0.0"
    assert "nc_hello_whoami" in registry.tools


def test_contract() -> None:
    import ncmcp_hello.plugin

    assert_plugin_contract(ncmcp_hello.plugin)


def test_listed_by_the_cli() -> None:
    out = subprocess.run([sys.executable, "-m", "ncmcp.cli", "plugins"], capture_output=True, text=True, check=True).stdout
    assert "hello  ncmcp-hello 1.0.0  [loaded]" in out
    assert "nc_hello_whoami" in out and "nc:read or hello.read" in out


async def test_called_over_http_with_its_own_scope(oauth_server: OAuthServer) -> None:
    user = unique_user("third")
    async with connect(oauth_server.url, oauth_server.token(user, "hello.read")) as client:
        assert [t.name for t in (await client.list_tools()).tools] == ["nc_hello_whoami"]
        result = await client.call_tool("nc_hello_whoami", {"greeting": "Hi"})
        assert result.structured_content == {"user_id": user, "message": f"Hi, {user.capitalize()}!"}
    r = oauth_server.post(oauth_server.token(user, "notes.read"), {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                                                    "params": {"name": "nc_hello_whoami", "arguments": {}}})
    assert r.status_code == 403
