"""Hook implementations only; the tools live in the ``tools_*`` modules."""

from ncmcp import PLUGIN_API, PluginManifest, hookimpl


@hookimpl
def ncmcp_plugin() -> PluginManifest:
    # CalDAV is served by Nextcloud core's dav app, so no app requirement.
    return PluginManifest(name="calendar", plugin_api=PLUGIN_API, requires=None,
                          description="Nextcloud Calendar: events and tasks over CalDAV")


@hookimpl
def ncmcp_tools():  # type: ignore[no-untyped-def]
    from ncmcp_calendar.tools import TOOLS

    return TOOLS
