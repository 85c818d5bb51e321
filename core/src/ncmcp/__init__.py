"""ncmcp: an MCP server host for Nextcloud.

Plugin authors need only what this module re-exports: the ``hookimpl`` marker, the plugin API
version and the value objects a plugin returns. Importing it has no side effects.
"""

from ncmcp.errors import (
    Conflict,
    InvalidArgument,
    Locked,
    Maintenance,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
    RateLimited,
    ToolError,
    UpstreamAuthFailed,
    UpstreamError,
    UpstreamTimeout,
)
from ncmcp.plugin import PLUGIN_API, hookimpl
from ncmcp.plugin.types import (
    Access,
    AppRequirement,
    Blob,
    PluginManifest,
    ResourceContent,
    ResourceSpec,
    ToolContext,
    ToolHints,
    ToolResult,
    ToolSpec,
)

__version__ = "0.1.0"

__all__ = [
    "PLUGIN_API",
    "Access",
    "AppRequirement",
    "Blob",
    "Conflict",
    "InvalidArgument",
    "Locked",
    "Maintenance",
    "NotFound",
    "PermissionDenied",
    "PluginManifest",
    "QuotaExceeded",
    "RateLimited",
    "ResourceContent",
    "ResourceSpec",
    "ToolContext",
    "ToolError",
    "ToolHints",
    "ToolResult",
    "ToolSpec",
    "UpstreamAuthFailed",
    "UpstreamError",
    "UpstreamTimeout",
    "hookimpl",
]
