"""Plain value objects plugins return from their hooks; the host validates them at start-up.

Plugins never see MCP SDK types: the host maps these onto the protocol, so an SDK upgrade does not
break third-party plugins.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ncmcp.nextcloud.client import NextcloudClient


class Access(enum.StrEnum):
    """What a tool does to the user's data; the host derives the scopes that grant it."""

    READ = "read"
    WRITE = "write"


@dataclass(frozen=True, kw_only=True, slots=True)
class AppRequirement:
    """The Nextcloud app a plugin needs, checked against ``/ocs/v2.php/cloud/capabilities``.

    ``capability_key`` is the key under ``capabilities`` when it differs from ``app_id``;
    ``min_version`` is compared with that capability's ``version`` (PEP 440 ordering).
    """

    app_id: str
    capability_key: str | None = None
    min_version: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class PluginManifest:
    """Who a plugin is. ``name`` equals its entry-point name, its tool prefix ``nc_<name>_`` and its
    scope namespace (``<name>.read`` / ``<name>.write``). ``requires`` is ``None`` when the plugin
    needs only Nextcloud's core (WebDAV, CalDAV, CardDAV)."""

    name: str
    plugin_api: int
    requires: AppRequirement | None = None
    description: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class ToolHints:
    """MCP tool annotations (behaviour hints for clients; never used for authorization)."""

    read_only: bool
    destructive: bool
    idempotent: bool
    open_world: bool = False

    @classmethod
    def for_access(cls, access: Access) -> ToolHints:
        if access is Access.READ:
            return cls(read_only=True, destructive=False, idempotent=True)
        return cls(read_only=False, destructive=False, idempotent=False)


Handler = Callable[..., Awaitable[Any]]


@dataclass(frozen=True, kw_only=True, slots=True)
class ToolSpec:
    """One MCP tool.

    ``handler`` is ``async def handler(ctx: ToolContext, **arguments)``; arguments arrive already
    validated against ``input_schema``. It returns a dict matching ``output_schema`` (sent as
    structured content and as JSON text) or a :class:`ToolResult`.
    """

    name: str
    description: str
    input_schema: Mapping[str, Any]
    output_schema: Mapping[str, Any] | None
    handler: Handler
    access: Access
    title: str | None = None
    hints: ToolHints | None = None  # default: derived from ``access``

    @property
    def effective_hints(self) -> ToolHints:
        return self.hints or ToolHints.for_access(self.access)


@dataclass(frozen=True, kw_only=True, slots=True)
class Blob:
    """Binary content returned by a tool (sent as an MCP embedded blob resource)."""

    data: bytes
    mime_type: str
    uri: str


@dataclass(frozen=True, kw_only=True, slots=True)
class ToolResult:
    """A tool result with more than structured data: text and/or binary blobs."""

    structured: Mapping[str, Any] | None = None
    text: str | None = None
    blobs: tuple[Blob, ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class ResourceContent:
    """What a resource read returns: ``text`` or ``data`` (bytes), with its MIME type."""

    mime_type: str
    text: str | None = None
    data: bytes | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ResourceSpec:
    """An MCP resource template such as ``nc://notes/{note_id}``.

    ``handler`` is ``async def handler(ctx: ToolContext, **variables) -> ResourceContent``; each
    ``{variable}`` of the template is passed as a string keyword. ``{+path}``-style variables are not
    supported; a variable named ``path`` matches across slashes.
    """

    uri_template: str
    name: str
    description: str
    mime_type: str
    handler: Handler
    access: Access = Access.READ


class ProgressReporter(Protocol):
    async def __call__(self, progress: float, total: float | None = None, message: str | None = None) -> None: ...


class ToolContext(Protocol):
    """What the host gives a handler. Handlers never see the caller's token or scopes."""

    #: Nextcloud HTTP client already bound to the calling user's credentials.
    http: NextcloudClient
    #: The Nextcloud user id (resolved from Nextcloud, never taken from the token's ``sub``).
    user_id: str
    #: A structlog logger bound to the plugin and tool.
    log: Any
    #: Plugin settings from ``NEXTCLOUD_MCP_<PLUGIN>_<KEY>`` environment variables (keys lower-case).
    settings: Mapping[str, str]

    async def report_progress(self, progress: float, total: float | None = None, message: str | None = None) -> None: ...


@dataclass(kw_only=True, slots=True)
class CallContext:
    """The host's implementation of :class:`ToolContext`."""

    http: NextcloudClient
    user_id: str
    log: Any
    settings: Mapping[str, str] = field(default_factory=dict)
    progress: ProgressReporter | None = None

    async def report_progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        if self.progress is not None:
            await self.progress(progress, total, message)
