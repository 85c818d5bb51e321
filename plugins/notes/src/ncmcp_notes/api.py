"""Calls to the Notes REST API v1 (``/index.php/apps/notes/api/v1``) through the host's client."""

from __future__ import annotations

from typing import Any

from ncmcp import Conflict, NotFound, ToolContext

BASE = "/index.php/apps/notes/api/v1"
ATTACHMENTS = "/index.php/apps/notes/api/v1.4/attachment"


def quoted(etag: str) -> str:
    """The Notes API wants the quoted form of the note's ``etag`` field in ``If-Match``."""
    etag = etag.strip()
    return etag if etag.startswith('"') else f'"{etag}"'


async def get_note(ctx: ToolContext, note_id: int) -> dict[str, Any]:
    response = await ctx.http.request("GET", f"{BASE}/notes/{note_id}", ok=(404,))
    if response.status_code == 404:
        raise NotFound(f"Note {note_id} does not exist")
    return response.json()


async def put_note(ctx: ToolContext, note_id: int, etag: str, changes: dict[str, Any]) -> dict[str, Any]:
    """A conditional update: the note is written only if its ETag is still ``etag``."""
    response = await ctx.http.request(
        "PUT", f"{BASE}/notes/{note_id}", json_body=changes, headers={"If-Match": quoted(etag)}, ok=(404, 412)
    )
    if response.status_code == 404:
        raise NotFound(f"Note {note_id} does not exist")
    if response.status_code == 412:
        current = response.json()
        raise Conflict(
            f"Note {note_id} changed since it was read; re-read it and apply the change to the current version",
            current_etag=current.get("etag"),
        )
    return response.json()


async def list_chunk(ctx: ToolContext, *, category: str | None, limit: int, cursor: str | None, exclude: str) -> tuple[list[dict[str, Any]], str | None]:
    params: dict[str, Any] = {"exclude": exclude, "chunkSize": limit}
    if category is not None:
        params["category"] = category
    if cursor:
        params["chunkCursor"] = cursor
    response = await ctx.http.request("GET", f"{BASE}/notes", params=params)
    # The last chunk may carry ``{id}`` stubs for pruned notes: they are not notes to show.
    notes = [n for n in response.json() if len(n) > 1]
    return notes, response.headers.get("X-Notes-Chunk-Cursor")
