"""Small helpers for the Files tests: call a tool and insist on success or on a given error."""

from __future__ import annotations

import base64
import json
from typing import Any


async def ok(host: Any, tool: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
    result = await host.call(tool, args or {})
    assert not result.is_error, f"{tool} failed: {result.content[0].text}"
    return dict(result.structured_content)


async def fails(host: Any, tool: str, args: dict[str, Any], code: str) -> tuple[str, dict[str, Any]]:
    """The error message and details of a call that must fail with error code ``code`` (the host ends
    every tool error with one JSON line: ``{"error": code, ...details}``)."""
    result = await host.call(tool, args)
    assert result.is_error, f"{tool} should have failed with {code}: {result.structured_content}"
    text = result.content[0].text
    details = json.loads(text.splitlines()[-1])
    assert details["error"] == code, text
    return text, details


def blob_of(result: Any) -> tuple[bytes, str, str]:
    """``(bytes, mime type, uri)`` of the embedded blob resource of a tool result."""
    for item in result.content:
        if getattr(item, "type", None) == "resource":
            return base64.b64decode(item.resource.blob), item.resource.mime_type, str(item.resource.uri)
    raise AssertionError("no embedded resource in the result")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
