"""The host's call path on its own: scope checks without HTTP (stdio/in-process), CORS, capabilities."""

from __future__ import annotations

import httpx
import pytest
from mcp.shared.exceptions import MCPError

import ncmcp_notes.plugin as notes_plugin
from ncmcp.config import load_settings
from ncmcp.host import Host
from ncmcp.http_app import create_app
from ncmcp.nextcloud.client import NextcloudPool
from ncmcp.plugin.manager import load_plugins
from ncmcp.testing.http import serve_in_thread

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_in_process_calls_are_refused_without_scope(make_host, sandbox, mode: str) -> None:
    async with make_host(plugins=[notes_plugin], scopes={"notes.read"}, mode=mode) as host:
        assert "nc_notes_create_note" not in await host.list_tools()
        sandbox.reset_stats()
        with pytest.raises(MCPError) as info:
            await host.call("nc_notes_create_note", {"title": "x"})
        assert info.value.code == -32003 and "nc:write" in info.value.error.message
        with pytest.raises(MCPError) as info:
            await host.call("nc_notes_delete_note", {"note_id": 1})
        assert info.value.code == -32003
        assert sandbox.stats()["total"] == 0


async def test_no_scopes_means_no_tools_and_no_calls(make_host, sandbox) -> None:
    async with make_host(plugins=[notes_plugin], scopes=set()) as host:
        assert await host.list_tools() == []
        sandbox.reset_stats()
        for name in ("nc_notes_get_note", "nc_notes_update_note"):
            with pytest.raises(MCPError):
                await host.call(name, {"note_id": 1})
        assert sandbox.stats()["total"] == 0


async def test_unknown_tool_is_a_clear_error(make_host) -> None:
    async with make_host(plugins=[notes_plugin]) as host:
        result = await host.call("nc_notes_nope", {})
        assert result.is_error and "Unknown tool" in result.content[0].text


async def test_attachment_is_returned_as_an_embedded_blob(make_host, sandbox, sandbox_user) -> None:
    user, password = sandbox_user
    async with make_host(plugins=[notes_plugin]) as host:
        note = (await host.call("nc_notes_create_note", {"title": "Pic"})).structured_content
        up = httpx.post(f"{sandbox.url}/index.php/apps/notes/api/v1.4/attachment/{note['id']}", auth=(user, password),
                        headers={"OCS-APIRequest": "true"}, files={"file": ("a.png", b"\x89PNGdata", "image/png")})
        path = f".attachments.{note['id']}/{up.json()['filename']}"
        result = await host.call("nc_notes_get_attachment", {"note_id": note["id"], "path": path})
        assert result.structured_content["mime_type"] == "image/png" and result.structured_content["size"] == 8
        blob = result.content[-1].resource
        assert blob.mime_type == "image/png" and blob.blob
        traversal = await host.call("nc_notes_get_attachment", {"note_id": note["id"], "path": "../../etc/passwd"})
        assert traversal.is_error


def test_cors_allows_only_configured_origins(sandbox, sandbox_user) -> None:
    user, password = sandbox_user
    settings = load_settings({}, nextcloud_host=sandbox.url, username=user, password=password,
                             cors_origins="http://localhost:6274")
    host = Host(settings, load_plugins(discover=False, plugins=[notes_plugin]), NextcloudPool(sandbox.url))
    with serve_in_thread(lambda url: create_app(host)) as url:
        pre = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"}
        ok = httpx.options(f"{url}/mcp", headers={"Origin": "http://localhost:6274", **pre})
        assert ok.headers["access-control-allow-origin"] == "http://localhost:6274"
        assert "access-control-allow-credentials" not in ok.headers
        evil = httpx.options(f"{url}/mcp", headers={"Origin": "http://evil.example", **pre})
        assert evil.headers.get("access-control-allow-origin") not in ("*", "http://evil.example")


async def test_capabilities_are_refreshed_and_gate_the_plugin(sandbox, sandbox_user) -> None:
    user, password = sandbox_user
    settings = load_settings({}, nextcloud_host=sandbox.url, username=user, password=password, capabilities_refresh=0.01)
    host = Host(settings, load_plugins(discover=False, plugins=[notes_plugin]), NextcloudPool(sandbox.url))
    try:
        await host.refresh_capabilities()
        assert host.visible_tools(host.principal())
        sandbox.set_apps({"notes": {"api_version": ["1.3"], "version": "3.6.0"}})  # too old
        import anyio

        await anyio.sleep(0.02)
        await host.refresh_capabilities()
        assert host.visible_tools(host.principal()) == []
        assert "3.6.0" in (host.app_problem("notes") or "")
    finally:
        sandbox.set_apps({"notes": {"api_version": ["0.2", "1.3", "1.4"], "version": "4.11.0", "notes_path": "Notes"}})
        await host.pool.aclose()


async def test_a_task_group_of_tool_errors_is_reported_as_the_tool_error(make_host) -> None:
    import anyio

    from ncmcp import PLUGIN_API, Access, NotFound, PluginManifest, ToolSpec, hookimpl

    async def fan_out(ctx) -> dict:  # noqa: ANN001
        async def fail() -> None:
            raise NotFound("calendar 'x' does not exist")

        async with anyio.create_task_group() as tg:
            tg.start_soon(fail)
        return {}

    class Plugin:
        @hookimpl
        def ncmcp_plugin(self) -> PluginManifest:
            return PluginManifest(name="fan", plugin_api=PLUGIN_API)

        @hookimpl
        def ncmcp_tools(self) -> list[ToolSpec]:
            return [ToolSpec(name="nc_fan_out", description="d", input_schema={"type": "object"}, output_schema=None,
                             handler=fan_out, access=Access.READ)]

    async with make_host(plugins=[Plugin()]) as host:
        result = await host.call("nc_fan_out")
        assert result.is_error and "calendar 'x' does not exist" in result.content[0].text
        assert '"error": "not_found"' in result.content[0].text


def test_argument_patterns_use_json_schema_end_of_string() -> None:
    from ncmcp.host import ArgumentValidator

    validator = ArgumentValidator({"type": "object", "properties": {"x": {"type": "string", "pattern": r"^[!-~]+$"}}})
    assert validator.is_valid({"x": "abc"})
    assert not validator.is_valid({"x": "abc\n"})  # Python's $ would accept the final newline
    assert not validator.is_valid({"x": "a b"})


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_stateful_mode_with_sse(sandbox, sandbox_user, mode: str) -> None:
    from ncmcp.testing.http import connect

    user, password = sandbox_user
    settings = load_settings({}, nextcloud_host=sandbox.url, username=user, password=password, stateful=True)
    host = Host(settings, load_plugins(discover=False, plugins=[notes_plugin]), NextcloudPool(sandbox.url))
    with serve_in_thread(lambda url: create_app(host)) as url:
        async with connect(url, mode=mode) as client:
            note = (await client.call_tool("nc_notes_create_note", {"title": "stateful"})).structured_content
            assert (await client.call_tool("nc_notes_get_note", {"note_id": note["id"]})).structured_content["title"] == "stateful"
