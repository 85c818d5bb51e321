"""What a file or folder looks like to the caller, built from the WebDAV properties Nextcloud sends."""

from __future__ import annotations

import email.utils
import re
from datetime import UTC, datetime
from typing import Any

from ncmcp import InvalidArgument
from ncmcp.nextcloud import xml

from ncmcp_files.paths import FOLDER_MIME, DavSpace, name_of, resource_uri

#: Requested explicitly: a bare PROPFIND returns neither ids, permissions, favourites nor folder sizes.
ENTRY_PROPS = (
    "d:resourcetype", "d:getcontentlength", "d:getlastmodified", "d:getcontenttype", "d:getetag",
    "oc:fileid", "oc:permissions", "oc:favorite", "oc:size",
)

ENTRY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "path": {"type": "string", "description": "Relative to the user's root; '' is the root"},
        "name": {"type": "string"},
        "type": {"type": "string", "enum": ["file", "directory"]},
        "size": {"type": "integer", "description": "Bytes (for folders: everything inside)"},
        "modified": {"type": ["string", "null"], "description": "Last change, ISO 8601 UTC"},
        "mime_type": {"type": "string"},
        "etag": {"type": ["string", "null"], "description": "Pass back to write/delete/move to detect concurrent changes"},
        "file_id": {"type": ["integer", "null"]},
        "favorite": {"type": "boolean"},
        "permissions": {"type": "string", "description": "Nextcloud letters: G read, W write, C create file, "
                        "K create folder, D delete, N rename, V move, R share, S shared, M mounted"},
        "uri": {"type": "string", "description": "MCP resource URI (nc://files/...)"},
        "href": {"type": "string", "description": "The WebDAV href (percent-encoded)"},
    },
    "required": ["path", "name", "type", "size", "modified", "mime_type", "etag", "file_id", "favorite", "permissions"],
}

# ASCII only: RFC 7232 also allows obs-text, but header values travel as ASCII here and no server
# that ncmcp talks to emits anything else.
_ETAG = re.compile(r'^(W/)?"[\x21\x23-\x7e]*"$')


def http_date_to_iso(value: str | None) -> str | None:
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def unix_to_iso(value: str | int | None) -> str | None:
    try:
        return datetime.fromtimestamp(int(value), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def to_int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None  # type: ignore[arg-type]
    except ValueError:
        return None


def quoted_etag(etag: str, *, what: str = "etag") -> str:
    """An ETag as HTTP wants it (``"…"``); accepts the unquoted form too. Refuses anything that
    could break out of a header (quotes inside, control characters)."""
    value = etag.strip()
    if not value.startswith(('"', 'W/"')):
        value = f'"{value}"'
    if not _ETAG.match(value) or len(value) > 256:
        raise InvalidArgument(f"{what} is not a valid ETag; pass the etag exactly as a previous result returned it")
    return value


def same_etag(a: str | None, b: str | None) -> bool:
    """Strong comparison after normalising quotes (a weak ETag never matches)."""
    if not a or not b:
        return False
    try:
        qa, qb = quoted_etag(a), quoted_etag(b)
    except InvalidArgument:
        return False
    return qa == qb and not qa.startswith("W/")


def entry(space: DavSpace, response: xml.DavResponse, rel: str) -> dict[str, Any]:
    """One file or folder as the tools return it."""
    is_dir = response.has("d:resourcetype", "d:collection")
    size = to_int(response.text("oc:size"))
    if size is None:
        size = to_int(response.text("d:getcontentlength")) or 0
    mime = response.text("d:getcontenttype") or (FOLDER_MIME if is_dir else "application/octet-stream")
    favorite = (response.text("oc:favorite") or "0").strip() in ("1", "true")
    return {
        "path": rel,
        "name": name_of(rel),
        "type": "directory" if is_dir else "file",
        "size": size,
        "modified": http_date_to_iso(response.text("d:getlastmodified")),
        "mime_type": mime.split(";")[0].strip(),
        "etag": response.text("d:getetag") or None,
        "file_id": to_int(response.text("oc:fileid")),
        "favorite": favorite,
        "permissions": response.text("oc:permissions") or "",
        "uri": resource_uri(rel),
        "href": response.raw_href,
    }


def entries(space: DavSpace, responses: list[xml.DavResponse]) -> list[dict[str, Any]]:
    """Entries for every response under the user's files root (others are ignored)."""
    out = []
    for response in responses:
        rel = space.rel_from_href(response.href)
        if rel is not None and response.props:
            out.append(entry(space, response, rel))
    return out
