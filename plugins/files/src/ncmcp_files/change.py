"""Changing files: write, create folders, delete (to the trash bin), move and copy.

Nothing is replaced unless the caller asked for it: by the version's etag (checked by the server
in the same request) or by an explicit ``overwrite``.
"""

from __future__ import annotations

from typing import Any

import anyio
from ncmcp import Conflict, InvalidArgument, NotFound, ToolContext, ToolError

from ncmcp_files import remote, upload
from ncmcp_files.entries import quoted_etag, same_etag
from ncmcp_files.limits import limits
from ncmcp_files.paths import is_within, normalize, whole
from ncmcp_files.payload import Payload
from ncmcp_files.remote import display, space_of
from ncmcp_files.serialize import one_writer
from ncmcp_files.upload import Precondition


async def _written(ctx: ToolContext, rel: str, etag: str | None) -> dict[str, Any]:
    info = await remote.stat(ctx, rel)
    if etag:
        # The ETag of the write response is the version this call wrote, even if another writer
        # has already replaced it: passing it back must not overwrite that writer's change.
        info["etag"] = etag
    return info


async def write_file(ctx: ToolContext, path: str, content: str = "", encoding: str = "text", etag: str | None = None,
                     overwrite: bool = False, create_parents: bool = False, upload_id: str | None = None,
                     final: bool = True, offset: int | None = None, total_size: int | None = None,
                     cancel: bool = False) -> dict[str, Any]:
    rel = normalize(path)
    offset, total_size = whole(offset), whole(total_size)
    if not rel:
        raise InvalidArgument("path must name a file, not your root folder")
    if cancel:
        if not upload_id:
            raise InvalidArgument("cancel needs the upload_id of the upload to discard")
        removed = await upload.cancel(ctx, upload.parse_upload_id(upload_id).folder)
        return _result("cancelled" if removed else "not_found", rel, upload_id=upload_id)
    lim = limits(ctx)
    pre = Precondition(etag=quoted_etag(etag) if etag else None, overwrite=overwrite)
    payload = Payload.from_argument(content, encoding)
    if payload.size > lim.max_write:
        raise InvalidArgument(f"content is {payload.size} bytes; one call takes at most {lim.max_write}. Send it in "
                              "pieces: final=false for each piece, then final=true with the upload_id returned")
    if create_parents:
        await remote.make_parents(ctx, rel)

    if upload_id is None and final:
        if total_size is not None and total_size != payload.size:
            raise InvalidArgument(f"content is {payload.size} bytes but total_size says {total_size}")
        if payload.size <= lim.chunk_size:
            created, new_etag = await upload.put(ctx, rel, payload.data(), pre)
            return _result("written", rel, entry=await _written(ctx, rel, new_etag), created=created,
                           size=payload.size, chunked=False)
        return await _chunked_in_one_call(ctx, rel, payload, pre, lim.chunk_size)

    # An upload in pieces, one call per piece: each piece becomes chunks of the same upload folder.
    if upload_id is None:
        if offset:
            raise InvalidArgument("The first piece starts at offset 0; pass upload_id to continue an upload")
        await pre.check_now(ctx, rel)  # fail before the caller sends megabytes, not after
        folder = await upload.start(ctx, rel)
        try:
            sent = await upload.send(ctx, rel, folder, payload, after=0, chunk_size=lim.chunk_size, total=total_size)
        except BaseException:
            await _discard(ctx, folder)  # the caller never learnt this upload's id
            raise
        state = upload.Progress(folder, sent, payload.size)
    else:
        state = await upload.progress(ctx, upload.parse_upload_id(upload_id))
        if offset is not None and offset != state.size:
            raise InvalidArgument(f"The upload holds {state.size} bytes, so the next piece starts at offset {state.size}, "
                                  f"not {offset}; resend from there", upload_id=state.upload_id, bytes_received=state.size)
        if payload.size:
            sent = await upload.send(ctx, rel, state.folder, payload, after=state.chunks, chunk_size=lim.chunk_size,
                                     total=total_size, done_before=state.size)
            state = upload.Progress(state.folder, state.chunks + sent, state.size + payload.size)
    if not final:
        return _result("uploading", rel, upload_id=state.upload_id, size=state.size, chunked=True)
    if total_size is not None and total_size != state.size:
        raise InvalidArgument(f"The upload holds {state.size} bytes but total_size says {total_size}; send the missing "
                              "pieces (or cancel)", upload_id=state.upload_id, bytes_received=state.size)
    if state.size == 0:
        await upload.cancel(ctx, state.folder)
        created, new_etag = await upload.put(ctx, rel, b"", pre)
    else:
        try:
            created, new_etag = await upload.finish(ctx, rel, state.folder, pre, state.size)
        except ToolError as exc:
            # The pieces stay on the server: the caller can finish again (e.g. with the current etag).
            exc.details.setdefault("upload_id", state.upload_id)
            raise
    return _result("written", rel, entry=await _written(ctx, rel, new_etag), created=created, size=state.size,
                   chunked=True)


async def _chunked_in_one_call(ctx: ToolContext, rel: str, payload: Payload, pre: Precondition,
                               chunk_size: int) -> dict[str, Any]:
    await pre.check_now(ctx, rel)
    upload_id = await upload.start(ctx, rel)
    try:
        await upload.send(ctx, rel, upload_id, payload, after=0, chunk_size=chunk_size, total=payload.size)
        created, new_etag = await upload.finish(ctx, rel, upload_id, pre, payload.size)
    except BaseException:
        await _discard(ctx, upload_id)
        raise
    return _result("written", rel, entry=await _written(ctx, rel, new_etag), created=created, size=payload.size, chunked=True)


async def _discard(ctx: ToolContext, upload_id: str) -> None:
    """Best-effort removal of an upload nobody can finish, even while the call is being cancelled."""
    with anyio.CancelScope(shield=True):
        try:
            await upload.cancel(ctx, upload_id)
        except ToolError:
            ctx.log.warning("files_upload_cleanup_failed", upload_id=upload_id)


def _result(status: str, rel: str, *, entry: dict[str, Any] | None = None, created: bool | None = None, size: int = 0,
            chunked: bool = False, upload_id: str | None = None) -> dict[str, Any]:
    return {"status": status, "path": rel, "entry": entry, "created": created, "bytes": size, "chunked": chunked,
            "upload_id": upload_id}


async def create_directory(ctx: ToolContext, path: str, create_parents: bool = False) -> dict[str, Any]:
    rel = normalize(path)
    if not rel:
        raise InvalidArgument("path must name the new folder; your root folder always exists")
    if create_parents:
        await remote.make_parents(ctx, rel)
    created = await remote.make_folder(ctx, rel)
    info = await remote.stat(ctx, rel)
    if not created and not create_parents:
        raise Conflict(f"A folder already exists at {display(rel)}", current_etag=info["etag"], path=rel)
    return {"entry": info, "created": created}


async def delete(ctx: ToolContext, path: str, etag: str | None = None) -> dict[str, Any]:
    rel = normalize(path)
    if not rel:
        raise InvalidArgument("Your root folder cannot be deleted")
    info = await remote.stat(ctx, rel)
    headers = {"If-Match": quoted_etag(etag)} if etag else {}
    async with one_writer(ctx, rel):
        response = await ctx.http.request("DELETE", space_of(ctx).files(rel), headers=headers, ok=(404, 412))
    if response.status_code == 404:
        raise NotFound(f"{display(rel)} does not exist")
    if response.status_code == 412:
        raise await remote.conflict(ctx, rel, f"{display(rel)} changed since you read it; nothing was deleted")
    return {"deleted": True, "path": rel, "type": info["type"], "file_id": info["file_id"], "etag": info["etag"]}


async def _transfer(ctx: ToolContext, method: str, source: str, destination: str, overwrite: bool,
                    source_etag: str | None, destination_etag: str | None) -> dict[str, Any]:
    verb = method.lower()
    src = normalize(source, what="source")
    dst = normalize(destination, what="destination")
    if not src:
        raise InvalidArgument(f"Your root folder cannot be {'moved' if verb == 'move' else 'copied'}")
    if not dst:
        raise InvalidArgument("destination must be the new path (folder and name), not your root folder")
    if src == dst:
        raise InvalidArgument("source and destination are the same path")
    if is_within(dst, src):
        raise InvalidArgument(f"A folder cannot be {'moved' if verb == 'move' else 'copied'} into itself")
    space = space_of(ctx)
    headers = {"Destination": space.files_url(dst), "Overwrite": "T" if overwrite or destination_etag else "F"}
    if source_etag:
        headers["If-Match"] = quoted_etag(source_etag, what="source_etag")
    if destination_etag:
        # RFC 4918 §10.4: a precondition on another resource than the request URI is a tagged list.
        headers["If"] = f"<{space.files_href(dst)}> ([{quoted_etag(destination_etag, what='destination_etag')}])"
    async with one_writer(ctx, src, dst):
        response = await ctx.http.request(method, space.files(src), headers=headers, ok=(404, 409, 412))
    if response.status_code == 404:
        raise NotFound(f"{display(src)} does not exist")
    if response.status_code == 409:
        raise await remote.missing_parent(ctx, dst)
    if response.status_code == 412:
        raise await _explain_412(ctx, verb, src, dst, source_etag, destination_etag)
    return {"source": src, "destination": dst, "entry": await remote.stat(ctx, dst),
            "overwritten": response.status_code == 204}


async def _explain_412(ctx: ToolContext, verb: str, src: str, dst: str, source_etag: str | None,
                       destination_etag: str | None) -> Conflict:
    if source_etag:
        current = await remote.stat_or_none(ctx, src)
        if current is None or not same_etag(source_etag, current["etag"]):
            return Conflict(f"{display(src)} changed since you read it; nothing was {verb}d",
                            current_etag=current["etag"] if current else None, path=src)
    existing = await remote.stat_or_none(ctx, dst)
    etag = existing["etag"] if existing else None
    if destination_etag:
        state = "no longer exists" if existing is None else "changed since you read it"
        return Conflict(f"The destination {display(dst)} {state}; nothing was {verb}d", current_etag=etag, path=dst)
    return Conflict(f"The destination {display(dst)} already exists; nothing was {verb}d. Pass overwrite=true, or its "
                    "etag as destination_etag to replace only that version", current_etag=etag, path=dst)


async def move(ctx: ToolContext, source: str, destination: str, overwrite: bool = False, source_etag: str | None = None,
               destination_etag: str | None = None) -> dict[str, Any]:
    return await _transfer(ctx, "MOVE", source, destination, overwrite, source_etag, destination_etag)


async def copy(ctx: ToolContext, source: str, destination: str, overwrite: bool = False,
               destination_etag: str | None = None) -> dict[str, Any]:
    return await _transfer(ctx, "COPY", source, destination, overwrite, None, destination_etag)
