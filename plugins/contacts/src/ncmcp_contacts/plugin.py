"""Hook implementations only; the tools live in :mod:`ncmcp_contacts.tools`."""

from ncmcp import PLUGIN_API, PluginManifest, hookimpl


@hookimpl
def ncmcp_plugin() -> PluginManifest:
    # CardDAV belongs to Nextcloud's core dav app: no app requirement to check.
    return PluginManifest(name="contacts", plugin_api=PLUGIN_API, requires=None,
                          description="Nextcloud Contacts: address books over CardDAV")


@hookimpl
def ncmcp_tools():  # type: ignore[no-untyped-def]
    from ncmcp_contacts.tools import TOOLS

    return TOOLS
