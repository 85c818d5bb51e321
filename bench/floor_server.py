"""The floor: the least a Python MCP server can do for ``get_note``, to compare ncmcp against.

A bare low-level SDK ``Server`` with one tool that makes the same sandbox request as
``nc_notes_get_note`` (``GET /index.php/apps/notes/api/v1/notes/{id}`` with Basic auth and
``OCS-APIRequest: true``) through one shared ``httpx.AsyncClient``, served stateless with JSON
responses by ``StreamableHTTPSessionManager`` under uvicorn. No inbound auth, no validation, no
logging: whatever ncmcp does beyond this is its overhead.

    FLOOR_NEXTCLOUD=http://127.0.0.1:PORT FLOOR_USER=u FLOOR_PASSWORD=p python bench/floor_server.py --port 8001
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

import httpx
import mcp_types as types
import uvicorn
from mcp.server import Server, ServerRequestContext
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.routing import Route

# The same shape ncmcp's nc_notes_get_note declares, so the client does the same validation work.
NOTE_SCHEMA = {"type": "object", "required": ["id", "title", "etag"], "properties": {
    "id": {"type": "integer"}, "title": {"type": "string"}, "category": {"type": "string"},
    "favorite": {"type": "boolean"}, "modified": {"type": "integer"}, "etag": {"type": "string"},
    "readonly": {"type": "boolean"}, "content": {"type": "string"}}}
TOOL = types.Tool(name="get_note", description="Get one note.", output_schema=NOTE_SCHEMA, input_schema={
    "type": "object", "properties": {"note_id": {"type": "integer"}}, "required": ["note_id"]})


def build_app(nextcloud: str, user: str, password: str) -> Starlette:
    http = httpx.AsyncClient(base_url=nextcloud, auth=(user, password), headers={"OCS-APIRequest": "true"},
                             limits=httpx.Limits(max_connections=100, max_keepalive_connections=100))

    async def list_tools(ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[TOOL])

    async def call_tool(ctx: ServerRequestContext[Any], params: types.CallToolRequestParams) -> types.CallToolResult:
        note_id = int((params.arguments or {})["note_id"])
        response = await http.get(f"/index.php/apps/notes/api/v1/notes/{note_id}")
        response.raise_for_status()
        note = response.json()
        return types.CallToolResult(content=[types.TextContent(type="text", text=json.dumps(note))],
                                    structured_content=note)

    server: Server[Any] = Server("floor", on_list_tools=list_tools, on_call_tool=call_tool)
    manager = StreamableHTTPSessionManager(app=server, stateless=True, json_response=True,
                                           security_settings=TransportSecuritySettings(enable_dns_rebinding_protection=False))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with manager.run():
            yield
        await http.aclose()

    return Starlette(routes=[Route("/mcp", StreamableHTTPASGIApp(manager), methods=["GET", "POST", "DELETE"])],
                     lifespan=lifespan)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    logging.getLogger("mcp").setLevel(logging.WARNING)  # one INFO line per stateless request otherwise
    app = build_app(os.environ["FLOOR_NEXTCLOUD"], os.environ["FLOOR_USER"], os.environ["FLOOR_PASSWORD"])
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False, lifespan="on")


if __name__ == "__main__":
    main()
