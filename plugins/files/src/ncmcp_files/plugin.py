"""Hook implementations only; the tools live in :mod:`ncmcp_files.tools`."""

from ncmcp import PLUGIN_API, PluginManifest, hookimpl


@hookimpl
def ncmcp_plugin() -> PluginManifest:
    # WebDAV is part of Nextcloud's core: no app to require.
    return PluginManifest(name="files", plugin_api=PLUGIN_API, requires=None, description="Nextcloud Files (WebDAV)")


@hookimpl
def ncmcp_tools():  # type: ignore[no-untyped-def]
    from ncmcp_files.tools import TOOLS

    return TOOLS


@hookimpl
def ncmcp_resources():  # type: ignore[no-untyped-def]
    from ncmcp_files.tools import RESOURCES

    return RESOURCES
