"""The host: loaded plugins plus everything a call needs (principal, scopes, capabilities, Nextcloud).

Every route into a tool or resource (streamable HTTP, stdio, in-process) goes through
:meth:`Host.call_tool` / :meth:`Host.read_resource`, which check the scope again even when the HTTP
layer already did: no route skips the check, and it fails closed.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import anyio
import jsonschema
import mcp_types as types
import structlog
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.shared.exceptions import MCPError

from ncmcp.auth import scopes as scope_rules
from ncmcp.auth.cache import TokenCache, token_key
from ncmcp.config import Settings, plugin_settings
from ncmcp.errors import AppUnavailable, InvalidArgument, ToolError
from ncmcp.nextcloud.capabilities import Capabilities
from ncmcp.nextcloud.client import NextcloudPool, dumps
from ncmcp.plugin.manager import LoadedResource, LoadedTool, PluginRegistry
from ncmcp.plugin.types import Access, CallContext, ResourceContent, ToolResult

log = structlog.get_logger("ncmcp.host")

INSUFFICIENT_SCOPE = -32003  # JSON-RPC error code for a refused call (HTTP 403 on the HTTP route)
UNAUTHENTICATED = -32001


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling. ``scopes is None`` means Basic mode: one user, every tool."""

    authorization: str  # the Authorization header value sent to Nextcloud
    scopes: frozenset[str] | None
    cache_key: str
    subject: str | None = None


@dataclass(frozen=True, slots=True)
class Requirement:
    plugin: str
    access: Access


class Host:
    def __init__(self, settings: Settings, registry: PluginRegistry, pool: NextcloudPool, *, environ: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        self.registry = registry
        self.pool = pool
        self.capabilities = Capabilities(settings.capabilities_refresh)
        self.tools = registry.tools
        self.resources = registry.resources
        self._templates = [(_template_regex(r.spec.uri_template), r) for r in self.resources]
        self._validators = {name: ArgumentValidator(t.spec.input_schema) for name, t in self.tools.items()}
        self._user_ids: TokenCache[str] = TokenCache(max_size=settings.token_cache_size)
        self._plugin_settings = {r.name: plugin_settings(r.name, environ) for r in registry.loaded}
        basic = ""
        if settings.username and settings.password:
            basic = "Basic " + base64.b64encode(f"{settings.username}:{settings.password}".encode()).decode()
        self._basic = basic
        self._app_problems: dict[str, str | None] = {}
        self.challenge_scopes = scope_rules.supported_scopes([r.name for r in registry.loaded], settings.scope_style)

    @property
    def oauth(self) -> bool:
        return self.settings.oauth

    # --- who is calling -------------------------------------------------------------------------

    def principal(self) -> Principal | None:
        """The caller, or ``None`` in OAuth mode without a verified token (fail closed)."""
        if not self.oauth:
            return Principal(authorization=self._basic, scopes=None, cache_key="basic", subject=self.settings.username)
        token = get_access_token()
        if token is None:
            return None
        return Principal(
            authorization=f"Bearer {token.token}",
            scopes=frozenset(token.scopes),
            cache_key=token_key(token.token),
            subject=token.subject,
        )

    async def user_id(self, principal: Principal) -> str:
        """The Nextcloud user id from ``/ocs/v2.php/cloud/user`` (never the token's ``sub``)."""

        async def load() -> tuple[str, float]:
            data = await self.pool.bind(principal.authorization).ocs("/ocs/v2.php/cloud/user")
            return str(data["id"]), self.settings.token_cache_ttl

        return await self._user_ids.get_or_load(principal.cache_key, load)

    # --- what is granted ------------------------------------------------------------------------

    def requirement(self, method: str, params: Mapping[str, Any] | None) -> Requirement | None:
        """What a JSON-RPC request needs, or ``None`` if it touches no plugin operation."""
        params = params or {}
        if method == "tools/call":
            tool = self.tools.get(str(params.get("name")))
            return Requirement(tool.plugin, tool.access) if tool else None
        if method == "resources/read":
            found = self.match_resource(str(params.get("uri", "")))
            return Requirement(found[0].plugin, found[0].spec.access) if found else None
        return None

    def granted(self, req: Requirement, principal: Principal) -> bool:
        return scope_rules.is_granted(req.plugin, req.access, principal.scopes)

    def challenge(self, req: Requirement, principal: Principal) -> list[str]:
        """The scopes a 403 names: the needed one plus the server's scopes the token already holds."""
        needed = scope_rules.challenge_scope(req.plugin, req.access, self.settings.scope_style)
        ours = set(self.challenge_scopes) | {s for r in self.registry.loaded for s in
                                              (f"{r.name}.read", f"{r.name}.write")} | {"nc:read", "nc:write"}
        return scope_rules.step_up_scopes(needed, principal.scopes or (), ours)

    def app_problem(self, plugin: str) -> str | None:
        return self.capabilities.check(self.registry.manifest(plugin).requires)

    def visible_tools(self, principal: Principal | None) -> list[LoadedTool]:
        if principal is None:
            return []
        return [
            t for t in self.tools.values()
            if scope_rules.is_granted(t.plugin, t.access, principal.scopes) and self.app_problem(t.plugin) is None
        ]

    def visible_resources(self, principal: Principal | None) -> list[LoadedResource]:
        if principal is None:
            return []
        return [
            r for r in self.resources
            if scope_rules.is_granted(r.plugin, r.spec.access, principal.scopes) and self.app_problem(r.plugin) is None
        ]

    async def refresh_capabilities(self) -> None:
        if not self.capabilities.stale():
            return
        await self.capabilities.refresh(self.pool.bind(self._basic) if self._basic else self.pool.bind(""))
        problems = {r.name: self.app_problem(r.name) for r in self.registry.loaded}
        for plugin, problem in problems.items():
            if problem != self._app_problems.get(plugin):
                if problem:
                    log.warning("plugin_app_unavailable", plugin=plugin, reason=problem, effect="tools hidden and refused")
                elif plugin in self._app_problems:
                    log.info("plugin_app_available", plugin=plugin)
        self._app_problems = problems

    # --- calling ----------------------------------------------------------------------------------

    def _refuse(self, req: Requirement, principal: Principal | None) -> None:
        if principal is None:
            raise MCPError(UNAUTHENTICATED, "authentication required")
        if not self.granted(req, principal):
            needed = " ".join(self.challenge(req, principal))
            log.warning("missing_scopes", plugin=req.plugin, access=req.access.value, needed=needed, user=principal.subject)
            raise MCPError(INSUFFICIENT_SCOPE, f"insufficient_scope: {needed} required", {"scope": needed})

    async def call_tool(self, name: str, arguments: Mapping[str, Any] | None, progress: Any = None) -> types.CallToolResult:
        tool = self.tools.get(name)
        if tool is None:
            return _error_result(f"Unknown tool: {name}")
        principal = self.principal()
        self._refuse(Requirement(tool.plugin, tool.access), principal)
        assert principal is not None
        started = time.perf_counter()
        outcome = "error"
        try:
            args = dict(arguments or {})
            errors = sorted(self._validators[name].iter_errors(args), key=lambda e: list(e.path))
            if errors:
                raise InvalidArgument("Invalid arguments: " + "; ".join(_describe(e) for e in errors[:5]))
            args = _integers(tool.spec.input_schema, args)
            await self.refresh_capabilities()
            problem = self.app_problem(tool.plugin)
            if problem:
                log.warning("plugin_app_unavailable", plugin=tool.plugin, reason=problem)
                raise AppUnavailable(f"{name} is unavailable: {problem}")
            ctx = CallContext(
                http=self.pool.bind(principal.authorization, user_hint=principal.subject or ""),
                user_id=await self.user_id(principal),
                log=structlog.get_logger(f"ncmcp.plugin.{tool.plugin}").bind(tool=name),
                settings=self._plugin_settings.get(tool.plugin, {}),
                progress=progress,
            )
            with anyio.fail_after(self.settings.tool_timeout):
                value = await _unwrapped(tool.spec.handler(ctx, **args))
            result = _success_result(value)
            outcome = "ok"
            return result
        except ToolError as exc:
            outcome = exc.code
            return _error_result(exc.message, exc.code, exc.details)
        except TimeoutError:
            outcome = "timeout"
            return _error_result(f"{name} took longer than {self.settings.tool_timeout:g} s and was stopped", "timeout")
        except Exception as exc:  # a plugin bug: logged with the plugin, answered without details
            log.exception("tool_crashed", plugin=tool.plugin, tool=name, error=type(exc).__name__)
            return _error_result(f"{name} failed unexpectedly; the server log has the details", "internal_error")
        finally:
            log.info("tool_call", tool=name, plugin=tool.plugin, user=principal.subject, outcome=outcome,
                     duration_ms=round((time.perf_counter() - started) * 1000, 1))

    def match_resource(self, uri: str) -> tuple[LoadedResource, dict[str, str]] | None:
        for regex, resource in self._templates:
            found = regex.fullmatch(uri)
            if found:
                return resource, found.groupdict()
        return None

    async def read_resource(self, uri: str) -> types.ReadResourceResult:
        found = self.match_resource(uri)
        if found is None:
            raise MCPError(-32002, f"Resource not found: {uri}")
        resource, variables = found
        principal = self.principal()
        self._refuse(Requirement(resource.plugin, resource.spec.access), principal)
        assert principal is not None
        await self.refresh_capabilities()
        problem = self.app_problem(resource.plugin)
        if problem:
            raise MCPError(-32002, f"Resource unavailable: {problem}")
        ctx = CallContext(
            http=self.pool.bind(principal.authorization, user_hint=principal.subject or ""),
            user_id=await self.user_id(principal),
            log=structlog.get_logger(f"ncmcp.plugin.{resource.plugin}").bind(resource=resource.spec.uri_template),
            settings=self._plugin_settings.get(resource.plugin, {}),
        )
        try:
            with anyio.fail_after(self.settings.tool_timeout):
                content: ResourceContent = await resource.spec.handler(ctx, **variables)
        except ToolError as exc:
            raise MCPError(-32002 if exc.code == "not_found" else -32603, exc.message) from None
        if content.text is not None:
            contents: list[Any] = [types.TextResourceContents(uri=uri, mime_type=content.mime_type, text=content.text)]
        else:
            blob = base64.b64encode(content.data or b"").decode()
            contents = [types.BlobResourceContents(uri=uri, mime_type=content.mime_type, blob=blob)]
        return types.ReadResourceResult(contents=contents)


def _ecma_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Any:
    """``pattern`` with JSON Schema's (ECMA-262) meaning of ``$``: the end of the string.

    jsonschema uses Python's ``re.search``, where ``$`` also matches before a final newline, so
    ``^[^\\x00-\\x1f]*$`` would accept ``"abc\\n"`` — exactly the value such patterns exist to refuse.
    """
    if not isinstance(instance, str):
        return
    found = re.search(pattern, instance)
    anchored = pattern.endswith("$") and not pattern.endswith("\\$")
    if found is None or (anchored and found.end() != len(instance)):
        yield jsonschema.ValidationError(f"{instance[:60]!r} does not match {pattern!r}")


ArgumentValidator = jsonschema.validators.extend(jsonschema.Draft202012Validator, {"pattern": _ecma_pattern})


def _integers(schema: Mapping[str, Any], value: Any) -> Any:
    """JSON Schema's ``integer`` accepts ``5.0``; handlers get ``5``, as the schema promises them."""
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [kind]
    if isinstance(value, float) and "integer" in kinds and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        props = schema.get("properties", {})
        return {k: _integers(props[k], v) if k in props else v for k, v in value.items()}
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        return [_integers(schema["items"], v) for v in value]
    return value


async def _unwrapped(call: Any) -> Any:
    """Await a handler; a task group that failed with tool errors only is reported as its first
    tool error (plugins that run requests concurrently should not turn a 404 into a crash)."""
    try:
        return await call
    except BaseExceptionGroup as group:
        matched, rest = group.split(ToolError)
        if matched is not None and rest is None:
            first: BaseException = matched
            while isinstance(first, BaseExceptionGroup):
                first = first.exceptions[0]
            raise first from group
        raise


def _describe(error: jsonschema.ValidationError) -> str:
    where = ".".join(str(p) for p in error.absolute_path)
    message = error.message if len(error.message) <= 200 else error.message[:200] + "…"  # never echo huge values
    return f"{where}: {message}" if where else message


def _success_result(value: Any) -> types.CallToolResult:
    if isinstance(value, ToolResult):
        content: list[Any] = []
        if value.text is not None:
            content.append(types.TextContent(type="text", text=value.text))
        elif value.structured is not None:
            content.append(types.TextContent(type="text", text=dumps(value.structured)))
        for blob in value.blobs:
            content.append(types.EmbeddedResource(type="resource", resource=types.BlobResourceContents(
                uri=blob.uri, mime_type=blob.mime_type, blob=base64.b64encode(blob.data).decode())))
        return types.CallToolResult(content=content, structured_content=dict(value.structured) if value.structured is not None else None)
    return types.CallToolResult(content=[types.TextContent(type="text", text=dumps(value))], structured_content=value)


def _error_result(message: str, code: str = "error", details: Mapping[str, Any] | None = None) -> types.CallToolResult:
    # The message for people and models, then one JSON line with a stable code for programs.
    text = f"{message}\n{json.dumps({'error': code, **(details or {})}, ensure_ascii=False, default=str)}"
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=True)


def _template_regex(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[a-zA-Z_][a-zA-Z0-9_]*\})", template)
    pattern = ""
    for part in parts:
        if part.startswith("{") and part.endswith("}"):
            name = part[1:-1]
            pattern += f"(?P<{name}>.+)" if name == "path" else f"(?P<{name}>[^/]+)"
        else:
            pattern += re.escape(part)
    return re.compile(pattern)
