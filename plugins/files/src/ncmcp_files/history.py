"""Getting things back: the trash bin and file versions (Nextcloud's ``trashbin`` and ``versions`` DAV trees)."""

from __future__ import annotations

from typing import Any

from ncmcp import Conflict, InvalidArgument, NotFound, ToolContext, UpstreamError
from ncmcp.nextcloud import xml

from ncmcp_files import query, remote
from ncmcp_files.entries import entries, http_date_to_iso, quoted_etag, same_etag, to_int, unix_to_iso
from ncmcp_files.paths import FOLDER_MIME, normalize, segment, whole
from ncmcp_files.remote import display, space_of
from ncmcp_files.serialize import one_writer

TRASH_PROPS = ("nc:trashbin-filename", "nc:trashbin-original-location", "nc:trashbin-deletion-time", "d:resourcetype",
               "d:getcontentlength", "oc:size", "d:getcontenttype", "oc:fileid", "d:getetag")
VERSION_PROPS = ("d:getcontentlength", "d:getlastmodified", "d:getetag", "d:getcontenttype", "nc:version-label",
                 "nc:version-author")
TRASH_NAME = "The trash bin"


def _trash_item(space: Any, response: xml.DavResponse) -> dict[str, Any]:
    name = space.last_segment(response.href)
    is_dir = response.has("d:resourcetype", "d:collection")
    size = to_int(response.text("oc:size"))
    return {
        "trash_name": name,
        "name": response.text("nc:trashbin-filename") or name,
        "original_location": response.text("nc:trashbin-original-location") or "",
        "deleted": unix_to_iso(response.text("nc:trashbin-deletion-time")),
        "type": "directory" if is_dir else "file",
        "size": size if size is not None else (to_int(response.text("d:getcontentlength")) or 0),
        "mime_type": (response.text("d:getcontenttype") or (FOLDER_MIME if is_dir else "application/octet-stream")).split(";")[0],
        "file_id": to_int(response.text("oc:fileid")),
        "etag": response.text("d:getetag") or None,
    }


async def _trash_items(ctx: ToolContext, name: str = "", depth: str = "1") -> list[dict[str, Any]]:
    space = space_of(ctx)
    found = await remote.propfind(ctx, space.trash(name), TRASH_PROPS, depth=depth,
                                  what=f"'{name}' in the trash bin" if name else TRASH_NAME)
    root = f"/trashbin/{ctx.user_id}/trash"
    return [_trash_item(space, r) for r in found if r.props and not r.href.rstrip("/").endswith(root)]


async def list_trash(ctx: ToolContext, limit: int = 100, offset: int = 0) -> dict[str, Any]:
    limit, offset = whole(limit) or 1, whole(offset) or 0
    items = await _trash_items(ctx)
    items.sort(key=lambda i: (i["deleted"] or "", i["trash_name"]), reverse=True)
    end = offset + limit
    return {"items": items[offset:end], "total": len(items), "offset": offset, "next_offset": end if end < len(items) else None}


async def restore_from_trash(ctx: ToolContext, trash_name: str) -> dict[str, Any]:
    name = segment(trash_name, what="trash_name")
    space = space_of(ctx)
    items = await _trash_items(ctx, name, depth="0")
    if not items:
        raise NotFound(f"'{name}' is not in the trash bin")
    item = items[0]
    response = await ctx.http.request("MOVE", space.trash(name), headers={"Destination": space.trash_restore_url(name)},
                                      ok=(404,))
    if response.status_code == 404:
        raise NotFound(f"'{name}' is not in the trash bin (any more)")
    restored = await _find_restored(ctx, item)
    return {"restored": True, "trash_name": name, "original_location": item["original_location"], "entry": restored}


async def _find_restored(ctx: ToolContext, item: dict[str, Any]) -> dict[str, Any] | None:
    """Where the item landed: its original place, or (when that was taken or gone) wherever its
    file id is now, which Nextcloud keeps across trash and restore."""
    try:
        original = normalize(item["original_location"])
    except InvalidArgument:
        original = ""
    if original:
        found = await remote.stat_or_none(ctx, original)
        if found is not None and (item["file_id"] is None or found["file_id"] == item["file_id"]):
            return found
    if item["file_id"] is None:
        return None
    space = space_of(ctx)
    body = query.search_body(space.search_scope(""), query.Criteria(file_id=item["file_id"]), limit=1, order_by="name",
                             descending=False)
    response = await ctx.http.request("SEARCH", "/remote.php/dav/", headers={"Content-Type": "text/xml; charset=utf-8"},
                                      content=body, ok=(400, 405, 501))
    if response.status_code != 207:
        return None
    hits = [e for e in entries(space, await remote.multistatus(ctx, response)) if e["file_id"] == item["file_id"]]
    return hits[0] if hits else None


async def _file(ctx: ToolContext, path: str) -> tuple[str, dict[str, Any], int]:
    rel = normalize(path)
    info = await remote.stat(ctx, rel)
    if info["type"] != "file":
        raise InvalidArgument(f"{display(rel)} is a folder; only files have versions")
    if info["file_id"] is None:
        raise UpstreamError(f"Nextcloud did not report a file id for {display(rel)}")
    return rel, info, info["file_id"]


async def list_versions(ctx: ToolContext, path: str) -> dict[str, Any]:
    rel, info, file_id = await _file(ctx, path)
    space = space_of(ctx)
    found = await remote.propfind(ctx, space.versions(file_id), VERSION_PROPS, depth="1", what=f"Versions of {display(rel)}")
    versions = []
    for response in found:
        version = space.last_segment(response.href)
        if not response.props or version == str(file_id) or response.has("d:resourcetype", "d:collection"):
            continue
        versions.append({
            "version_id": version,
            "size": to_int(response.text("d:getcontentlength")) or 0,
            "modified": http_date_to_iso(response.text("d:getlastmodified")),
            "etag": response.text("d:getetag") or None,
            "mime_type": (response.text("d:getcontenttype") or info["mime_type"]).split(";")[0],
            "label": response.text("nc:version-label") or None,
            "author": response.text("nc:version-author") or None,
        })
    versions.sort(key=lambda v: (v["version_id"].isdigit(), int(v["version_id"]) if v["version_id"].isdigit() else 0,
                                 v["modified"] or ""), reverse=True)
    return {"entry": info, "versions": versions, "total": len(versions)}


async def restore_version(ctx: ToolContext, path: str, version_id: str, etag: str | None = None) -> dict[str, Any]:
    rel, _info, file_id = await _file(ctx, path)
    version = segment(version_id, what="version_id")
    space = space_of(ctx)
    async with one_writer(ctx, rel):
        if etag:
            # The restore is a MOVE inside the versions tree, which carries no precondition on the
            # file itself: compare right before it (writes through this server are queued meanwhile).
            current = await remote.stat(ctx, rel)
            if not same_etag(quoted_etag(etag), current["etag"]):
                raise Conflict(f"{display(rel)} changed since you read it; no version was restored",
                               current_etag=current["etag"], path=rel)
        response = await ctx.http.request("MOVE", space.versions(file_id, version),
                                          headers={"Destination": space.version_restore_url()}, ok=(404,))
    if response.status_code == 404:
        raise NotFound(f"{display(rel)} has no version {version!r}; list them with nc_files_list_versions")
    return {"entry": await remote.stat(ctx, rel), "restored_version": version}
