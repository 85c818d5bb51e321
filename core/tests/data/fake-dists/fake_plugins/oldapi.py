from ncmcp import PluginManifest, hookimpl


@hookimpl
def ncmcp_plugin():  # noqa: ANN201
    return PluginManifest(name="oldapi", plugin_api=0)
