"""The hooks a plugin implements. All are synchronous, side-effect free and called once at start-up.

Each returns plain value objects (:mod:`ncmcp.plugin.types`) that the host validates. Plugins never
receive the MCP server object, so nothing a plugin declares can bypass the host's token, scope and
capability checks.
"""

from __future__ import annotations

from collections.abc import Iterable

from ncmcp.plugin import _hookspec
from ncmcp.plugin.types import PluginManifest, ResourceSpec, ToolSpec


class NcmcpSpecs:
    """Hook specifications for ncmcp plugins."""

    @_hookspec
    def ncmcp_plugin(self) -> PluginManifest:
        """Describe the plugin. Every plugin implements it exactly once.

        :returns: the plugin's :class:`~ncmcp.plugin.types.PluginManifest`. Its ``name`` must equal
            the entry-point name in the ``ncmcp.plugins`` group, and ``plugin_api`` must equal
            :data:`ncmcp.PLUGIN_API`, or the plugin is rejected at start-up.

        Called once per plugin at start-up (not ``firstresult``; the host calls each plugin's
        implementation on its own, so the results are attributed to the right plugin).

        **Example:**

        .. code-block:: python

            @hookimpl
            def ncmcp_plugin():
                return PluginManifest(name="notes", plugin_api=PLUGIN_API,
                                      requires=AppRequirement(app_id="notes", min_version="1.2"))
        """

    @_hookspec
    def ncmcp_tools(self) -> Iterable[ToolSpec]:
        """Declare the plugin's MCP tools.

        :returns: an iterable of :class:`~ncmcp.plugin.types.ToolSpec`. Each name must start with
            ``nc_<plugin>_`` and be unique across all plugins; schemas must be valid JSON Schema
            (draft 2020-12) objects; handlers must be ``async def``. The host derives each tool's
            scopes from its ``access``: ``nc:read`` or ``<plugin>.read`` for read tools, ``nc:write``
            or ``<plugin>.write`` for write tools. Handlers never check scopes themselves.

        Called once per plugin at start-up.

        **Example:**

        .. code-block:: python

            @hookimpl
            def ncmcp_tools():
                return [ToolSpec(name="nc_notes_get_note", description="Get one note by id.",
                                 input_schema={"type": "object", "properties": {"note_id": {"type": "integer"}},
                                               "required": ["note_id"]},
                                 output_schema=NOTE_SCHEMA, handler=get_note, access=Access.READ)]
        """

    @_hookspec
    def ncmcp_resources(self) -> Iterable[ResourceSpec]:
        """Declare MCP resource templates for the app's addressable objects.

        :returns: an iterable of :class:`~ncmcp.plugin.types.ResourceSpec` whose URI templates start
            with ``nc://<plugin>/``. Reading one needs the same scopes as a tool of the same access.

        Called once per plugin at start-up. Optional.

        **Example:**

        .. code-block:: python

            @hookimpl
            def ncmcp_resources():
                return [ResourceSpec(uri_template="nc://notes/{note_id}", name="note",
                                     description="A note as Markdown.", mime_type="text/markdown",
                                     handler=read_note)]
        """
