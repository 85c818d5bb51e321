"""``assert_plugin_contract``: what every plugin's test suite should call once."""

from __future__ import annotations

import inspect

from ncmcp.plugin.manager import PluginRegistry, load_plugins


def assert_plugin_contract(plugin: object, *, require_output_schema: bool = True) -> PluginRegistry:
    """Load ``plugin`` (a module with hook implementations) exactly as the host does and check it.

    Fails with the host's own message when the plugin would be rejected at start-up, and also when a
    handler's signature does not accept the properties of its input schema (a mismatch would fail
    only when a client sends that argument).
    """
    registry = load_plugins(discover=False, plugins=[plugin])
    failures = [f"{r.label}: {r.error}" for r in registry.failures]
    assert not failures, "plugin rejected: " + "; ".join(failures)
    (record,) = registry.loaded
    for tool in record.tools:
        spec = tool.spec
        if require_output_schema:
            assert spec.output_schema is not None, f"{spec.name}: every tool should declare an output schema"
        params = inspect.signature(spec.handler).parameters
        takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
        names = list(params)[1:]  # the first parameter is the context
        props = set(spec.input_schema.get("properties", {}))
        missing = sorted(props - set(names)) if not takes_kwargs else []
        assert not missing, f"{spec.name}: handler does not accept schema properties {missing}"
        required = {n for n in names if params[n].default is inspect.Parameter.empty and params[n].kind is not params[n].VAR_KEYWORD}
        unlisted = sorted(required - set(spec.input_schema.get("required", [])))
        assert not unlisted, f"{spec.name}: handler requires {unlisted} but the schema does not mark them required"
    return registry
