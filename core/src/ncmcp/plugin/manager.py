"""Loading plugins: one place that calls hooks, validates what they return and records failures.

Each entry point is loaded and validated on its own, so one broken plugin names itself and does not
take the others down. With an allow-list (``NEXTCLOUD_MCP_PLUGINS``) a listed plugin that is missing
or broken aborts start-up instead: a deployment should fail its health check rather than serve a
silently shrunken tool set.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType
from typing import Any

import jsonschema
import pluggy
import structlog
from packaging.version import InvalidVersion, Version

from ncmcp.plugin import ENTRY_POINT_GROUP, PLUGIN_API, PROJECT, hookspecs
from ncmcp.plugin.types import Access, PluginManifest, ResourceSpec, ToolSpec

log = structlog.get_logger("ncmcp.plugins")

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
_DECLARATION_HOOKS = ("ncmcp_plugin", "ncmcp_tools", "ncmcp_resources")


class PluginLoadError(RuntimeError):
    """Start-up must stop: a plugin the allow-list names is missing or broken."""


class PluginContractError(ValueError):
    """A plugin broke the contract (the message names the rule)."""


@dataclass(frozen=True, slots=True)
class LoadedTool:
    plugin: str
    spec: ToolSpec

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def access(self) -> Access:
        return self.spec.access


@dataclass(frozen=True, slots=True)
class LoadedResource:
    plugin: str
    spec: ResourceSpec


@dataclass(slots=True)
class PluginRecord:
    """What ``ncmcp plugins`` shows for one plugin."""

    name: str
    distribution: str
    version: str
    status: str  # "loaded" | "failed" | "not installed"
    error: str | None = None
    manifest: PluginManifest | None = None
    tools: list[LoadedTool] = field(default_factory=list)
    resources: list[LoadedResource] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"`{self.name}` ({self.distribution} {self.version})"


@dataclass(slots=True)
class PluginRegistry:
    """The validated result of loading: every plugin's record, and the tools and resources by name."""

    records: dict[str, PluginRecord] = field(default_factory=dict)

    @property
    def loaded(self) -> list[PluginRecord]:
        return [r for r in self.records.values() if r.status == "loaded"]

    @property
    def failures(self) -> list[PluginRecord]:
        return [r for r in self.records.values() if r.status != "loaded"]

    @property
    def tools(self) -> dict[str, LoadedTool]:
        return {t.name: t for r in self.loaded for t in r.tools}

    @property
    def resources(self) -> list[LoadedResource]:
        return [res for r in self.loaded for res in r.resources]

    def manifest(self, plugin: str) -> PluginManifest:
        manifest = self.records[plugin].manifest
        assert manifest is not None
        return manifest


@dataclass(frozen=True, slots=True)
class _Candidate:
    name: str
    distribution: str
    version: str
    load: Any  # () -> module


def _discover() -> list[_Candidate]:
    found = []
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist
        found.append(
            _Candidate(
                name=ep.name,
                distribution=dist.metadata["Name"] if dist else "?",
                version=dist.version if dist else "?",
                load=ep.load,
            )
        )
    return found


def load_plugins(
    *,
    discover: bool = True,
    plugins: Sequence[ModuleType | object] = (),
    allow: Iterable[str] | None = None,
) -> PluginRegistry:
    """Load, validate and register plugins.

    :param discover: load entry points of the ``ncmcp.plugins`` group.
    :param plugins: plugin objects to add directly (tests, the test kit); named by their manifest.
    :param allow: an allow-list of plugin names; when given, only these load, and a listed plugin
        that is missing or broken raises :class:`PluginLoadError`.
    """
    allowed = None if allow is None else frozenset(allow)
    candidates = _discover() if discover else []
    for obj in plugins:
        candidates.append(_Candidate(name="", distribution=getattr(obj, "__name__", type(obj).__name__), version="-", load=lambda o=obj: o))

    registry = PluginRegistry()
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs.NcmcpSpecs)
    names = [c.name for c in candidates if c.name]
    duplicated = {n for n in names if names.count(n) > 1}

    for cand in candidates:
        if allowed is not None and cand.name and cand.name not in allowed:
            continue
        record = PluginRecord(name=cand.name or cand.distribution, distribution=cand.distribution, version=cand.version, status="failed")
        module = None
        try:
            if cand.name in duplicated:
                raise PluginContractError(f"entry-point name {cand.name!r} is provided by more than one distribution")
            module = cand.load()
            _register_one(pm, module, record, cand.name or None)
            _check_collisions(registry, record)
            record.status = "loaded"
        except Exception as exc:  # every failure is recorded with the plugin's identity
            record.error = f"{type(exc).__name__}: {exc}"
            if record.manifest is not None:
                record.name = record.manifest.name
            if module is not None and pm.is_registered(module):
                pm.unregister(module)
        registry.records[record.name] = record
        if record.status == "failed":
            log.error(
                "plugin_rejected",
                plugin=record.name,
                distribution=record.distribution,
                version=record.version,
                error=record.error,
                hint=f"check that it supports ncmcp plugin API {PLUGIN_API}",
            )

    if allowed is not None:
        problems = [f"{n}: not installed" for n in sorted(allowed - registry.records.keys())]
        problems += [f"{r.label}: {r.error}" for r in registry.failures]
        if problems:
            raise PluginLoadError("NEXTCLOUD_MCP_PLUGINS lists plugins that cannot start: " + "; ".join(problems))
    if not registry.loaded:
        log.warning("no_plugins_installed", hint="install a plugin distribution such as ncmcp-notes")
    return registry


def _register_one(pm: pluggy.PluginManager, module: object, record: PluginRecord, ep_name: str | None) -> None:
    name = ep_name or record.name
    pm.register(module, name=name)
    record.name = name
    impls = {
        hook: [i for i in getattr(pm.hook, hook).get_hookimpls() if i.plugin is module] for hook in _DECLARATION_HOOKS
    }
    if len(impls["ncmcp_plugin"]) != 1:
        raise PluginContractError("a plugin must implement ncmcp_plugin exactly once")
    if inspect.iscoroutinefunction(impls["ncmcp_plugin"][0].function):
        raise PluginContractError("hook ncmcp_plugin must be a plain function, not async")
    manifest = impls["ncmcp_plugin"][0].function()
    if not isinstance(manifest, PluginManifest):
        raise PluginContractError("ncmcp_plugin must return a PluginManifest")
    record.manifest = manifest
    if manifest.plugin_api != PLUGIN_API:
        raise PluginContractError(f"plugin API {manifest.plugin_api} does not match the host's API {PLUGIN_API}")
    if not _NAME.match(manifest.name):
        raise PluginContractError(f"plugin name {manifest.name!r} must match {_NAME.pattern}")
    if ep_name is not None and manifest.name != ep_name:
        raise PluginContractError(f"entry-point name {ep_name!r} differs from the manifest name {manifest.name!r}")
    if ep_name is None:
        pm.unregister(module)
        pm.register(module, name=manifest.name)
        record.name = manifest.name
    # Hook-name typos (e.g. ``ncmcp_tool``) would otherwise be silently ignored.
    for caller in pm.get_hookcallers(module) or []:
        if not caller.has_spec():
            raise PluginContractError(f"unknown hook {caller.name!r}")
    for hook, found in impls.items():
        for impl in found:
            if inspect.iscoroutinefunction(impl.function) or inspect.isasyncgenfunction(impl.function):
                raise PluginContractError(f"hook {hook} must be a plain function, not async")
    if manifest.requires and manifest.requires.min_version:
        try:
            Version(manifest.requires.min_version)
        except InvalidVersion as exc:
            raise PluginContractError(f"requires.min_version {manifest.requires.min_version!r} is not a version") from exc

    tools = [t for impl in impls["ncmcp_tools"] for t in (impl.function() or ())]
    resources = [r for impl in impls["ncmcp_resources"] for r in (impl.function() or ())]
    record.tools = [LoadedTool(manifest.name, validate_tool(manifest.name, t)) for t in tools]
    record.resources = [LoadedResource(manifest.name, validate_resource(manifest.name, r)) for r in resources]
    seen: set[str] = set()
    for tool in record.tools:
        if tool.name in seen:
            raise PluginContractError(f"tool {tool.name!r} is declared twice")
        seen.add(tool.name)


def validate_tool(plugin: str, tool: object) -> ToolSpec:
    """Check one tool against the contract; return it unchanged or raise PluginContractError."""
    if not isinstance(tool, ToolSpec):
        raise PluginContractError(f"ncmcp_tools must return ToolSpec objects, got {type(tool).__name__}")
    prefix = f"nc_{plugin}_"
    if not tool.name.startswith(prefix) or not _TOOL_NAME.match(tool.name):
        raise PluginContractError(f"tool name {tool.name!r} must start with {prefix!r} and match {_TOOL_NAME.pattern}")
    if not isinstance(tool.access, Access):
        raise PluginContractError(f"tool {tool.name!r}: access must be Access.READ or Access.WRITE")
    if not inspect.iscoroutinefunction(tool.handler):
        raise PluginContractError(f"tool {tool.name!r}: handler must be an async function")
    if not tool.description.strip():
        raise PluginContractError(f"tool {tool.name!r}: description is empty")
    for label, schema in (("input_schema", tool.input_schema), ("output_schema", tool.output_schema)):
        if schema is None and label == "output_schema":
            continue
        _check_schema(tool.name, label, schema)
    return tool


def validate_resource(plugin: str, resource: object) -> ResourceSpec:
    if not isinstance(resource, ResourceSpec):
        raise PluginContractError(f"ncmcp_resources must return ResourceSpec objects, got {type(resource).__name__}")
    if not resource.uri_template.startswith(f"nc://{plugin}/"):
        raise PluginContractError(f"resource {resource.uri_template!r} must start with 'nc://{plugin}/'")
    if not inspect.iscoroutinefunction(resource.handler):
        raise PluginContractError(f"resource {resource.uri_template!r}: handler must be an async function")
    return resource


def _check_schema(tool: str, label: str, schema: Any) -> None:
    if not isinstance(schema, dict) or schema.get("type") != "object":
        raise PluginContractError(f"tool {tool!r}: {label} must be a JSON Schema object with type 'object'")
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise PluginContractError(f"tool {tool!r}: {label} is not valid JSON Schema: {exc.message}") from exc


def _check_collisions(registry: PluginRegistry, record: PluginRecord) -> None:
    taken = registry.tools
    for tool in record.tools:
        if tool.name in taken:
            other = registry.records[taken[tool.name].plugin]
            raise PluginContractError(f"tool {tool.name!r} is already provided by {other.label}")
