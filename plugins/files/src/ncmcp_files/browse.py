"""Reading: folder listings, file information, file content and the ``nc://files/{path}`` resource."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ncmcp import Blob, Conflict, InvalidArgument, ResourceContent, ToolContext, ToolResult

from ncmcp_files import download, remote
from ncmcp_files.limits import limits
from ncmcp_files.paths import from_resource_path, normalize, resource_uri, whole
from ncmcp_files.remote import display, space_of

SORT_KEYS = {
    "name": lambda e: (e["name"].casefold(), e["name"]),
    "modified": lambda e: (e["modified"] or "", e["name"].casefold()),
    "size": lambda e: (e["size"], e["name"].casefold()),
    "type": lambda e: (e["mime_type"], e["name"].casefold()),
}
READ_ATTEMPTS = 3


async def list_directory(ctx: ToolContext, path: str = "", limit: int = 100, offset: int = 0, sort_by: str = "name",
                         descending: bool = False, folders_first: bool = True) -> dict[str, Any]:
    rel = normalize(path)
    limit, offset = whole(limit) or 1, whole(offset) or 0
    own, children = await remote.listing(ctx, rel)
    children.sort(key=SORT_KEYS[sort_by], reverse=descending)
    if folders_first:
        children.sort(key=lambda e: e["type"] != "directory")  # stable: keeps the order within each group
    end = offset + limit
    return {"directory": own, "entries": children[offset:end], "total": len(children), "offset": offset,
            "next_offset": end if end < len(children) else None}


async def get_file_info(ctx: ToolContext, path: str) -> dict[str, Any]:
    return await remote.stat(ctx, normalize(path))


@dataclass(slots=True)
class Content:
    info: dict[str, Any]
    data: bytes
    offset: int
    text: str | None
    charset: str | None
    mime_type: str


async def read_content(ctx: ToolContext, rel: str, *, offset: int | None, length: int | None, mode: str) -> Content:
    """The bytes of a file (or of one range) and, when they are text, the decoded text."""
    if not rel:
        raise InvalidArgument("path must name a file, not your root folder")
    limit = limits(ctx).max_read
    if length is not None and length > limit:
        raise InvalidArgument(f"length may be at most {limit} bytes (the read limit); read larger files in several ranges")
    for _attempt in range(READ_ATTEMPTS):
        info = await remote.stat(ctx, rel)
        if info["type"] == "directory":
            raise InvalidArgument(f"{display(rel)} is a folder; use nc_files_list_directory")
        size = info["size"]
        start = offset or 0
        if offset is None and length is None and size > limit:
            raise InvalidArgument(
                f"{display(rel)} is {size} bytes, above the read limit of {limit} bytes. Read it in parts with offset "
                f"and length, e.g. offset=0 and length={limit}, then offset={limit} …")
        if start > size:
            raise InvalidArgument(f"offset {start} is beyond the end of {display(rel)} ({size} bytes)")
        want = min(length if length is not None else limit, size - start)
        if want == 0:
            textual = mode == "text" or (mode == "auto" and download.is_text_type(info["mime_type"]))
            return Content(info, b"", start, "" if textual else None, None, info["mime_type"])
        try:
            got = await download.fetch(ctx, space_of(ctx).files(rel), offset=start, length=want, etag=info["etag"],
                                       ranged=start > 0 or want < size)
        except Conflict:
            ctx.log.info("files_read_retry", reason="changed while reading")
            continue  # it changed between the PROPFIND and the GET: describe and read the new version
        break
    else:
        raise Conflict(f"{display(rel)} kept changing while it was read; try again later")
    partial = got.offset > 0 or len(got.data) < size
    text = charset = None
    looks_textual = download.is_text_type(info["mime_type"]) or download.is_text_type(got.content_type)
    if mode == "text" or (mode == "auto" and looks_textual):
        decoded = await download.decode_text(got.data, got.charset, partial=partial)
        if decoded is None and mode == "text":
            raise InvalidArgument(f"{display(rel)} is not text in any charset that could be recognised; "
                                  "read it with mode='binary'")
        if decoded is not None:
            text, charset = decoded
    return Content(info, got.data, got.offset, text, charset, info["mime_type"])


async def read_file(ctx: ToolContext, path: str, offset: int | None = None, length: int | None = None,
                    mode: str = "auto") -> dict[str, Any] | ToolResult:
    rel = normalize(path)
    content = await read_content(ctx, rel, offset=whole(offset), length=whole(length), mode=mode)
    size = content.info["size"]
    end = content.offset + len(content.data)
    result = {
        "entry": content.info,
        "encoding": "text" if content.text is not None else "binary",
        "text": content.text,
        "charset": content.charset,
        "offset": content.offset,
        "length": len(content.data),
        "size": size,
        "next_offset": end if end < size else None,
    }
    if content.text is not None:
        return result
    blob = Blob(data=content.data, mime_type=content.mime_type, uri=resource_uri(rel))
    return ToolResult(structured=result, blobs=(blob,))


async def read_resource(ctx: ToolContext, path: str) -> ResourceContent:
    """``nc://files/{path}``: a file's content, or a folder's listing as JSON."""
    rel = from_resource_path(path)
    info = await remote.stat(ctx, rel)
    if info["type"] == "directory":
        listing = await list_directory(ctx, rel, limit=1000)
        return ResourceContent(mime_type="application/json", text=json.dumps(listing, ensure_ascii=False))
    content = await read_content(ctx, rel, offset=None, length=None, mode="auto")
    if content.text is not None:
        return ResourceContent(mime_type=content.mime_type, text=content.text)
    return ResourceContent(mime_type=content.mime_type, data=content.data)
