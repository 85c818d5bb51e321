"""Helpers for the calendar tests: result accessors and a plain CalDAV client ("another app")."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import httpx
import ncmcp_calendar.plugin as calendar_plugin

PLUGINS = [calendar_plugin]


def ok(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content[0].text
    return result.structured_content


def error(result: Any) -> tuple[str, dict[str, Any]]:
    """(message, details) of a tool error; details has the error code when the tool gave details."""
    assert result.is_error, result.structured_content
    text = result.content[0].text
    lines = text.splitlines()
    details = json.loads(lines[-1]) if len(lines) > 1 and lines[-1].startswith("{") else {"error": None}
    return text, details


def dav_client(sandbox: Any, user: tuple[str, str]) -> httpx.AsyncClient:
    """Another CalDAV client of the same user, talking to the sandbox directly."""
    return httpx.AsyncClient(base_url=sandbox.url, auth=user, timeout=30)


async def put_raw(client: httpx.AsyncClient, href: str, data: bytes | str, *, etag: str | None = None) -> httpx.Response:
    headers = {"Content-Type": "text/calendar; charset=utf-8", **({"If-Match": etag} if etag else {"If-None-Match": "*"})}
    return await client.put(quote(href), content=data, headers=headers)


def requests_under(sandbox: Any, method: str, prefix: str) -> int:
    """How many ``method`` requests under ``prefix`` the sandbox served (its own counters)."""
    counted = sandbox.stats()["requests"]
    return sum(n for key, n in counted.items() if key.startswith(f"{method} {prefix}"))


async def calendars(host: Any) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in ok(await host.call("nc_calendar_list_calendars"))["calendars"]}


async def wait_for_request(sandbox: Any, method: str, prefix: str, before: int) -> None:
    """Wait until the sandbox has received one more ``method`` request under ``prefix`` than ``before``
    (it counts a request on arrival, before an injected delay holds it). The sandbox runs in another
    process, so its counters are polled."""
    import anyio

    with anyio.fail_after(5):
        while requests_under(sandbox, method, prefix) <= before:  # noqa: ASYNC110 - nothing to wait on here
            await anyio.sleep(0.01)
