from ncmcp import PLUGIN_API, PluginManifest, hookimpl


@hookimpl
def ncmcp_plugin():  # noqa: ANN201
    return PluginManifest(name="misnamed", plugin_api=PLUGIN_API)
