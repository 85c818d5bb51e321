"""The Notes tools. Handlers receive the host's context; they never see tokens or check scopes."""

from __future__ import annotations

import random
import re
from typing import Any
from urllib.parse import urlsplit

import anyio
from ncmcp import Access, Blob, Conflict, InvalidArgument, NotFound, ResourceContent, ResourceSpec, ToolContext, ToolHints, ToolResult, ToolSpec

from ncmcp_notes import api

NOTE_FIELDS = {
    "id": {"type": "integer"},
    "title": {"type": "string"},
    "category": {"type": "string"},
    "favorite": {"type": "boolean"},
    "modified": {"type": "integer", "description": "Unix time of the last change"},
    "etag": {"type": "string", "description": "Pass back to update_note to detect concurrent changes"},
    "readonly": {"type": "boolean"},
}
NOTE = {"type": "object", "properties": {**NOTE_FIELDS, "content": {"type": "string"}}, "required": ["id", "title", "etag"]}
SUMMARY = {"type": "object", "properties": NOTE_FIELDS, "required": ["id", "title"]}
NOTE_ID = {"type": "integer", "minimum": 0, "description": "The note's id"}
APPEND_RETRIES = 12


def _obj(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required or [], "additionalProperties": False}


def _note(data: dict[str, Any]) -> dict[str, Any]:
    return {k: data[k] for k in (*NOTE_FIELDS, "content") if k in data}


def _summary(data: dict[str, Any]) -> dict[str, Any]:
    return {k: data[k] for k in NOTE_FIELDS if k in data}


async def list_notes(ctx: ToolContext, category: str | None = None, limit: int = 50, cursor: str | None = None) -> dict[str, Any]:
    notes, next_cursor = await api.list_chunk(ctx, category=category, limit=limit, cursor=cursor, exclude="content")
    return {"notes": [_summary(n) for n in notes], "next_cursor": next_cursor}


async def get_note(ctx: ToolContext, note_id: int) -> dict[str, Any]:
    return _note(await api.get_note(ctx, note_id))


def _snippet(content: str, query: str, width: int = 80) -> str:
    at = content.lower().find(query.lower())
    if at < 0:
        return content[:width].strip()
    start = max(0, at - width // 2)
    return ("…" if start else "") + content[start:start + width].strip() + ("…" if start + width < len(content) else "")


async def search_notes(ctx: ToolContext, query: str, limit: int = 20) -> dict[str, Any]:
    # One request through Nextcloud's unified search provider for notes, when the server has it.
    response = await ctx.http.request(
        "GET", "/ocs/v2.php/search/providers/notes/search",
        params={"term": query, "limit": limit, "format": "json"}, headers={"Accept": "application/json"}, ok=(404,),
    )
    if response.status_code != 404:
        entries = response.json()["ocs"]["data"].get("entries", [])
        results = []
        for entry in entries[:limit]:
            tail = urlsplit(entry.get("resourceUrl", "")).path.rstrip("/").rsplit("/", 1)[-1]
            if tail.isdigit():
                results.append({"id": int(tail), "title": entry.get("title", ""), "snippet": entry.get("subline", "")})
        return {"results": results, "method": "unified_search"}
    # No provider: scan the notes chunk by chunk, bounded so a huge account cannot stall the server.
    results: list[dict[str, Any]] = []
    cursor: str | None = None
    scanned = 0
    needle = query.lower()
    while scanned < int(ctx.settings.get("search_scan_max", "2000")):
        notes, cursor = await api.list_chunk(ctx, category=None, limit=200, cursor=cursor, exclude="")
        scanned += len(notes)
        for note in notes:
            if needle in note.get("title", "").lower() or needle in note.get("content", "").lower():
                results.append({"id": note["id"], "title": note["title"], "category": note.get("category", ""),
                                "snippet": _snippet(note.get("content", ""), query)})
        if not cursor or len(results) >= limit:
            break
    return {"results": results[:limit], "method": "scan"}


async def create_note(ctx: ToolContext, title: str, content: str = "", category: str = "", favorite: bool = False) -> dict[str, Any]:
    response = await ctx.http.request(
        "POST", f"{api.BASE}/notes", json_body={"title": title, "content": content, "category": category, "favorite": favorite}
    )
    return _note(response.json())


async def update_note(ctx: ToolContext, note_id: int, etag: str, title: str | None = None, content: str | None = None,
                      category: str | None = None, favorite: bool | None = None) -> dict[str, Any]:
    changes = {k: v for k, v in {"title": title, "content": content, "category": category, "favorite": favorite}.items() if v is not None}
    if not changes:
        raise InvalidArgument("Nothing to change: give at least one of title, content, category, favorite")
    return _note(await api.put_note(ctx, note_id, etag, changes))


async def append_content(ctx: ToolContext, note_id: int, content: str, separator: str = "\n") -> dict[str, Any]:
    """Read, then write conditionally; on a conflict re-read and retry, so concurrent appends all land."""
    for attempt in range(1, APPEND_RETRIES + 1):
        note = await api.get_note(ctx, note_id)
        current = note.get("content", "")
        joined = current + (separator if current else "") + content
        try:
            updated = await api.put_note(ctx, note_id, note["etag"], {"content": joined})
        except Conflict:
            # A plain loop rather than a retry library: the retry must re-read and re-merge, and the
            # random back-off keeps concurrent appenders from colliding in lockstep.
            ctx.log.info("append_conflict_retry", note_id=note_id, attempt=attempt)
            await anyio.sleep(random.uniform(0, 0.02 * attempt))
            continue
        return {**_note(updated), "attempts": attempt}
    raise Conflict(f"Note {note_id} kept changing; the text was not appended after {APPEND_RETRIES} attempts")


async def delete_note(ctx: ToolContext, note_id: int, etag: str | None = None) -> dict[str, Any]:
    if etag is not None:
        # The Notes API has no conditional DELETE; comparing first narrows the window to one request.
        note = await api.get_note(ctx, note_id)
        if api.quoted(note["etag"]) != api.quoted(etag):
            raise Conflict(f"Note {note_id} changed since it was read; not deleted", current_etag=note["etag"])
    response = await ctx.http.request("DELETE", f"{api.BASE}/notes/{note_id}", ok=(404,))
    if response.status_code == 404:
        raise NotFound(f"Note {note_id} does not exist")
    return {"deleted": True, "id": note_id}


async def list_categories(ctx: ToolContext) -> dict[str, Any]:
    counts: dict[str, int] = {}
    cursor: str | None = None
    while True:
        notes, cursor = await api.list_chunk(ctx, category=None, limit=500, cursor=cursor, exclude="content,etag,title,favorite,modified,readonly")
        for note in notes:
            counts[note.get("category", "")] = counts.get(note.get("category", ""), 0) + 1
        if not cursor:
            break
    return {"categories": [{"name": name, "notes": n} for name, n in sorted(counts.items())]}


_SAFE_PATH = re.compile(r"^[^\x00-\x1f]{1,512}$")


async def get_attachment(ctx: ToolContext, note_id: int, path: str) -> ToolResult:
    if not _SAFE_PATH.match(path) or ".." in path.split("/"):
        raise InvalidArgument("path must be the attachment path as written in the note, without '..'")
    response = await ctx.http.request("GET", f"{api.ATTACHMENTS}/{note_id}", params={"path": path}, ok=(404,))
    if response.status_code == 404:
        raise NotFound(f"Attachment {path!r} of note {note_id} not found")
    mime = response.headers.get("Content-Type", "application/octet-stream").split(";")[0]
    info = {"note_id": note_id, "path": path, "mime_type": mime, "size": len(response.content)}
    return ToolResult(structured=info, blobs=(Blob(data=response.content, mime_type=mime, uri=f"nc://notes/{note_id}/attachments/{path}"),))


async def read_note_resource(ctx: ToolContext, note_id: str) -> ResourceContent:
    if not note_id.isdigit():
        raise NotFound(f"No note {note_id!r}")
    note = await api.get_note(ctx, int(note_id))
    return ResourceContent(mime_type="text/markdown", text=note.get("content", ""))


LIMIT = {"type": "integer", "minimum": 1, "maximum": 500}
ETAG = {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "^[\\x21-\\x7e]+$",
        "description": "The etag from get_note/list_notes"}
OK = {"type": "object", "properties": {"deleted": {"type": "boolean"}, "id": {"type": "integer"}}, "required": ["deleted"]}
WRITE = ToolHints(read_only=False, destructive=False, idempotent=False)

TOOLS = [
    ToolSpec(name="nc_notes_list_notes", title="List notes", access=Access.READ, handler=list_notes,
             description="List the user's notes (without content), newest changes last, optionally in one category. "
                         "Returns next_cursor when more notes remain; pass it back as cursor.",
             input_schema=_obj({"category": {"type": "string", "maxLength": 1000}, "limit": {**LIMIT, "default": 50},
                                "cursor": {"type": "string", "maxLength": 200}}),
             output_schema={"type": "object", "properties": {"notes": {"type": "array", "items": SUMMARY},
                                                             "next_cursor": {"type": ["string", "null"]}}, "required": ["notes"]}),
    ToolSpec(name="nc_notes_get_note", title="Get a note", access=Access.READ, handler=get_note,
             description="Get one note with its content and etag.",
             input_schema=_obj({"note_id": NOTE_ID}, ["note_id"]), output_schema=NOTE),
    ToolSpec(name="nc_notes_search_notes", title="Search notes", access=Access.READ, handler=search_notes,
             description="Search notes by words in title or content. Returns id, title and a snippet for each match.",
             input_schema=_obj({"query": {"type": "string", "minLength": 1, "maxLength": 500}, "limit": {**LIMIT, "default": 20}}, ["query"]),
             output_schema={"type": "object", "properties": {"results": {"type": "array", "items": {"type": "object", "properties": {
                 "id": {"type": "integer"}, "title": {"type": "string"}, "category": {"type": "string"}, "snippet": {"type": "string"}},
                 "required": ["id", "title"]}}, "method": {"type": "string"}}, "required": ["results"]}),
    ToolSpec(name="nc_notes_create_note", title="Create a note", access=Access.WRITE, handler=create_note,
             description="Create a note. The title becomes the file name in Nextcloud; category is a folder path like 'Work/Plans'.",
             input_schema=_obj({"title": {"type": "string", "minLength": 1, "maxLength": 1000}, "content": {"type": "string"},
                                "category": {"type": "string", "maxLength": 1000}, "favorite": {"type": "boolean"}}, ["title"]),
             output_schema=NOTE, hints=WRITE),
    ToolSpec(name="nc_notes_update_note", title="Update a note", access=Access.WRITE, handler=update_note,
             description="Change a note's title, content, category or favourite flag. The etag from your last read is "
                         "required: if the note changed meanwhile, nothing is written and a conflict with the current etag is returned. "
                         "An empty string is a valid new content.",
             input_schema=_obj({"note_id": NOTE_ID, "etag": ETAG, "title": {"type": "string", "minLength": 1, "maxLength": 1000},
                                "content": {"type": "string"}, "category": {"type": "string", "maxLength": 1000},
                                "favorite": {"type": "boolean"}}, ["note_id", "etag"]),
             output_schema=NOTE, hints=ToolHints(read_only=False, destructive=True, idempotent=True)),
    ToolSpec(name="nc_notes_append_content", title="Append to a note", access=Access.WRITE, handler=append_content,
             description="Append text to the end of a note. Safe with concurrent edits: a conflicting change is re-read "
                         "and the text appended to the newest version.",
             input_schema=_obj({"note_id": NOTE_ID, "content": {"type": "string", "minLength": 1},
                                "separator": {"type": "string", "maxLength": 100, "default": "\n"}}, ["note_id", "content"]),
             output_schema={**NOTE, "properties": {**NOTE["properties"], "attempts": {"type": "integer"}}}, hints=WRITE),
    ToolSpec(name="nc_notes_delete_note", title="Delete a note", access=Access.WRITE, handler=delete_note,
             description="Delete a note. Give its etag to refuse the deletion if the note changed since you read it.",
             input_schema=_obj({"note_id": NOTE_ID, "etag": ETAG}, ["note_id"]), output_schema=OK,
             hints=ToolHints(read_only=False, destructive=True, idempotent=True)),
    ToolSpec(name="nc_notes_list_categories", title="List note categories", access=Access.READ, handler=list_categories,
             description="List the categories in use, with the number of notes in each ('' is no category).",
             input_schema=_obj({}), output_schema={"type": "object", "properties": {"categories": {"type": "array", "items": {
                 "type": "object", "properties": {"name": {"type": "string"}, "notes": {"type": "integer"}}, "required": ["name", "notes"]}}},
                 "required": ["categories"]}),
    ToolSpec(name="nc_notes_get_attachment", title="Get a note attachment", access=Access.READ, handler=get_attachment,
             description="Get a file attached to a note (the path as it appears in the note's Markdown, e.g. '.attachments.12/photo.png').",
             input_schema=_obj({"note_id": NOTE_ID, "path": {"type": "string", "minLength": 1, "maxLength": 512}}, ["note_id", "path"]),
             output_schema={"type": "object", "properties": {"note_id": {"type": "integer"}, "path": {"type": "string"},
                                                             "mime_type": {"type": "string"}, "size": {"type": "integer"}},
                            "required": ["note_id", "path", "mime_type", "size"]}),
]

RESOURCES = [
    ResourceSpec(uri_template="nc://notes/{note_id}", name="note", description="A note's content as Markdown.",
                 mime_type="text/markdown", handler=read_note_resource),
]
