"""Hook implementations only; the tools live in :mod:`ncmcp_notes.tools`."""

from ncmcp import PLUGIN_API, AppRequirement, PluginManifest, hookimpl


@hookimpl
def ncmcp_plugin() -> PluginManifest:
    # Notes API 1.2 (ETags, If-Match, chunked listing) arrived with Notes 4.0.
    return PluginManifest(
        name="notes",
        plugin_api=PLUGIN_API,
        requires=AppRequirement(app_id="notes", min_version="4.0.0"),
        description="Nextcloud Notes",
    )


@hookimpl
def ncmcp_tools():  # type: ignore[no-untyped-def]
    from ncmcp_notes.tools import TOOLS

    return TOOLS


@hookimpl
def ncmcp_resources():  # type: ignore[no-untyped-def]
    from ncmcp_notes.tools import RESOURCES

    return RESOURCES
