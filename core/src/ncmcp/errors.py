"""Errors a tool call can end with.

Plugins raise these (or let the Nextcloud client raise them); the host turns each into an MCP tool
error whose text is the message. Anything else a handler raises is logged with the plugin name and
answered with a generic message, so no traceback, upstream body or token reaches the client.
"""

from __future__ import annotations


class ToolError(Exception):
    """A failure the caller should read. ``code`` is a stable machine-readable kind."""

    code = "error"

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.details = {k: v for k, v in details.items() if v is not None}


class InvalidArgument(ToolError):
    code = "invalid_argument"


class NotFound(ToolError):
    code = "not_found"


class PermissionDenied(ToolError):
    code = "permission_denied"


class Conflict(ToolError):
    """The object changed since the caller read it (HTTP 412) or already exists.

    ``current_etag`` is the ETag the server holds now, so the caller can re-read and retry.
    """

    code = "conflict"

    def __init__(self, message: str, *, current_etag: str | None = None, **details: object) -> None:
        super().__init__(message, current_etag=current_etag, **details)
        self.current_etag = current_etag


class Locked(ToolError):
    code = "locked"


class QuotaExceeded(ToolError):
    code = "quota_exceeded"


class RateLimited(ToolError):
    code = "rate_limited"


class Maintenance(ToolError):
    code = "maintenance"


class UpstreamAuthFailed(ToolError):
    code = "upstream_auth_failed"


class UpstreamTimeout(ToolError):
    code = "timeout"


class UpstreamError(ToolError):
    code = "upstream_error"


class AppUnavailable(ToolError):
    """The Nextcloud app a plugin needs is missing or too old on this server."""

    code = "app_unavailable"
