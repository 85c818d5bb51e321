"""Nextcloud WebDAV files for the sandbox: WsgiDAV plus what Nextcloud adds.

``build_webdav_app(root)`` returns a :class:`WebDavSandbox`; its ``app`` is an ASGI
application for everything the sandbox front forwards here:

==============================================  ===========================================
URL                                             served by
==============================================  ===========================================
``/remote.php/dav/files/<user>/…``              WsgiDAV with :mod:`.webdav_provider`
                                                (``REPORT oc:filter-files`` natively)
``SEARCH /remote.php/dav/``                     native (RFC 5323 basicsearch)
``/remote.php/dav/trashbin/<user>/…``           native: ``trash/<name>.d<ts>``, ``restore/``
``/remote.php/dav/versions/<user>/…``           native: ``versions/<fileid>/<ts>``, ``restore/``
``/remote.php/dav/uploads/<user>/<id>/…``       native: chunked upload v2
==============================================  ===========================================

**Users.**  The front authenticates and sets ``X-Remote-User``; this app trusts it
(no header → 401 ``NotAuthenticated``).  A user's first request provisions their tree,
as Nextcloud creates the home on first login.  Another user's tree answers **404**
``Sabre\\DAV\\Exception\\NotFound`` for every method (Nextcloud shows other users' homes
as empty collections with nothing to find inside); a MOVE/COPY ``Destination`` or a
SEARCH scope in another user's tree answers 403.

**Storage** (see :mod:`.webdav_store`): ``root/<user>/files`` (the files),
``trash/``, ``versions/<fileid>/``, ``uploads/<id>/``, ``dav-state.json`` (favourites,
trash metadata).  File ids are inode numbers (stable across MOVE, trash/restore,
overwrites and version restores; a Notes fake writing the same tree gets the same ids
from ``os.stat``).  ETags: files ``"<ino>-<mtime_ns>-<size>"`` (hex, forced to change on
every write through this app), folders ``"<ino>-<mtime_ns>-<generation>-<boot id>"``
where the generation is bumped for every folder above a write.  Writes made directly
on disk change file ETags but only the direct parent's folder ETag; call
:meth:`WebDavSandbox.notify_changed` after such a write to propagate like Nextcloud.

**Quota**: ``quota_bytes`` (default unlimited) or :meth:`WebDavSandbox.set_quota`;
``quota-available-bytes`` is ``-3`` when unlimited; a PUT (by ``Content-Length`` or
while streaming), a chunk PUT with ``OC-Total-Length`` and a chunk assembly beyond it
answer 507 (an overwrite may reuse the bytes of the file it replaces).

**Chunked upload**: chunks are assembled in numeric order (lexical if any name is not
a number); ``min_chunk_size`` (default 0) enforces Nextcloud's 5 MiB minimum for all but
the last chunk when set to ``5 * 1024 * 1024``.  The final ``MOVE …/.file`` honours
``Overwrite: F``, ``If-Match``/``If-None-Match`` (checked against the destination),
the tagged ``If: <destination> (["etag"])`` form and ``OC-Total-Length`` (400 when the
chunks do not add up).  Upload folders never expire.

**Deliberate differences from Nextcloud**: PROPFIND ``Depth: infinity`` is answered as
``Depth: 1`` (Nextcloud's default setting); GET on a folder is 501; a MOVE/COPY that
overwrites its target deletes the old target for good (no trash, no version); restoring
a version consumes it (the replaced content becomes a new version) and gives the file
the current time as mtime; only files written through this app get versions; dead
properties (PROPPATCH of unknown names) live in memory; ``oc:tags`` and
``oc:share-types`` are always empty and a ``systemtag`` filter matches nothing; a SEARCH
without ``d:where`` matches everything (Nextcloud was reported to answer 500); a PUT whose
body is cut off (client disconnect, short body) is discarded with 400 and changes nothing.
"""

from __future__ import annotations

import logging
import pathlib
import threading
from typing import Any

import anyio
from a2wsgi import WSGIMiddleware

from ncmcp.testing.sandbox.lifespan import answer_lifespan

from .webdav_extras import DavRequest, NextcloudExtras, Reply, dav_path_parts, error_reply, send_reply
from .webdav_provider import build_wsgidav
from .webdav_store import DavStore, SabreError, check_user_id

__all__ = ["WebDavSandbox", "build_webdav_app"]

_log = logging.getLogger(__name__)

Scope = dict[str, Any]


def build_webdav_app(
    root: pathlib.Path, *, quota_bytes: int | None = None, min_chunk_size: int = 0, workers: int = 16
) -> WebDavSandbox:
    """Create the files service storing everything under ``root`` (created if missing)."""
    return WebDavSandbox(pathlib.Path(root), quota_bytes=quota_bytes, min_chunk_size=min_chunk_size,
                         workers=workers)


class WebDavSandbox:
    """The sandbox's WebDAV files service; ``app`` is the ASGI application."""

    def __init__(self, root: pathlib.Path, *, quota_bytes: int | None = None, min_chunk_size: int = 0,
                 workers: int = 16) -> None:
        self.root = pathlib.Path(root)
        self.store = DavStore(self.root, quota_bytes=quota_bytes, min_chunk_size=min_chunk_size)
        self.dav_app, self.provider = build_wsgidav(self.store)
        self._wsgi = WSGIMiddleware(self.dav_app, workers=workers, send_queue_size=8)
        self.extras = NextcloudExtras(self.store, self.provider, self.dav_app)
        self._provision_lock = threading.Lock()
        self.app = self._asgi

    # -- public helpers -------------------------------------------------------------------------
    def provision_user(self, user: str) -> None:
        """Create ``root/<user>/files`` (and trash, versions, uploads); idempotent."""
        check_user_id(user)
        with self._provision_lock:
            self.store.provision(user)

    def files_dir(self, user: str) -> pathlib.Path:
        """The folder shown as ``/remote.php/dav/files/<user>/``."""
        return self.store.files_dir(user)

    def set_quota(self, user: str, quota_bytes: int | None) -> None:
        """Per-user quota in bytes (None = unlimited, Nextcloud's ``-3``)."""
        self.store.set_quota(user, quota_bytes)

    def file_id(self, user: str, rel: str) -> int:
        """``oc:fileid`` of ``rel`` (a path relative to the user's files root)."""
        return self.store.fs_path(user, rel).stat().st_ino

    def notify_changed(self, user: str, rel: str) -> None:
        """Propagate a change made directly on disk at ``rel`` to the folder ETags above it."""
        self.store.bump(user, rel)

    # -- ASGI ---------------------------------------------------------------------------------
    async def _asgi(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            return await answer_lifespan(receive, send)
        if scope["type"] != "http":
            return
        path = scope.get("path", "")
        root_path = scope.get("root_path", "") or ""
        if root_path and not path.startswith(root_path):
            path = root_path + path  # an older mount convention that strips the prefix
        scope = {**scope, "path": path, "root_path": ""}
        method = scope["method"].upper()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        user = headers.get("x-remote-user", "").strip()
        req = DavRequest(scope, receive, method, path, user, headers)
        try:
            reply = await self._dispatch(req, send)
        except SabreError as e:
            reply = error_reply(e)
        except Exception as e:  # noqa: BLE001 - answered as Sabre's generic exception
            _log.exception("webdav sandbox: %s %s failed", method, path)
            reply = error_reply(SabreError(500, f"{type(e).__name__}: {e}", exception="Sabre\\DAV\\Exception"))
        if reply is not None:
            await send_reply(reply, req, send)

    async def _dispatch(self, req: DavRequest, send: Any) -> Reply | None:
        if not req.user:
            raise SabreError(401, "No public access to this resource.",
                             headers=[("WWW-Authenticate", 'Basic realm="Nextcloud", charset="UTF-8"')])
        try:
            check_user_id(req.user)
        except ValueError:
            raise SabreError(403, "Invalid user") from None
        parts = dav_path_parts(req.path)
        if parts is None:
            raise SabreError(404, f"File with name {req.path} could not be located")
        if not self.store.is_provisioned(req.user):
            await anyio.to_thread.run_sync(self.provision_user, req.user)
        if not parts:
            if req.method == "SEARCH":
                return await self.extras.search(req)
            raise SabreError(405, f"Method {req.method} is not supported here")
        kind, owner, rest = parts[0], (parts[1] if len(parts) > 1 else ""), parts[2:]
        if kind not in ("files", "trashbin", "versions", "uploads"):
            raise SabreError(404, f"File with name {kind} could not be located")
        if owner != req.user:
            name = "/".join(parts) + ("/" if not owner else "")
            raise SabreError(404, f"File with name {name} could not be located")
        if kind == "files":
            if req.method == "REPORT":
                return await self.extras.report(req, "/".join(rest))
            state = {"disconnected": False}

            async def receive() -> Any:  # WSGI sees a disconnect as a short body: remember it
                message = await req.receive()
                if message["type"] == "http.disconnect":
                    state["disconnected"] = True
                return message

            await self._wsgi({**req.scope, "ncmcp.receive_state": state}, receive, send)
            return None
        if kind == "trashbin":
            return await self.extras.trashbin(req, rest)
        if kind == "versions":
            return await self.extras.versions(req, rest)
        return await self.extras.uploads(req, rest)
