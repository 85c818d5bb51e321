"""The MCP server: the SDK's low-level ``Server`` with handlers that delegate to the :class:`Host`.

The low-level server is used because plugins declare tools as data (JSON Schema), and it is the
fastest path through the SDK; input validation and scope checks happen in the host.
"""

from __future__ import annotations

from typing import Any

import mcp_types as types
from mcp.server import Server, ServerRequestContext

from ncmcp import __version__
from ncmcp.host import Host

INSTRUCTIONS = (
    "Tools for the user's Nextcloud. Objects carry an etag: pass it back when updating so that a "
    "concurrent change is reported as a conflict instead of being overwritten."
)


def _tool(loaded: Any) -> types.Tool:
    spec = loaded.spec
    hints = spec.effective_hints
    return types.Tool(
        name=spec.name,
        title=spec.title,
        description=spec.description,
        input_schema=dict(spec.input_schema),
        output_schema=dict(spec.output_schema) if spec.output_schema is not None else None,
        annotations=types.ToolAnnotations(
            title=spec.title,
            read_only_hint=hints.read_only,
            destructive_hint=hints.destructive,
            idempotent_hint=hints.idempotent,
            open_world_hint=hints.open_world,
        ),
    )


def build_server(host: Host) -> Server[Any]:
    tools = {name: _tool(t) for name, t in host.tools.items()}

    async def list_tools(ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        await host.refresh_capabilities()
        return types.ListToolsResult(tools=[tools[t.name] for t in host.visible_tools(host.principal())])

    async def call_tool(ctx: ServerRequestContext[Any], params: types.CallToolRequestParams) -> types.CallToolResult:
        return await host.call_tool(params.name, params.arguments, progress=ctx.session.report_progress)

    async def list_resources(ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None) -> types.ListResourcesResult:
        return types.ListResourcesResult(resources=[])

    async def list_templates(ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None) -> types.ListResourceTemplatesResult:
        await host.refresh_capabilities()
        return types.ListResourceTemplatesResult(resource_templates=[
            types.ResourceTemplate(uri_template=r.spec.uri_template, name=r.spec.name,
                                   description=r.spec.description, mime_type=r.spec.mime_type)
            for r in host.visible_resources(host.principal())
        ])

    async def read_resource(ctx: ServerRequestContext[Any], params: types.ReadResourceRequestParams) -> types.ReadResourceResult:
        return await host.read_resource(str(params.uri))

    return Server(
        "ncmcp",
        version=__version__,
        instructions=INSTRUCTIONS,
        get_tool_input_schema=lambda name: tools[name].input_schema if name in tools else None,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_resources=list_resources,
        on_list_resource_templates=list_templates,
        on_read_resource=read_resource,
    )
