from ncmcp import PLUGIN_API, PluginManifest, hookimpl


@hookimpl
def ncmcp_plugin():  # noqa: ANN201
    return PluginManifest(name="typo", plugin_api=PLUGIN_API)


@hookimpl
def ncmcp_tool():  # noqa: ANN201  (the typo: the hook is ncmcp_tools)
    return []
