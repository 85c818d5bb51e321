"""A minimal plugin: one read tool that greets the caller by their Nextcloud display name."""

from typing import Any

from ncmcp import PLUGIN_API, Access, PluginManifest, ToolContext, ToolSpec, hookimpl


async def whoami(ctx: ToolContext, greeting: str = "Hello") -> dict[str, Any]:
    response = await ctx.http.request("GET", "/ocs/v2.php/cloud/user", params={"format": "json"},
                                      headers={"Accept": "application/json"})
    user = response.json()["ocs"]["data"]
    return {"user_id": ctx.user_id, "message": f"{greeting}, {user['display-name']}!"}


@hookimpl
def ncmcp_plugin() -> PluginManifest:
    return PluginManifest(name="hello", plugin_api=PLUGIN_API, description="Greets the caller")


@hookimpl
def ncmcp_tools() -> list[ToolSpec]:
    return [
        ToolSpec(
            name="nc_hello_whoami",
            title="Who am I",
            description="Greet the calling Nextcloud user by display name.",
            access=Access.READ,
            handler=whoami,
            input_schema={"type": "object", "properties": {"greeting": {"type": "string", "maxLength": 50}},
                          "additionalProperties": False},
            output_schema={"type": "object", "properties": {"user_id": {"type": "string"}, "message": {"type": "string"}},
                           "required": ["user_id", "message"]},
        )
    ]
