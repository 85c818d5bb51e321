"""The Notes app REST API v1 (Notes 4.x, API 1.4) as published, in memory.

Follows ``docs/api/v1.md`` of nextcloud/notes: quoted ETags and ``If-Match`` with 412 carrying the
current note, ``exclude``, ``category``, ``pruneBefore``, chunked listing with
``X-Notes-Chunk-Cursor``/``X-Notes-Chunk-Pending``, list ``ETag``/``If-None-Match`` → 304, settings,
attachments, ``{"errorType": ...}`` error bodies, POST answering 200.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

API_VERSIONS = "0.2, 1.3, 1.4"
NOTES_APP_VERSION = "4.11.0"
_ids = itertools.count(1000)  # note ids are file ids: unique across users
_FORBIDDEN_TITLE = re.compile(r'[*|/\\:"<>?\x00-\x1f]')


@dataclass(slots=True)
class Note:
    id: int
    title: str
    content: str
    category: str
    favorite: bool
    modified: int
    readonly: bool = False
    attachments: dict[str, tuple[bytes, str]] = field(default_factory=dict)

    @property
    def etag(self) -> str:
        raw = json.dumps([self.title, self.content, self.category, self.favorite, self.modified], ensure_ascii=False)
        return hashlib.md5(raw.encode()).hexdigest()

    def as_json(self, exclude: set[str] = frozenset()) -> dict[str, Any]:  # type: ignore[assignment]
        data = {"id": self.id, "etag": self.etag, "readonly": self.readonly, "modified": self.modified,
                "title": self.title, "category": self.category, "favorite": self.favorite, "content": self.content}
        return {k: v for k, v in data.items() if k == "id" or k not in exclude}


@dataclass(slots=True)
class NotesStore:
    notes: dict[str, dict[int, Note]] = field(default_factory=dict)
    settings: dict[str, dict[str, str]] = field(default_factory=dict)

    def of(self, user: str) -> dict[int, Note]:
        return self.notes.setdefault(user, {})


def _error(status: int, error_type: str = "Exception") -> JSONResponse:
    return JSONResponse({"errorType": error_type}, status_code=status, headers={"X-Notes-API-Versions": API_VERSIONS})


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(data, ensure_ascii=False).encode()
    return Response(body, status_code=status, media_type="application/json",
                    headers={"X-Notes-API-Versions": API_VERSIONS, **(headers or {})})


def _sanitise_title(title: str, content: str) -> str:
    title = _FORBIDDEN_TITLE.sub("", title or "").strip()
    if not title:
        first = next((line for line in content.splitlines() if line.strip()), "")
        title = _FORBIDDEN_TITLE.sub("", first.lstrip("# ")).strip()[:100] or "New note"
    return title


def _unique_title(notes: dict[int, Note], title: str, category: str, skip: int | None = None) -> str:
    taken = {n.title for n in notes.values() if n.category == category and n.id != skip}
    if title not in taken:
        return title
    for i in itertools.count(1):
        candidate = f"{title} ({i})"
        if candidate not in taken:
            return candidate
    raise AssertionError("unreachable")


def _etag_matches(header: str, etag: str) -> bool:
    wanted = [part.strip() for part in header.split(",")]
    return "*" in wanted or f'"{etag}"' in wanted


def build_notes_routes(store: NotesStore) -> list[Route]:
    def user_of(request: Request) -> str:
        return request.scope["sandbox.user"]

    async def list_notes(request: Request) -> Response:
        notes = store.of(user_of(request))
        q = request.query_params
        exclude = {f for f in q.get("exclude", "").split(",") if f}
        prune_before = int(q.get("pruneBefore", "0") or 0)
        chunk_size = int(q.get("chunkSize", "0") or 0)
        selected = [n for n in notes.values() if "category" not in q or n.category == q["category"]]
        selected.sort(key=lambda n: (n.modified, n.id))
        full = [n for n in selected if n.modified >= prune_before] if prune_before else selected
        pruned = [n for n in selected if n not in full]
        start = 0
        cursor = q.get("chunkCursor")
        if cursor:
            try:
                _, last_mod, last_id = (int(x) for x in cursor.split("-"))
            except ValueError:
                return _error(400)
            start = next((i for i, n in enumerate(full) if (n.modified, n.id) > (last_mod, last_id)), len(full))
        end = len(full) if chunk_size <= 0 else min(len(full), start + chunk_size)
        chunk = full[start:end]
        body: list[dict[str, Any]] = [n.as_json(exclude) for n in chunk]
        headers: dict[str, str] = {}
        if end < len(full):
            last = chunk[-1]
            headers["X-Notes-Chunk-Cursor"] = f"{int(time.time())}-{last.modified}-{last.id}"
            headers["X-Notes-Chunk-Pending"] = str(len(full) - end)
        else:
            body += [{"id": n.id} for n in pruned]  # stubs only on the last chunk
        raw = json.dumps(body, ensure_ascii=False).encode()
        etag = f'"{hashlib.md5(raw).hexdigest()}"'
        if request.headers.get("If-None-Match") == etag:
            return Response(status_code=304, headers={"ETag": etag})
        return Response(raw, media_type="application/json",
                        headers={"ETag": etag, "X-Notes-API-Versions": API_VERSIONS, **headers})

    def find(request: Request) -> Note | None:
        return store.of(user_of(request)).get(int(request.path_params["note_id"]))

    async def get_note(request: Request) -> Response:
        note = find(request)
        if note is None:
            return _error(404)
        if request.headers.get("If-None-Match") == f'"{note.etag}"':
            return Response(status_code=304, headers={"ETag": f'"{note.etag}"'})
        exclude = {f for f in request.query_params.get("exclude", "").split(",") if f}
        return _json(note.as_json(exclude), headers={"ETag": f'"{note.etag}"'})

    async def create_note(request: Request) -> Response:
        try:
            data = await request.json()
        except ValueError:
            return _error(400)
        notes = store.of(user_of(request))
        content = str(data.get("content", ""))
        category = str(data.get("category", "")).strip("/")
        title = _unique_title(notes, _sanitise_title(str(data.get("title", "")), content), category)
        note = Note(id=next(_ids), title=title, content=content, category=category,
                    favorite=bool(data.get("favorite", False)), modified=int(data.get("modified") or time.time()))
        notes[note.id] = note
        return _json(note.as_json(), headers={"ETag": f'"{note.etag}"'})

    async def update_note(request: Request) -> Response:
        # Read the body first: from the If-Match check to the write there must be no await, or two
        # concurrent writers could both pass the check (a lost update in the fake itself).
        try:
            data = await request.json()
        except ValueError:
            return _error(400)
        note = find(request)
        if note is None:
            return _error(404)
        if_match = request.headers.get("If-Match")
        if if_match is not None and not _etag_matches(if_match, note.etag):
            return _json(note.as_json(), status=412, headers={"ETag": f'"{note.etag}"'})
        if note.readonly:
            return _error(403)
        notes = store.of(user_of(request))
        if "content" in data:
            note.content = str(data["content"])
        if "category" in data:
            note.category = str(data["category"]).strip("/")
        if "title" in data:
            note.title = _unique_title(notes, _sanitise_title(str(data["title"]), note.content), note.category, skip=note.id)
        if "favorite" in data:
            note.favorite = bool(data["favorite"])
        # Like a file mtime, the new value is "now", but it must move even within the same second.
        note.modified = max(int(data.get("modified") or time.time()), note.modified + 1) if "modified" not in data else int(data["modified"])
        return _json(note.as_json(), headers={"ETag": f'"{note.etag}"'})

    async def delete_note(request: Request) -> Response:
        note = find(request)
        if note is None:
            return _error(404)
        if note.readonly:
            return _error(403)
        del store.of(user_of(request))[note.id]
        return _json([])

    async def settings(request: Request) -> Response:
        current = store.settings.setdefault(user_of(request), {"notesPath": "Notes", "fileSuffix": ".txt", "noteMode": "edit"})
        if request.method == "PUT":
            data = await request.json()
            defaults = {"notesPath": "Notes", "fileSuffix": ".txt", "noteMode": "edit"}
            for key in defaults:
                if key in data:
                    current[key] = str(data[key]) or defaults[key]
            if current["fileSuffix"] not in (".txt", ".md"):
                current["fileSuffix"] = ".txt"
        return _json(current)

    async def attachment(request: Request) -> Response:
        note = find(request)
        if note is None:
            return _error(404)
        if request.method == "POST":
            form = await request.form()
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                return _error(400)
            data = await upload.read()
            ext = (upload.filename or "").rsplit(".", 1)[-1] if "." in (upload.filename or "") else "bin"
            name = f"{hashlib.md5(data).hexdigest()}.{ext}"
            note.attachments[f".attachments.{note.id}/{name}"] = (data, upload.content_type or "application/octet-stream")
            return _json({"filename": name})
        found = note.attachments.get(request.query_params.get("path", ""))
        if found is None:
            return _error(404)
        return Response(found[0], media_type=found[1])

    async def unknown(request: Request) -> Response:
        return _error(400)

    base = "/index.php/apps/notes/api/v1"
    return [
        Route(f"{base}/notes", list_notes, methods=["GET"]),
        Route(f"{base}/notes", create_note, methods=["POST"]),
        Route(base + "/notes/{note_id:int}", get_note, methods=["GET"]),
        Route(base + "/notes/{note_id:int}", update_note, methods=["PUT"]),
        Route(base + "/notes/{note_id:int}", delete_note, methods=["DELETE"]),
        Route(f"{base}/settings", settings, methods=["GET", "PUT"]),
        Route("/index.php/apps/notes/api/v1.4/attachment/{note_id:int}", attachment, methods=["GET", "POST"]),
        Route("/index.php/apps/notes/api/{rest:path}", unknown),
    ]


def search_notes(store: NotesStore, user: str, term: str, base_url: str) -> list[dict[str, Any]]:
    """The ``notes`` unified-search provider: every match at once, newest first."""
    needle = term.lower()
    found = [n for n in store.of(user).values() if needle in n.title.lower() or needle in n.content.lower()]
    found.sort(key=lambda n: n.modified, reverse=True)
    entries = []
    for note in found:
        at = note.content.lower().find(needle)
        excerpt = note.content[max(0, at - 20):at + 60].strip() if at >= 0 else ""
        entries.append({"thumbnailUrl": "", "title": note.title, "subline": excerpt or note.category,
                        "resourceUrl": f"{base_url}/index.php/apps/notes/note/{note.id}", "icon": "icon-notes-trans",
                        "rounded": False, "attributes": {}})
    return entries
