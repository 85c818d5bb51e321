from ncmcp import PLUGIN_API, PluginManifest, hookimpl


@hookimpl
def ncmcp_plugin():  # noqa: ANN201
    return PluginManifest(name="asynchook", plugin_api=PLUGIN_API)


@hookimpl
async def ncmcp_tools():  # noqa: ANN201
    return []
