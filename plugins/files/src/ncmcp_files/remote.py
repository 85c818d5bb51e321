"""The WebDAV requests the tools share: properties of one path or a folder, folder creation, and
turning the server's refusals (404, 405, 409, 412) into messages that name the path."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
from ncmcp import Conflict, InvalidArgument, NotFound, ToolContext
from ncmcp.nextcloud import xml

from ncmcp_files.entries import ENTRY_PROPS, entries, entry
from ncmcp_files.paths import DavSpace, parent_of, shorten

XML = {"Content-Type": "application/xml; charset=utf-8"}
#: Multistatus bodies above this are parsed in a worker thread so a huge folder cannot stall the loop.
THREAD_PARSE_BYTES = 256 * 1024


def space_of(ctx: ToolContext) -> DavSpace:
    return DavSpace(user_id=ctx.user_id, base_url=ctx.http.base_url)


def display(rel: str) -> str:
    return f"'{shorten(rel)}'" if rel else "your root folder"


async def multistatus(ctx: ToolContext, response: httpx.Response) -> list[xml.DavResponse]:
    body = response.content
    if len(body) > THREAD_PARSE_BYTES:
        return await anyio.to_thread.run_sync(xml.parse_multistatus, body, ctx.http.base_url)
    return xml.parse_multistatus(body, ctx.http.base_url)


async def propfind(ctx: ToolContext, path: str, props: tuple[str, ...] | list[str], *, depth: str,
                   what: str) -> list[xml.DavResponse]:
    """PROPFIND ``path`` (an encoded request path); a 404 names ``what``."""
    response = await ctx.http.request("PROPFIND", path, headers={**XML, "Depth": depth},
                                      content=xml.propfind_body(props), ok=(404,))
    if response.status_code == 404:
        raise NotFound(f"{what} does not exist")
    return await multistatus(ctx, response)


async def stat(ctx: ToolContext, rel: str) -> dict[str, Any]:
    """The entry of one file or folder."""
    space = space_of(ctx)
    found = await propfind(ctx, space.files(rel), ENTRY_PROPS, depth="0", what=display(rel))
    for response in found:
        if response.props and space.rel_from_href(response.href) is not None:
            return entry(space, response, rel)
    raise NotFound(f"{display(rel)} does not exist")


async def stat_or_none(ctx: ToolContext, rel: str) -> dict[str, Any] | None:
    try:
        return await stat(ctx, rel)
    except NotFound:
        return None


async def listing(ctx: ToolContext, rel: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A folder's own entry and its direct children (``Depth: 1``)."""
    space = space_of(ctx)
    found = entries(space, await propfind(ctx, space.files(rel), ENTRY_PROPS, depth="1", what=display(rel)))
    own = next((e for e in found if e["path"] == rel), None)
    if own is None:
        raise NotFound(f"{display(rel)} does not exist")
    if own["type"] != "directory":
        raise InvalidArgument(f"{display(rel)} is a file, not a folder; use nc_files_get_file_info or nc_files_read_file")
    return own, [e for e in found if e["path"] != rel]


async def conflict(ctx: ToolContext, rel: str, message: str) -> Conflict:
    """A conflict carrying the ETag the path has now (``None`` when it no longer exists)."""
    current = await stat_or_none(ctx, rel)
    etag = current["etag"] if current else None
    return Conflict(message, current_etag=etag, path=rel, exists=current is not None)


async def missing_parent(ctx: ToolContext, rel: str) -> NotFound | InvalidArgument:
    """Why a 409 happened: the parent folder is missing, or it is a file."""
    parent = parent_of(rel)
    found = await stat_or_none(ctx, parent)
    if found is not None and found["type"] == "file":
        return InvalidArgument(f"{display(parent)} is a file, so nothing can be created inside it")
    return NotFound(f"The folder {display(parent)} does not exist (409); create it first or pass create_parents=true")


async def make_folder(ctx: ToolContext, rel: str) -> bool:
    """MKCOL one folder. True when created, False when a folder is already there."""
    space = space_of(ctx)
    response = await ctx.http.request("MKCOL", space.files(rel), ok=(405, 409))
    if response.status_code == 409:
        raise await missing_parent(ctx, rel)
    if response.status_code == 405:  # something exists at that name
        existing = await stat(ctx, rel)
        if existing["type"] != "directory":
            raise Conflict(f"A file already exists at {display(rel)}", current_etag=existing["etag"], path=rel)
        return False
    return True


async def make_parents(ctx: ToolContext, rel: str) -> None:
    """Create every missing folder above ``rel``, top down (like ``mkdir -p`` of its parent)."""
    parts = rel.split("/")[:-1]
    if not parts:
        return
    parent = await stat_or_none(ctx, "/".join(parts))
    if parent is not None:
        if parent["type"] != "directory":
            raise InvalidArgument(f"{display(parent['path'])} is a file, so nothing can be created inside it")
        return  # the usual case: one PROPFIND instead of a MKCOL per level
    for depth in range(1, len(parts) + 1):
        await make_folder(ctx, "/".join(parts[:depth]))
