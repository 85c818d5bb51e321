"""Loading and validating plugins: every rule of the contract, named with the offending plugin."""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import pytest

from ncmcp import PLUGIN_API, Access, PluginManifest, ResourceSpec, ToolSpec, hookimpl
from ncmcp.plugin.hookspecs import NcmcpSpecs
from ncmcp.plugin.manager import PluginLoadError, load_plugins

FAKE_DISTS = Path(__file__).parent / "data" / "fake-dists"


async def _handler(ctx: Any) -> dict[str, Any]:
    return {}


def _sync_handler(ctx: Any) -> dict[str, Any]:
    return {}


def make_plugin(name: str = "demo", *, tools: list[ToolSpec] | None = None, api: int = PLUGIN_API, **extra: Any) -> types.ModuleType:
    module = types.ModuleType(f"plugin_{name}")

    @hookimpl
    def ncmcp_plugin() -> PluginManifest:
        return PluginManifest(name=name, plugin_api=api)

    @hookimpl
    def ncmcp_tools() -> list[ToolSpec]:
        return tools or []

    module.ncmcp_plugin = ncmcp_plugin  # type: ignore[attr-defined]
    module.ncmcp_tools = ncmcp_tools  # type: ignore[attr-defined]
    for attr, value in extra.items():
        setattr(module, attr, value)
    return module


def tool(name: str, **overrides: Any) -> ToolSpec:
    fields: dict[str, Any] = dict(name=name, description="A tool.", input_schema={"type": "object", "properties": {}},
                                  output_schema={"type": "object"}, handler=_handler, access=Access.READ)
    fields.update(overrides)
    return ToolSpec(**fields)


@pytest.fixture
def fake_dists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(FAKE_DISTS))


def error_of(registry: Any, name: str) -> str:
    record = registry.records[name]
    assert record.status == "failed"
    return str(record.error)


def test_a_valid_plugin_loads() -> None:
    registry = load_plugins(discover=False, plugins=[make_plugin(tools=[tool("nc_demo_list")])])
    assert list(registry.tools) == ["nc_demo_list"] and not registry.failures


@pytest.mark.parametrize("bad_tool, message", [
    (tool("demo_list"), "must start with 'nc_demo_'"),
    (tool("nc_other_list"), "must start with 'nc_demo_'"),
    (tool("nc_demo_bad name"), "must start with 'nc_demo_'"),
    (tool("nc_demo_sync", handler=_sync_handler), "handler must be an async function"),
    (tool("nc_demo_schema", input_schema={"type": "object", "properties": {"x": {"type": "nonsense"}}}), "not valid JSON Schema"),
    (tool("nc_demo_schema2", input_schema={"type": "string"}), "must be a JSON Schema object"),
    (tool("nc_demo_out", output_schema={"type": "object", "required": "x"}), "output_schema is not valid"),
    (tool("nc_demo_desc", description="  "), "description is empty"),
])
def test_bad_tools_reject_the_plugin(bad_tool: ToolSpec, message: str) -> None:
    registry = load_plugins(discover=False, plugins=[make_plugin(tools=[bad_tool])])
    assert message in error_of(registry, "demo")
    assert registry.tools == {}


def test_duplicate_tool_names_across_plugins_are_never_renamed() -> None:
    first = make_plugin("alpha", tools=[tool("nc_alpha_x")])
    # a second plugin cannot even use another prefix, so duplicates show up within one plugin
    dup = make_plugin("beta", tools=[tool("nc_beta_x"), tool("nc_beta_x")])
    registry = load_plugins(discover=False, plugins=[first, dup])
    assert "declared twice" in error_of(registry, "beta")
    assert list(registry.tools) == ["nc_alpha_x"]


def test_plugin_api_mismatch() -> None:
    registry = load_plugins(discover=False, plugins=[make_plugin(api=PLUGIN_API + 1)])
    assert "plugin API" in error_of(registry, "demo")


def test_async_declaration_hook_is_rejected() -> None:
    module = make_plugin()

    @hookimpl
    async def ncmcp_tools() -> list[ToolSpec]:
        return []

    module.ncmcp_tools = ncmcp_tools  # type: ignore[attr-defined]
    assert "must be a plain function, not async" in error_of(load_plugins(discover=False, plugins=[module]), "demo")


def test_unknown_hook_name_is_rejected() -> None:
    @hookimpl
    def ncmcp_tool() -> list[ToolSpec]:
        return []

    registry = load_plugins(discover=False, plugins=[make_plugin(ncmcp_tool=ncmcp_tool)])
    assert "unknown hook 'ncmcp_tool'" in error_of(registry, "demo")


def test_resources_must_live_in_the_plugin_namespace() -> None:
    async def read(ctx: Any, x: str) -> Any:
        return None

    @hookimpl
    def ncmcp_resources() -> list[ResourceSpec]:
        return [ResourceSpec(uri_template="nc://other/{x}", name="x", description="x", mime_type="text/plain", handler=read)]

    registry = load_plugins(discover=False, plugins=[make_plugin(ncmcp_resources=ncmcp_resources)])
    assert "must start with 'nc://demo/'" in error_of(registry, "demo")


def test_entry_points_each_fail_alone_and_name_their_distribution(fake_dists: None) -> None:
    registry = load_plugins()
    assert registry.records["notes"].status == "loaded"  # the installed first-party plugin still starts
    broken = registry.records["broken"]
    assert broken.distribution == "ncmcp-broken" and broken.version == "1.0" and "ModuleNotFoundError" in str(broken.error)
    assert "entry-point name 'wrongname' differs from the manifest name 'misnamed'" in error_of(registry, "misnamed")
    assert "unknown hook 'ncmcp_tool'" in error_of(registry, "typo")
    assert "plugin API 0" in error_of(registry, "oldapi")
    assert "not async" in error_of(registry, "asynchook")


def test_allow_list_aborts_on_a_broken_listed_plugin(fake_dists: None) -> None:
    with pytest.raises(PluginLoadError, match="broken"):
        load_plugins(allow=["notes", "broken"])


def test_allow_list_aborts_on_a_missing_plugin() -> None:
    with pytest.raises(PluginLoadError, match="calendarx: not installed"):
        load_plugins(allow=["notes", "calendarx"])


def test_allow_list_loads_only_listed_plugins(fake_dists: None) -> None:
    registry = load_plugins(allow=["notes"])
    assert [r.name for r in registry.loaded] == ["notes"] and not registry.failures


def test_host_alone_has_zero_tools(capsys: pytest.CaptureFixture[str]) -> None:
    registry = load_plugins(discover=False)
    assert registry.tools == {} and registry.loaded == []


def test_every_hookspec_is_documented_with_an_example() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "hooks.md").read_text()
    for name in [n for n in dir(NcmcpSpecs) if n.startswith("ncmcp_")]:
        spec = getattr(NcmcpSpecs, name)
        assert "**Example:**" in (spec.__doc__ or ""), name
        assert f"## `{name}()`" in doc, name


def test_no_module_level_plugin_manager() -> None:
    import ncmcp.plugin.manager as manager

    assert not [v for v in vars(manager).values() if type(v).__name__ == "PluginManager"]
