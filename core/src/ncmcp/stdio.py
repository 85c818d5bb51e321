"""stdio transport for desktop clients (Basic mode: credentials come from the environment)."""

from __future__ import annotations

from mcp.server.stdio import stdio_server

from ncmcp.host import Host
from ncmcp.server import build_server


async def run_stdio(host: Host) -> None:
    server = build_server(host)
    await host.refresh_capabilities()
    try:
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())
    finally:
        await host.pool.aclose()
