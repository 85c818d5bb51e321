"""``WWW-Authenticate`` challenges (RFC 6750 §3, RFC 9728 §5.1, MCP authorization spec)."""

from __future__ import annotations

import json
from collections.abc import Iterable


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def bearer(
    *,
    resource_metadata: str,
    scopes: Iterable[str] = (),
    error: str | None = None,
    description: str | None = None,
) -> str:
    """A Bearer challenge. With no credentials sent, ``error`` stays unset, as RFC 6750 §3 asks."""
    params = []
    if error:
        params.append(f"error={_quote(error)}")
    if description:
        params.append(f"error_description={_quote(description)}")
    scope = " ".join(scopes)
    if scope:
        params.append(f"scope={_quote(scope)}")
    params.append(f"resource_metadata={_quote(resource_metadata)}")
    return "Bearer " + ", ".join(params)


def jsonrpc_error_body(request_id: object, code: int, message: str, data: object = None) -> bytes:
    error: dict[str, object] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "error": error}).encode()
