"""The command line: serve (stdio and HTTP), plugins, check, and configuration errors."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from mcp import Client, StdioServerParameters

pytestmark = pytest.mark.anyio


def ncmcp(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NEXTCLOUD_")}
    return subprocess.run([sys.executable, "-m", "ncmcp.cli", *args], capture_output=True, text=True, timeout=60,
                          env={**clean, **(env or {})})


def test_invalid_configuration_fails_with_one_line_per_problem() -> None:
    result = ncmcp("serve", env={"NEXTCLOUD_HOST": "ftp://x", "NEXTCLOUD_MCP_JWT_ALGORITHMS": "HS256,none",
                                 "NEXTCLOUD_MCP_CORS_ORIGINS": "*"})
    assert result.returncode == 2
    assert "NEXTCLOUD_HOST: must be an http(s) URL" in result.stderr
    assert "NEXTCLOUD_MCP_JWT_ALGORITHMS: only asymmetric algorithms are allowed" in result.stderr
    assert "NEXTCLOUD_MCP_CORS_ORIGINS: '*' is not allowed" in result.stderr


def test_basic_mode_needs_credentials() -> None:
    result = ncmcp("serve")
    assert result.returncode == 2 and "NEXTCLOUD_USERNAME and NEXTCLOUD_PASSWORD" in result.stderr


def test_allow_list_with_a_missing_plugin_aborts() -> None:
    result = ncmcp("serve", env={"NEXTCLOUD_USERNAME": "u", "NEXTCLOUD_PASSWORD": "p", "NEXTCLOUD_MCP_PLUGINS": "notes,nosuchplugin"})
    assert result.returncode == 3 and "nosuchplugin: not installed" in result.stderr


def test_plugins_command_lists_tools_and_scopes() -> None:
    out = ncmcp("plugins").stdout
    assert "notes  ncmcp-notes" in out and "nc_notes_update_note" in out and "nc:write or notes.write" in out


def test_check_reports_each_step(sandbox, sandbox_user) -> None:
    user, password = sandbox_user
    result = ncmcp("check", env={"NEXTCLOUD_HOST": sandbox.url, "NEXTCLOUD_USERNAME": user, "NEXTCLOUD_PASSWORD": password})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[ok] Nextcloud status" in result.stdout and f"[ok] credentials: Nextcloud user id {user}" in result.stdout
    assert "[ok] plugin notes" in result.stdout
    bad = ncmcp("check", env={"NEXTCLOUD_HOST": sandbox.url, "NEXTCLOUD_USERNAME": user, "NEXTCLOUD_PASSWORD": "wrong"})
    assert bad.returncode == 1 and "[FAIL] credentials" in bad.stdout


async def test_stdio_transport_in_basic_mode(sandbox, sandbox_user) -> None:
    user, password = sandbox_user
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NEXTCLOUD_")}
    params = StdioServerParameters(command=sys.executable, args=["-m", "ncmcp.cli", "serve", "--transport", "stdio"],
                                   env={**clean, "NEXTCLOUD_HOST": sandbox.url, "NEXTCLOUD_USERNAME": user,
                                        "NEXTCLOUD_PASSWORD": password})
    async with Client(params) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert "nc_notes_create_note" in names
        note = (await client.call_tool("nc_notes_create_note", {"title": "via stdio"})).structured_content
        assert note["title"] == "via stdio"


def test_host_alone_logs_that_no_plugin_is_installed() -> None:
    code = ("from ncmcp.logs import configure_logging; configure_logging('json','info');"
            "from ncmcp.plugin.manager import load_plugins; r = load_plugins(discover=False); print(len(r.tools))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "0"
    assert '"event": "no_plugins_installed"' in result.stderr


def test_sandbox_command_serves_demo_data() -> None:
    import socket
    import time

    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "ncmcp.cli", "sandbox", "--port", str(port), "--demo-data"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/status.php").json()
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                time.sleep(0.1)
        assert status["installed"] is True
        notes = httpx.get(f"http://127.0.0.1:{port}/index.php/apps/notes/api/v1/notes", auth=("demo", "demo-app-password"),
                          headers={"OCS-APIRequest": "true"}).json()
        assert {n["title"] for n in notes} == {"Welcome", "Groceries", "Project plan"}
    finally:
        proc.terminate()
        proc.wait(10)
