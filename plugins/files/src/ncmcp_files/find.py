"""Finding files on the server: WebDAV SEARCH, and favourites (REPORT ``oc:filter-files``, PROPPATCH)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from ncmcp import InvalidArgument, NotFound, ToolContext, UpstreamError
from ncmcp.nextcloud import xml

from ncmcp_files import query, remote
from ncmcp_files.entries import entries
from ncmcp_files.paths import is_within, normalize, whole
from ncmcp_files.remote import XML, display, space_of


def _when(value: str | None, what: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        try:
            parsed = datetime.combine(date.fromisoformat(value.strip()), datetime.min.time())
        except ValueError:
            raise InvalidArgument(f"{what} must be an ISO 8601 date or date-time, "
                                  "e.g. 2024-05-01 or 2024-05-01T12:00:00Z") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


async def _scope(ctx: ToolContext, folder: str) -> str:
    rel = normalize(folder, what="folder")
    if rel:
        info = await remote.stat(ctx, rel)
        if info["type"] != "directory":
            raise InvalidArgument(f"folder {display(rel)} is a file; search within a folder")
    return rel


async def run_search(ctx: ToolContext, criteria: query.Criteria, *, folder: str, limit: int, order_by: str,
                     descending: bool) -> dict[str, Any]:
    limit = whole(limit) or 1
    rel = await _scope(ctx, folder)
    space = space_of(ctx)
    body = query.search_body(space.search_scope(rel), criteria, limit=limit, order_by=order_by, descending=descending)
    response = await ctx.http.request("SEARCH", "/remote.php/dav/", headers={"Content-Type": "text/xml; charset=utf-8"},
                                      content=body, ok=(405, 501))
    if response.status_code in (405, 501):
        raise UpstreamError("This Nextcloud does not support WebDAV SEARCH (RFC 5323)")
    returned = entries(space, await remote.multistatus(ctx, response))
    found = [e for e in returned if e["path"] != rel and is_within(e["path"], rel)]
    if criteria.name:
        # The server's LIKE is a superset (see query.like_pattern); keep exact matches only.
        matcher = query.name_matcher(criteria.name)
        found = [e for e in found if matcher.fullmatch(e["name"])]
    return {"results": found[:limit], "count": min(len(found), limit), "folder": rel,
            "may_have_more": len(returned) >= limit}


async def search(ctx: ToolContext, name: str | None = None, mime_type: str | None = None, type: str = "any",
                 min_size: int | None = None, max_size: int | None = None, modified_after: str | None = None,
                 modified_before: str | None = None, favorites_only: bool = False, folder: str = "", limit: int = 50,
                 order_by: str = "modified", descending: bool = True) -> dict[str, Any]:
    criteria = query.Criteria(name=name or None, mime_type=mime_type or None, kind=type, min_size=whole(min_size),
                              max_size=whole(max_size), modified_after=_when(modified_after, "modified_after"),
                              modified_before=_when(modified_before, "modified_before"), favorites_only=favorites_only)
    return await run_search(ctx, criteria, folder=folder, limit=limit, order_by=order_by, descending=descending)


async def find_by_name(ctx: ToolContext, pattern: str, folder: str = "", limit: int = 50) -> dict[str, Any]:
    return await run_search(ctx, query.Criteria(name=pattern), folder=folder, limit=limit, order_by="name", descending=False)


async def find_by_type(ctx: ToolContext, mime_type: str, folder: str = "", limit: int = 50) -> dict[str, Any]:
    return await run_search(ctx, query.Criteria(mime_type=mime_type), folder=folder, limit=limit, order_by="modified",
                            descending=True)


async def list_favorites(ctx: ToolContext, folder: str = "", limit: int = 100, offset: int = 0) -> dict[str, Any]:
    limit, offset = whole(limit) or 1, whole(offset) or 0
    rel = await _scope(ctx, folder)
    space = space_of(ctx)
    response = await ctx.http.request("REPORT", space.files(rel), headers={**XML, "Depth": "infinity"},
                                      content=query.favorites_body())
    found = [e for e in entries(space, await remote.multistatus(ctx, response)) if is_within(e["path"], rel) and e["favorite"]]
    found.sort(key=lambda e: e["path"].casefold())
    end = offset + limit
    return {"favorites": found[offset:end], "total": len(found), "offset": offset,
            "next_offset": end if end < len(found) else None}


async def set_favorite(ctx: ToolContext, path: str, favorite: bool = True) -> dict[str, Any]:
    rel = normalize(path)
    if not rel:
        raise InvalidArgument("Your root folder cannot be a favourite")
    space = space_of(ctx)
    response = await ctx.http.request("PROPPATCH", space.files(rel), headers=XML, content=query.favorite_patch(favorite),
                                      ok=(404,))
    if response.status_code == 404:
        raise NotFound(f"{display(rel)} does not exist")
    if response.status_code == 207:
        for item in await remote.multistatus(ctx, response):
            if xml.qname("oc:favorite") in item.missing:
                raise UpstreamError(f"Nextcloud did not change the favourite flag of {display(rel)}")
    return await remote.stat(ctx, rel)
