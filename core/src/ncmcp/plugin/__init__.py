"""The plugin contract: markers, the entry-point group and the API version."""

import pluggy

PROJECT = "ncmcp"
ENTRY_POINT_GROUP = "ncmcp.plugins"
#: Bumped when the contract changes incompatibly; a plugin's manifest must name this value.
PLUGIN_API = 1

hookimpl = pluggy.HookimplMarker(PROJECT)
_hookspec = pluggy.HookspecMarker(PROJECT)

__all__ = ["ENTRY_POINT_GROUP", "PLUGIN_API", "PROJECT", "hookimpl"]
