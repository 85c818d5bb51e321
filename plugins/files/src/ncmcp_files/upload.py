"""Uploads that never overwrite silently: a conditional PUT, or Nextcloud's chunked upload v2.

The precondition travels with the request that makes the file appear: ``If-None-Match: *`` /
``If-Match`` on a PUT; on the final MOVE of a chunked upload ``Overwrite: F`` (create only) or the
RFC 4918 tagged form ``If: <target> (["etag"])``, because ``If-Match`` on a MOVE would be checked
against the upload's ``.file``, not the target.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

import httpx
from ncmcp import Conflict, InvalidArgument, NotFound, ToolContext

from ncmcp_files import remote
from ncmcp_files.entries import same_etag
from ncmcp_files.limits import MAX_CHUNKS
from ncmcp_files.payload import Payload
from ncmcp_files.remote import display, space_of
from ncmcp_files.serialize import one_writer

#: ``<folder>:<chunks>:<bytes>``: the upload folder's name and what has been sent so far. The
#: progress travels with the id because Nextcloud on object storage sends chunks straight to S3
#: and its upload folder lists none of them; where the folder does list them, the listing wins.
UPLOAD_ID = re.compile(r"^(ncmcp-[0-9a-f]{32})(?::([0-9]{1,5}):([0-9]{1,15}))?$")


@dataclass(frozen=True, slots=True)
class Progress:
    folder: str
    chunks: int  # the highest chunk number sent
    size: int  # bytes sent

    @property
    def upload_id(self) -> str:
        return f"{self.folder}:{self.chunks}:{self.size}"


@dataclass(frozen=True, slots=True)
class Precondition:
    """What must hold at the target when the write lands."""

    etag: str | None  # quoted; replace exactly this version
    overwrite: bool  # replace whatever is there (explicit request)

    def put_headers(self) -> dict[str, str]:
        if self.etag:
            return {"If-Match": self.etag}
        return {} if self.overwrite else {"If-None-Match": "*"}

    def move_headers(self, target_href: str) -> dict[str, str]:
        if self.etag:
            return {"If": f"<{target_href}> ([{self.etag}])", "Overwrite": "T"}
        return {"Overwrite": "T" if self.overwrite else "F"}

    async def check_now(self, ctx: ToolContext, rel: str) -> None:
        """Fail early (before a long upload) when the precondition already does not hold. Advisory:
        the request that completes the write carries the precondition again."""
        if self.overwrite and not self.etag:
            return
        current = await remote.stat_or_none(ctx, rel)
        if current is not None and current["type"] == "directory":
            raise InvalidArgument(f"{display(rel)} is a folder; a file cannot replace it")
        self.verify(rel, current["etag"] if current else None, exists=current is not None)

    def verify(self, rel: str, current_etag: str | None, *, exists: bool) -> None:
        if self.etag and not exists:
            raise Conflict(f"{display(rel)} no longer exists; nothing was written. Write it again without etag "
                           "to create it", current_etag=None, path=rel, exists=False)
        if self.etag and not same_etag(self.etag, current_etag):
            raise Conflict(f"{display(rel)} changed since you read it; nothing was written. Re-read it and retry "
                           "with the current etag", current_etag=current_etag, path=rel, exists=True)
        if not self.etag and not self.overwrite and exists:
            raise Conflict(f"{display(rel)} already exists; nothing was written. Pass its etag to replace that "
                           "version, or overwrite=true to replace whatever is there",
                           current_etag=current_etag, path=rel, exists=True)


async def _refused(ctx: ToolContext, rel: str, pre: Precondition) -> Conflict:
    """The 412 explained from the target's state now."""
    current = await remote.stat_or_none(ctx, rel)
    try:
        pre.verify(rel, current["etag"] if current else None, exists=current is not None)
    except Conflict as exc:
        return exc
    # The target matches now, so it changed and changed back (or the server raced): still a conflict.
    return Conflict(f"{display(rel)} changed while it was being written; nothing was written, try again",
                    current_etag=current["etag"] if current else None, path=rel)


def _etag_of(response: httpx.Response) -> str | None:
    return response.headers.get("OC-ETag") or response.headers.get("ETag")


async def put(ctx: ToolContext, rel: str, data: bytes, pre: Precondition) -> tuple[bool, str | None]:
    """One conditional PUT. Returns ``(created, etag of what was written)``."""
    async with one_writer(ctx, rel):
        response = await ctx.http.request("PUT", space_of(ctx).files(rel), headers=pre.put_headers(), content=data,
                                          ok=(405, 409, 412))
    if response.status_code == 412:
        raise await _refused(ctx, rel, pre)
    if response.status_code == 409:
        raise await remote.missing_parent(ctx, rel)
    if response.status_code == 405:
        raise InvalidArgument(f"{display(rel)} is a folder; a file cannot replace it")
    return response.status_code == 201, _etag_of(response)


# --- chunked upload v2 ------------------------------------------------------------------------

def parse_upload_id(upload_id: str) -> Progress:
    found = UPLOAD_ID.match(upload_id)
    if not found:
        raise InvalidArgument("upload_id must be the id the previous nc_files_write_file call returned")
    return Progress(found[1], int(found[2] or 0), int(found[3] or 0))


async def progress(ctx: ToolContext, claimed: Progress) -> Progress:
    """Where an upload stands: the upload folder's chunks when it lists them, else the id's count."""
    chunks, size = await received(ctx, claimed.folder)
    return Progress(claimed.folder, chunks, size) if chunks else claimed


async def start(ctx: ToolContext, rel: str) -> str:
    """Create an upload folder; returns its name."""
    folder = f"ncmcp-{uuid.uuid4().hex}"
    space = space_of(ctx)
    await ctx.http.request("MKCOL", space.upload(folder), headers={"Destination": space.files_url(rel)})
    return folder


async def received(ctx: ToolContext, folder: str) -> tuple[int, int]:
    """``(highest chunk number, bytes)`` listed in an upload folder."""
    space = space_of(ctx)
    found = await remote.propfind(ctx, space.upload(folder) + "/", ("d:getcontentlength", "d:resourcetype"), depth="1",
                                  what=f"Upload {folder} (finished, cancelled, or expired after 24 h without activity)")
    numbers, size = [], 0
    for response in found:
        name = space.last_segment(response.href)
        if name.isdigit() and not response.has("d:resourcetype", "d:collection"):
            numbers.append(int(name))
            size += int(response.text("d:getcontentlength") or 0)
    return (max(numbers) if numbers else 0), size


async def send(ctx: ToolContext, rel: str, folder: str, payload: Payload, *, after: int, chunk_size: int,
               total: int | None, done_before: int = 0) -> int:
    """PUT ``payload`` as chunks numbered after ``after``; returns the number of chunks sent."""
    space = space_of(ctx)
    headers = {"Destination": space.files_url(rel)}
    if total is not None:
        headers["OC-Total-Length"] = str(total)  # lets Nextcloud refuse early (507) when the quota is short
    sent = 0
    done = done_before
    for chunk in payload.chunks(chunk_size):
        number = after + sent + 1
        if number > MAX_CHUNKS:
            raise InvalidArgument(f"An upload has at most {MAX_CHUNKS} chunks; send bigger pieces")
        # Zero-padded names sort in order both as numbers and as strings.
        await ctx.http.request("PUT", space.upload(folder, f"{number:05d}"), headers=headers, content=chunk)
        sent += 1
        done += len(chunk)
        await ctx.report_progress(done, total, f"uploaded {done} bytes")
    return sent


async def finish(ctx: ToolContext, rel: str, folder: str, pre: Precondition, total: int) -> tuple[bool, str | None]:
    """Assemble the chunks at ``rel`` (MOVE of ``.file``). Returns ``(created, etag)``."""
    space = space_of(ctx)
    headers = {"Destination": space.files_url(rel), "OC-Total-Length": str(total), **pre.move_headers(space.files_href(rel))}
    async with one_writer(ctx, rel):
        await pre.check_now(ctx, rel)  # also guards servers that ignore preconditions on the assembling MOVE
        response = await ctx.http.request("MOVE", space.upload(folder, ".file"), headers=headers, ok=(404, 409, 412))
    if response.status_code == 404:
        raise NotFound(f"Upload {folder} does not exist (finished, cancelled, or expired after 24 h without activity)")
    if response.status_code == 412:
        raise await _refused(ctx, rel, pre)
    if response.status_code == 409:
        raise await remote.missing_parent(ctx, rel)
    return response.status_code == 201, _etag_of(response)


async def cancel(ctx: ToolContext, folder: str) -> bool:
    response = await ctx.http.request("DELETE", space_of(ctx).upload(folder), ok=(404,))
    return response.status_code != 404
