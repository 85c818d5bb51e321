"""Nextcloud DAV features WsgiDAV lacks, served natively (ASGI) on the same files.

* ``SEARCH /remote.php/dav/`` (RFC 5323 basicsearch as Nextcloud speaks it);
* ``REPORT oc:filter-files`` (favourites) on a folder under ``files/<user>/``;
* the trash bin ``/remote.php/dav/trashbin/<user>/{trash,restore}/``;
* versions ``/remote.php/dav/versions/<user>/{versions/<fileid>,restore}/``;
* chunked upload v2 ``/remote.php/dav/uploads/<user>/<id>/``.

Blocking file-system work runs in worker threads; request bodies of chunk PUTs are
streamed to disk (at most 1 MiB buffered).  Multistatus bodies for files reuse the
WsgiDAV provider's resources, so SEARCH/REPORT properties equal PROPFIND's.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import os
import pathlib
import re
import shutil
import stat as stat_mod
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlparse

import anyio
from starlette.responses import FileResponse
from wsgidav import util
from wsgidav.dav_error import DAVError
from wsgidav.wsgidav_app import WsgiDAVApp

from . import webdav_xml as x
from .webdav_provider import (
    FILES_SHARE,
    AbsentResource,
    NcFilesProvider,
    files_rel_of_url,
    normalize_if_header,
    split_dav_path,
)
from .webdav_store import (
    FOLDER_MIME,
    DavStore,
    SabreError,
    content_type,
    file_etag,
    oc_id,
    split_rel,
    tree_size,
)

_log = logging.getLogger(__name__)

DAV_ROOT = "/remote.php/dav"
DAV_SEGMENTS = ["remote.php", "dav"]
MAX_XML_BODY = 10 * 1024 * 1024
_FLUSH = 1024 * 1024

D = "{DAV:}"
OC = "{http://owncloud.org/ns}"
NC = "{http://nextcloud.org/ns}"


# -- request / response plumbing ------------------------------------------------------------
@dataclass(slots=True)
class DavRequest:
    scope: dict[str, Any]
    receive: Any
    method: str
    path: str  # full, percent-decoded
    user: str
    headers: dict[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    async def body(self, limit: int = MAX_XML_BODY) -> bytes:
        out = bytearray()
        async for chunk in self.stream():
            out += chunk
            if len(out) > limit:
                raise SabreError(413, "Request body too large", exception="Sabre\\DAV\\Exception\\BadRequest")
        return bytes(out)

    async def stream(self) -> AsyncIterator[bytes]:
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise SabreError(400, "Client disconnected")
            chunk = message.get("body", b"")
            if chunk:
                yield chunk
            if not message.get("more_body", False):
                return


@dataclass(slots=True)
class Reply:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    file: pathlib.Path | None = None  # stream this file instead (GET with Range support)
    file_type: str = "application/octet-stream"


def xml_reply(status: int, root: ET.Element) -> Reply:
    return Reply(status, x.to_bytes(root), [("Content-Type", x.XML_CONTENT_TYPE)])


def error_reply(e: SabreError) -> Reply:
    return Reply(e.status, e.body(), [("Content-Type", x.XML_CONTENT_TYPE), *e.headers])


async def send_reply(reply: Reply, req: DavRequest, send: Any) -> None:
    if reply.file is not None:
        response = FileResponse(reply.file, media_type=reply.file_type, headers=dict(reply.headers))
        await response(req.scope, req.receive, send)
        return
    body = b"" if req.method == "HEAD" else reply.body
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers]
    headers.append((b"content-length", str(len(reply.body)).encode()))
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def href_join(*segments: str, collection: bool = False) -> str:
    """Percent-encode path segments into an href (``/`` between them)."""
    href = "/".join(quote(s, safe="") for s in segments if s != "")
    return "/" + href + ("/" if collection else "")


def _rfc1123(ts: float) -> str:
    return email.utils.formatdate(ts, usegmt=True)


def _parse_time(text: str) -> float:
    text = text.strip()
    if re.fullmatch(r"-?\d+(\.\d+)?", text):
        return float(text)
    try:
        return email.utils.parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError):
        pass
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise SabreError(400, f"Invalid date {text!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


def propfind_reply(
    entries: list[tuple[str, dict[str, Any]]], mode: str, names: list[str], allprop: list[str]
) -> Reply:
    """A 207 for ``entries`` (href, {clark name: value}) answering a parsed PROPFIND body."""
    ms = x.multistatus()
    for href, props in entries:
        if mode == "propname":
            x.add_response(ms, href, [(n, None) for n in props])
        elif mode == "allprop":
            x.add_response(ms, href, [(n, props[n]) for n in allprop if n in props])
        else:
            x.add_response(ms, href, [(n, props[n]) for n in names if n in props],
                           [n for n in names if n not in props])
    return xml_reply(207, ms)


def _depth(req: DavRequest) -> str:
    depth = (req.header("depth") or "1").strip().lower()
    return "0" if depth == "0" else "1"


def _lock_tokens(req: DavRequest) -> list[str]:
    env: dict[str, Any] = {}
    if req.header("if"):
        env["HTTP_IF"] = req.header("if")
    normalize_if_header(env)
    return list(env.get("wsgidav.ifLockTokenList", []))


def _etag_list(value: str) -> list[str]:
    return [t.strip().removeprefix("W/").strip('"') for t in value.split(",") if t.strip()]


# -- SEARCH ----------------------------------------------------------------------------------
_SEARCHABLE = {
    D + "displayname", D + "getcontenttype", D + "getlastmodified", OC + "size", OC + "favorite",
    OC + "fileid", D + "getcontentlength",
}
_SORTABLE = _SEARCHABLE - {OC + "fileid"}


@dataclass(slots=True)
class _Entry:
    rel: str
    name: str
    path: str
    st: os.stat_result
    is_dir: bool
    favorite: bool
    _size: int | None = None

    @property
    def size(self) -> int:
        if self._size is None:
            self._size = tree_size(self.path) if self.is_dir else self.st.st_size
        return self._size

    def value(self, prop: str) -> Any:
        if prop == D + "displayname":
            return self.name
        if prop == D + "getcontenttype":
            return FOLDER_MIME if self.is_dir else content_type(self.name)
        if prop == D + "getlastmodified":
            return int(self.st.st_mtime)
        if prop in (OC + "size", D + "getcontentlength"):
            return self.size
        if prop == OC + "favorite":
            return 1 if self.favorite else 0
        if prop == OC + "fileid":
            return self.st.st_ino
        raise SabreError(400, f"Unsupported search property {prop}")


def _literal(prop: str, text: str) -> Any:
    if prop in (D + "displayname", D + "getcontenttype"):
        return text
    if prop == D + "getlastmodified":
        return _parse_time(text)
    if prop == OC + "favorite":
        return 1 if text.strip().lower() in ("1", "true", "yes") else 0
    try:
        return int(text.strip())
    except ValueError:
        raise SabreError(400, f"Invalid value {text!r} for {prop}") from None


def _like(pattern: str) -> re.Pattern[str]:
    out = []
    for ch in pattern:
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
    return re.compile("".join(out), re.IGNORECASE | re.DOTALL)


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: a == b,
    "lt": lambda a, b: a < b,
    "gt": lambda a, b: a > b,
    "lte": lambda a, b: a <= b,
    "gte": lambda a, b: a >= b,
}


def _compile(op: ET.Element) -> Callable[[_Entry], bool]:
    ns, local = x.split_clark(op.tag)
    if ns != x.DAV:
        raise SabreError(400, f"Unsupported search operator {op.tag}")
    children = [c for c in op if isinstance(c.tag, str)]
    if local in ("and", "or"):
        parts = [_compile(c) for c in children]
        if local == "and":
            return lambda e: all(p(e) for p in parts)
        return lambda e: any(p(e) for p in parts)
    if local == "not":
        if len(children) != 1:
            raise SabreError(400, "d:not takes exactly one operand")
        inner = _compile(children[0])
        return lambda e: not inner(e)
    if local == "is-collection":
        return lambda e: e.is_dir
    if local in _COMPARE or local == "like":
        prop_el = op.find(x.clark(x.DAV, "prop"))
        literal_el = op.find(x.clark(x.DAV, "literal"))
        if prop_el is None or len(prop_el) != 1 or literal_el is None:
            raise SabreError(400, f"d:{local} needs one d:prop and a d:literal")
        prop = prop_el[0].tag
        if prop not in _SEARCHABLE:
            raise SabreError(400, f"Unsupported search property {prop}")
        text = literal_el.text or ""
        if local == "like":
            if prop not in (D + "displayname", D + "getcontenttype"):
                raise SabreError(400, f"d:like is not supported on {prop}")
            regex = _like(text)
            return lambda e: regex.fullmatch(e.value(prop)) is not None
        value = _literal(prop, text)
        compare = _COMPARE[local]
        return lambda e: compare(e.value(prop), value)
    raise SabreError(400, f"Unsupported search operator d:{local}")


@dataclass(slots=True)
class SearchQuery:
    select: list[str]
    scope_rel: str
    depth: str
    where: Callable[[_Entry], bool]
    order: list[tuple[str, bool]]
    limit: int | None
    offset: int


def parse_search(body: bytes, user: str) -> SearchQuery:
    root = x.parse(body)
    if root.tag != x.clark(x.DAV, "searchrequest"):
        raise SabreError(400, "The root element must be {DAV:}searchrequest")
    basic = root.find(x.clark(x.DAV, "basicsearch"))
    if basic is None:
        raise SabreError(400, "Only {DAV:}basicsearch is supported")
    select = [p.tag for p in basic.findall(f"{D}select/{D}prop/*")]
    scopes = basic.findall(f"{D}from/{D}scope")
    if len(scopes) != 1:
        raise SabreError(400, "Exactly one d:scope is required")
    href = (scopes[0].findtext(f"{D}href") or "").strip()
    depth = (scopes[0].findtext(f"{D}depth") or "infinity").strip().lower()
    path = unquote(urlparse(href).path)
    if path.startswith(DAV_ROOT + "/"):
        path = path[len(DAV_ROOT):]
    parts = [p for p in path.split("/") if p]
    if len(parts) < 2 or parts[0] != "files":
        raise SabreError(400, f"The search scope {href!r} must be inside /files/{user}")
    if parts[1] != user:
        raise SabreError(403, f"The search scope {href!r} is outside the user's files")
    scope_rel = "/".join(parts[2:])
    split_rel(scope_rel)
    where_el = basic.find(f"{D}where")
    where_ops = [c for c in where_el if isinstance(c.tag, str)] if where_el is not None else []
    if len(where_ops) > 1:
        raise SabreError(400, "d:where takes one operator")
    where = _compile(where_ops[0]) if where_ops else (lambda e: True)
    order = []
    for order_el in basic.findall(f"{D}orderby/{D}order"):
        props = order_el.findall(f"{D}prop/*")
        if len(props) != 1:
            raise SabreError(400, "d:order needs one property")
        if props[0].tag not in _SORTABLE:
            raise SabreError(400, f"Unsupported sort property {props[0].tag}")
        order.append((props[0].tag, order_el.find(f"{D}descending") is None))
    limit = offset = None
    limit_el = basic.find(f"{D}limit")
    if limit_el is not None:
        for child in limit_el:
            _, local = x.split_clark(child.tag)
            text = (child.text or "").strip()
            if local == "nresults" and text.isdigit():
                limit = int(text)
            elif local == "firstresult" and text.isdigit():
                offset = int(text)
    return SearchQuery(select, scope_rel, depth, where, order, limit, offset or 0)


# -- the extras service ----------------------------------------------------------------------
class NextcloudExtras:
    def __init__(self, store: DavStore, provider: NcFilesProvider, dav_app: WsgiDAVApp) -> None:
        self.store = store
        self.provider = provider
        self.dav_app = dav_app

    def environ(self, user: str, method: str) -> dict[str, Any]:
        """A WSGI-like environ for using provider resources outside a WsgiDAV request."""
        return {
            "REQUEST_METHOD": method,
            "SCRIPT_NAME": FILES_SHARE,
            "PATH_INFO": f"/{user}",
            "wsgidav.provider": self.provider,
            "wsgidav.config": self.dav_app.config,
            "wsgidav.auth.user_name": user,
            "wsgidav.user_name": user,
            "wsgidav.ifLockTokenList": [],
        }

    def check_lock(self, user: str, rel: str, tokens: list[str]) -> None:
        """Raise 423 if ``rel`` or its folder is locked without a matching token."""
        lm = self.provider.lock_manager
        if lm is None:
            return
        path = self.store.fs_path(user, rel)
        parent_rel = rel.rpartition("/")[0]
        targets = [(parent_rel, True)]
        if path.exists():
            targets.append((rel, path.is_dir()))
        for target, is_dir in targets:
            url = quote(f"{FILES_SHARE}/{user}/{target}".rstrip("/")) + ("/" if is_dir else "")
            try:
                lm.check_write_permission(url=url, depth="0", token_list=tokens, principal=user)
            except DAVError as e:
                raise SabreError(e.value, "The resource you are trying to modify is locked") from None

    def render_files(self, user: str, rels: list[str], select: list[str]) -> Reply:
        env = self.environ(user, "PROPFIND")
        ms = x.multistatus()
        for rel in rels:
            res = self.provider.get_resource_inst(f"/{user}/{rel}".rstrip("/"), env)
            if res is None:
                continue
            props = res.get_properties("named", name_list=select) if select else res.get_properties("allprop")
            util.add_property_response(ms, res.get_href(), props)
        return xml_reply(207, ms)

    # -- SEARCH -----------------------------------------------------------------------------
    async def search(self, req: DavRequest) -> Reply:
        query = parse_search(await req.body(), req.user)
        return await anyio.to_thread.run_sync(self._search, req.user, query)

    def _walk(self, user: str, base_rel: str, recursive: bool) -> list[_Entry]:
        base = self.store.fs_path(user, base_rel)
        if not base.is_dir():
            raise SabreError(404, f"File with name {base_rel} could not be located")
        favorites = self.store.favorites(user)
        out: list[_Entry] = []
        stack = [(str(base), base_rel)]
        while stack:
            folder, folder_rel = stack.pop()
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except FileNotFoundError:
                continue
            for entry in entries:
                st = entry.stat(follow_symlinks=False)
                if stat_mod.S_ISLNK(st.st_mode):
                    continue
                rel = f"{folder_rel}/{entry.name}".lstrip("/")
                is_dir = stat_mod.S_ISDIR(st.st_mode)
                out.append(_Entry(rel, entry.name, entry.path, st, is_dir, st.st_ino in favorites))
                if is_dir and recursive:
                    stack.append((entry.path, rel))
        return out

    def _search(self, user: str, q: SearchQuery) -> Reply:
        if q.depth == "0":
            candidates = []
        else:
            candidates = self._walk(user, q.scope_rel, recursive=q.depth != "1")
        hits = [e for e in candidates if q.where(e)]
        hits.sort(key=lambda e: e.rel)
        for prop, ascending in reversed(q.order):
            hits.sort(key=lambda e, p=prop: e.value(p), reverse=not ascending)
        hits = hits[q.offset:]
        if q.limit is not None:
            hits = hits[: q.limit]
        return self.render_files(user, [e.rel for e in hits], q.select)

    # -- REPORT oc:filter-files ---------------------------------------------------------------
    async def report(self, req: DavRequest, rel: str) -> Reply:
        root = x.parse(await req.body())
        if root.tag != OC + "filter-files":
            raise SabreError(415, "The report is not supported on this resource",
                             exception="Sabre\\DAV\\Exception\\ReportNotSupported",
                             extra=[ET.Element(D + "supported-report")])
        select = [p.tag for p in root.findall(f"{D}prop/*")]
        rules = root.find(f"{OC}filter-rules")
        favorite = systemtags = False
        if rules is not None:
            for rule in rules:
                if rule.tag == OC + "favorite" and (rule.text or "").strip().lower() in ("1", "true"):
                    favorite = True
                elif rule.tag in (OC + "systemtag", OC + "circle"):
                    systemtags = True  # no tags exist in the sandbox: nothing can match
        return await anyio.to_thread.run_sync(self._report, req.user, rel, select, favorite and not systemtags)

    def _report(self, user: str, rel: str, select: list[str], favorite: bool) -> Reply:
        base = self.store.fs_path(user, rel)
        if not base.exists():
            raise SabreError(404, f"File with name {rel} could not be located")
        hits = []
        if favorite and base.is_dir():
            hits = [e.rel for e in self._walk(user, rel, recursive=True) if e.favorite]
        return self.render_files(user, hits, select)

    # -- trash bin ---------------------------------------------------------------------------
    async def trashbin(self, req: DavRequest, rest: list[str]) -> Reply:
        user, method = req.user, req.method
        base = [*DAV_SEGMENTS, "trashbin", user]
        if not rest or rest[0] not in ("trash", "restore"):
            if rest:
                raise SabreError(404, f"File with name {'/'.join(rest)} could not be located")
            return await self._simple_collection(req, base, ["trash", "restore"])
        if rest[0] == "restore":
            if len(rest) > 1:
                raise SabreError(404, f"File with name {'/'.join(rest)} could not be located")
            return await self._simple_collection(req, [*base, "restore"], [])
        if len(rest) == 1:  # the trash collection
            if method == "DELETE":
                await anyio.to_thread.run_sync(self.store.purge, user, None)
                return Reply(204)
            if method != "PROPFIND":
                raise SabreError(405, f"Method {method} is not allowed on the trash bin")
            mode, names = x.parse_propfind(await req.body())
            return await anyio.to_thread.run_sync(self._trash_propfind, req, user, None, [], mode, names)
        name, sub = rest[1], rest[2:]
        if method == "PROPFIND":
            mode, names = x.parse_propfind(await req.body())
            return await anyio.to_thread.run_sync(self._trash_propfind, req, user, name, sub, mode, names)
        if method in ("GET", "HEAD"):
            path = await anyio.to_thread.run_sync(self._trash_path, user, name, sub)
            if path.is_dir():
                raise SabreError(501, "GET is not implemented on folders")
            st = path.stat()
            return Reply(200, file=path, file_type=content_type(path.name),
                         headers=[("ETag", f'"{file_etag(st)}"'), ("OC-FileId", oc_id(st.st_ino))])
        if method == "DELETE":
            if sub:
                raise SabreError(403, "Items inside a trashed folder cannot be deleted one by one")
            await anyio.to_thread.run_sync(self.store.purge, user, name)
            return Reply(204)
        if method == "MOVE":
            if sub:
                raise SabreError(403, "Only whole trash items can be restored")
            dest = unquote(urlparse(req.header("destination") or "").path)
            restore_prefix = f"{DAV_ROOT}/trashbin/{user}/restore/"
            if not dest.startswith(restore_prefix):
                raise SabreError(403, f"A trash item can only be moved into {restore_prefix}")
            tokens = _lock_tokens(req)
            await anyio.to_thread.run_sync(
                lambda: self.store.restore(user, name, check=lambda rel: self.check_lock(user, rel, tokens))
            )
            return Reply(201)
        raise SabreError(405, f"Method {method} is not allowed on trash items")

    def _trash_path(self, user: str, name: str, sub: list[str]) -> pathlib.Path:
        item = self.store.trash_item(user, name)
        path = item.path.joinpath(*split_rel("/".join(sub)))
        if not os.path.lexists(path) or path.is_symlink():
            raise SabreError(404, f"File with name {'/'.join([name, *sub])} could not be located")
        return path

    def _trash_props(self, path: pathlib.Path, filename: str, location: str, deleted: int, user: str) -> dict[str, Any]:
        st = os.stat(path)
        is_dir = stat_mod.S_ISDIR(st.st_mode)
        props: dict[str, Any] = {
            D + "resourcetype": x.collection_type() if is_dir else ET.Element(D + "resourcetype"),
            D + "getlastmodified": _rfc1123(st.st_mtime),
            D + "getetag": f'"{file_etag(st)}"',
            D + "getcontenttype": FOLDER_MIME if is_dir else content_type(filename),
            D + "displayname": filename,
            OC + "size": str(tree_size(path) if is_dir else st.st_size),
            OC + "fileid": str(st.st_ino),
            OC + "id": oc_id(st.st_ino),
            OC + "permissions": "GD",
            NC + "trashbin-filename": filename,
            NC + "trashbin-original-location": location,
            NC + "trashbin-deletion-time": str(deleted),
            NC + "trashbin-title": filename,
            NC + "trashbin-deleted-by-id": user,
            NC + "trashbin-deleted-by-display-name": user,
        }
        if not is_dir:
            props[D + "getcontentlength"] = str(st.st_size)
        return props

    _TRASH_ALLPROP = [D + "resourcetype", D + "getlastmodified", D + "getetag", D + "getcontenttype",
                      D + "getcontentlength", NC + "trashbin-filename", NC + "trashbin-original-location",
                      NC + "trashbin-deletion-time"]

    def _trash_propfind(self, req: DavRequest, user: str, name: str | None, sub: list[str], mode: str,
                        names: list[str]) -> Reply:
        base = [*DAV_SEGMENTS, "trashbin", user, "trash"]
        depth = _depth(req)
        entries: list[tuple[str, dict[str, Any]]] = []
        if name is None:
            entries.append((href_join(*base, collection=True), self._collection_props("trash")))
            if depth == "1":
                for item in self.store.trash_items(user):
                    is_dir = item.path.is_dir()
                    props = self._trash_props(item.path, item.filename, item.location, item.deleted, user)
                    entries.append((href_join(*base, item.name, collection=is_dir), props))
        else:
            item = self.store.trash_item(user, name)
            path = self._trash_path(user, name, sub)
            filename = sub[-1] if sub else item.filename
            location = "/".join([item.location, *sub])
            is_dir = path.is_dir()
            entries.append((href_join(*base, name, *sub, collection=is_dir),
                            self._trash_props(path, filename, location, item.deleted, user)))
            if is_dir and depth == "1":
                for child in sorted(os.listdir(path)):
                    cpath = path / child
                    if cpath.is_symlink():
                        continue
                    entries.append((href_join(*base, name, *sub, child, collection=cpath.is_dir()),
                                    self._trash_props(cpath, child, f"{location}/{child}", item.deleted, user)))
        return propfind_reply(entries, mode, names, self._TRASH_ALLPROP)

    @staticmethod
    def _collection_props(name: str) -> dict[str, Any]:
        return {D + "resourcetype": x.collection_type(), D + "displayname": name}

    async def _simple_collection(self, req: DavRequest, segments: list[str], children: list[str]) -> Reply:
        if req.method != "PROPFIND":
            raise SabreError(405, f"Method {req.method} is not allowed here")
        mode, names = x.parse_propfind(await req.body())
        entries = [(href_join(*segments, collection=True), self._collection_props(segments[-1]))]
        if _depth(req) == "1":
            entries += [(href_join(*segments, c, collection=True), self._collection_props(c)) for c in children]
        return propfind_reply(entries, mode, names, [D + "resourcetype"])

    # -- versions ----------------------------------------------------------------------------
    async def versions(self, req: DavRequest, rest: list[str]) -> Reply:
        user, method = req.user, req.method
        base = [*DAV_SEGMENTS, "versions", user]
        if not rest:
            return await self._simple_collection(req, base, ["versions", "restore"])
        if rest[0] == "restore":
            if len(rest) > 2:
                raise SabreError(404, f"File with name {'/'.join(rest)} could not be located")
            return await self._simple_collection(req, [*base, *rest], [])
        if rest[0] != "versions":
            raise SabreError(404, f"File with name {'/'.join(rest)} could not be located")
        if len(rest) == 1:
            return await self._simple_collection(req, [*base, "versions"], [])
        if not rest[1].isdigit() or len(rest) > 3:
            raise SabreError(404, f"File with name {'/'.join(rest)} could not be located")
        fileid = int(rest[1])
        current = await anyio.to_thread.run_sync(self.store.path_for_fileid, user, fileid)
        if current is None or not current.is_file():
            raise SabreError(404, f"File with id {fileid} could not be located")
        if len(rest) == 2:
            if method != "PROPFIND":
                raise SabreError(405, f"Method {method} is not allowed on a version collection")
            mode, names = x.parse_propfind(await req.body())
            return await anyio.to_thread.run_sync(
                self._versions_propfind, req, user, fileid, current, None, mode, names
            )
        vname = rest[2]
        vpath = await anyio.to_thread.run_sync(self.store.version_path, user, fileid, vname)
        if method == "PROPFIND":
            mode, names = x.parse_propfind(await req.body())
            return await anyio.to_thread.run_sync(
                self._versions_propfind, req, user, fileid, current, vname, mode, names
            )
        if method in ("GET", "HEAD"):
            st = vpath.stat()
            return Reply(200, file=vpath, file_type=content_type(current.name),
                         headers=[("ETag", f'"{file_etag(st)}"')])
        if method == "DELETE":
            await anyio.to_thread.run_sync(self.store.delete_version, user, fileid, vname)
            return Reply(204)
        if method == "MOVE":
            dest = unquote(urlparse(req.header("destination") or "").path)
            if not dest.startswith(f"{DAV_ROOT}/versions/{user}/restore"):
                raise SabreError(403, f"A version can only be moved into {DAV_ROOT}/versions/{user}/restore/")
            tokens = _lock_tokens(req)
            st = await anyio.to_thread.run_sync(
                lambda: self.store.restore_version(
                    user, fileid, vname, check=lambda rel: self.check_lock(user, rel, tokens)
                )
            )
            return Reply(201, headers=[("OC-Etag", f'"{file_etag(st)}"'), ("OC-FileId", oc_id(st.st_ino))])
        raise SabreError(405, f"Method {method} is not allowed on a version")

    _VERSION_ALLPROP = [D + "resourcetype", D + "getlastmodified", D + "getetag", D + "getcontenttype",
                        D + "getcontentlength"]

    def _versions_propfind(self, req: DavRequest, user: str, fileid: int, current: pathlib.Path,
                           vname: str | None, mode: str, names: list[str]) -> Reply:
        base = [*DAV_SEGMENTS, "versions", user, "versions", str(fileid)]
        mime = content_type(current.name)
        entries: list[tuple[str, dict[str, Any]]] = []

        def props(v_st: os.stat_result) -> dict[str, Any]:
            return {
                D + "resourcetype": ET.Element(D + "resourcetype"),
                D + "getlastmodified": _rfc1123(v_st.st_mtime),
                D + "getetag": f'"{file_etag(v_st)}"',
                D + "getcontenttype": mime,
                D + "getcontentlength": str(v_st.st_size),
                NC + "version-label": "",
                NC + "version-author": user,
                NC + "version-author-display-name": user,
                NC + "has-preview": "false",
            }

        versions = self.store.versions(user, fileid)
        if vname is None:
            entries.append((href_join(*base, collection=True), self._collection_props(str(fileid))))
            if _depth(req) == "1":
                entries += [(href_join(*base, v.name), props(v.st)) for v in versions]
        else:
            version = next((v for v in versions if v.name == vname), None)
            if version is None:
                raise SabreError(404, f"Version {vname} not found")
            entries.append((href_join(*base, vname), props(version.st)))
        return propfind_reply(entries, mode, names, self._VERSION_ALLPROP)

    # -- chunked upload v2 ---------------------------------------------------------------------
    async def uploads(self, req: DavRequest, rest: list[str]) -> Reply:
        user, method = req.user, req.method
        base = [*DAV_SEGMENTS, "uploads", user]
        updir = self.store.uploads_dir(user)
        if not rest:
            if method != "PROPFIND":
                raise SabreError(405, f"Method {method} is not allowed on the uploads folder")
            children = await anyio.to_thread.run_sync(lambda: sorted(p.name for p in updir.iterdir() if p.is_dir()))
            return await self._simple_collection(req, base, children)
        split_rel("/".join(rest))
        upload_id = rest[0]
        folder = updir / upload_id
        if len(rest) == 1:
            if method == "MKCOL":
                if await req.body(limit=1024 * 1024):
                    raise SabreError(415, "The request body of MKCOL is not supported")
                try:
                    await anyio.to_thread.run_sync(folder.mkdir)
                except FileExistsError:
                    raise SabreError(405, "The resource you tried to create already exists") from None
                return Reply(201)
            if not folder.is_dir():
                raise SabreError(404, f"Upload {upload_id} could not be located")
            if method == "DELETE":
                await anyio.to_thread.run_sync(shutil.rmtree, folder)
                return Reply(204)
            if method == "PROPFIND":
                mode, names = x.parse_propfind(await req.body())
                return await anyio.to_thread.run_sync(self._upload_propfind, req, base, folder, mode, names)
            raise SabreError(405, f"Method {method} is not allowed on an upload folder")
        if len(rest) > 2:
            raise SabreError(409, "Upload folders have no sub-folders")
        if not folder.is_dir():
            if method in ("PUT", "MKCOL"):
                raise SabreError(409, "Files cannot be created in non-existent collections")
            raise SabreError(404, f"Upload {upload_id} could not be located")
        name = rest[1]
        if method == "PUT":
            return await self._put_chunk(req, folder, name)
        if method == "MOVE" and name == ".file":
            return await self._assemble(req, folder)
        chunk = folder / name
        if not chunk.is_file() or name.startswith("."):
            raise SabreError(404, f"Chunk {name} could not be located")
        if method == "DELETE":
            chunk.unlink()
            return Reply(204)
        if method in ("GET", "HEAD"):
            return Reply(200, file=chunk)
        raise SabreError(405, f"Method {method} is not allowed on a chunk")

    def _upload_propfind(self, req: DavRequest, base: list[str], folder: pathlib.Path, mode: str,
                         names: list[str]) -> Reply:
        entries = [(href_join(*base, folder.name, collection=True), self._collection_props(folder.name))]
        if _depth(req) == "1":
            for chunk in sorted(folder.iterdir(), key=lambda p: p.name):
                if chunk.name.startswith(".") or not chunk.is_file():
                    continue
                st = chunk.stat()
                entries.append((href_join(*base, folder.name, chunk.name), {
                    D + "resourcetype": ET.Element(D + "resourcetype"),
                    D + "getcontentlength": str(st.st_size),
                    D + "getlastmodified": _rfc1123(st.st_mtime),
                    D + "getetag": f'"{file_etag(st)}"',
                }))
        return propfind_reply(entries, mode, names, [D + "resourcetype", D + "getcontentlength",
                                                     D + "getlastmodified", D + "getetag"])

    def _destination_rel(self, req: DavRequest, required: bool) -> str | None:
        header = req.header("destination")
        if not header:
            if required:
                raise SabreError(400, "The destination header was not supplied")
            return None
        rel = files_rel_of_url(header, req.user)
        if rel is None:
            raise SabreError(403, "The destination is not inside the user's files")
        split_rel(rel)
        if not rel:
            raise SabreError(403, "The home folder cannot be overwritten")
        return rel

    async def _put_chunk(self, req: DavRequest, folder: pathlib.Path, name: str) -> Reply:
        if name.startswith("."):
            raise SabreError(400, f"Invalid chunk name {name!r}")
        total = (req.header("oc-total-length") or "").strip()
        if total.isdigit():
            dest_rel = self._destination_rel(req, required=False)
            replaced = 0
            if dest_rel is not None:
                dest = self.store.fs_path(req.user, dest_rel)
                replaced = dest.stat().st_size if dest.is_file() else 0
            await anyio.to_thread.run_sync(
                lambda: self.store.ensure_room(req.user, int(total), replaced=replaced, where=dest_rel or "")
            )
        target = folder / name
        tmp = folder / f".{name}.{os.getpid()}.part"
        existed = target.exists()
        f = await anyio.to_thread.run_sync(open, tmp, "wb")
        try:
            pending = bytearray()
            async for data in req.stream():
                pending += data
                if len(pending) >= _FLUSH:
                    await anyio.to_thread.run_sync(f.write, bytes(pending))
                    pending.clear()
            if pending:
                await anyio.to_thread.run_sync(f.write, bytes(pending))
            await anyio.to_thread.run_sync(f.close)
            await anyio.to_thread.run_sync(os.replace, tmp, target)
        except BaseException:
            f.close()
            tmp.unlink(missing_ok=True)
            raise
        return Reply(204 if existed else 201)

    async def _assemble(self, req: DavRequest, folder: pathlib.Path) -> Reply:
        dest_rel = self._destination_rel(req, required=True)
        assert dest_rel is not None
        mtime_header = req.header("x-oc-mtime")
        mtime = None
        if mtime_header is not None:
            try:
                mtime = float(mtime_header.strip())
            except ValueError:
                raise SabreError(400, "X-OC-MTime header must be an integer (unix timestamp).") from None
        total_header = (req.header("oc-total-length") or "").strip()
        tokens = _lock_tokens(req)
        created, st = await anyio.to_thread.run_sync(
            lambda: self._assemble_sync(req, folder, dest_rel, mtime, total_header, tokens)
        )
        headers = [("OC-Etag", f'"{file_etag(st)}"'), ("ETag", f'"{file_etag(st)}"'), ("OC-FileId", oc_id(st.st_ino))]
        if mtime is not None:
            headers.append(("X-OC-MTime", "accepted"))
        return Reply(201 if created else 204, headers=headers)

    def _check_destination_if(self, req: DavRequest, dest_rel: str, etag: str | None) -> None:
        """RFC 4918 ``If: <destination> (["etag"])``: a tagged list guarding the target."""
        if not req.header("if"):
            return
        env: dict[str, Any] = {"HTTP_IF": req.header("if")}
        normalize_if_header(env)
        conditions = env.get("wsgidav.conditions.if") or {}
        ref = quote(f"{FILES_SHARE}/{req.user}/{dest_rel}")
        if ref not in conditions:
            return
        tokens: list[str] = []
        lm = self.provider.lock_manager
        if lm is not None and etag is not None:
            tokens = [lock["token"] for lock in lm.get_indirect_url_lock_list(ref, principal=req.user)]
        if not util.test_if_header_dict(AbsentResource(), {ref: conditions[ref]}, ref, tokens, etag or "[absent]"):
            raise SabreError(412, "An If header precondition on the destination failed")

    def _assemble_sync(self, req: DavRequest, folder: pathlib.Path, dest_rel: str, mtime: float | None,
                       total_header: str, tokens: list[str]) -> tuple[bool, os.stat_result]:
        store, user = self.store, req.user
        chunks = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
        if all(p.name.isdigit() for p in chunks):
            chunks.sort(key=lambda p: int(p.name))
        else:
            chunks.sort(key=lambda p: p.name)
        sizes = [p.stat().st_size for p in chunks]
        total = sum(sizes)
        if total_header.isdigit() and int(total_header) != total:
            raise SabreError(400, f"Chunks on server do not sum up to {total_header} but to {total} bytes")
        if store.min_chunk_size and any(size < store.min_chunk_size for size in sizes[:-1]):
            raise SabreError(400, f"Chunks must be at least {store.min_chunk_size} bytes (except the last one)")
        dest = store.fs_path(user, dest_rel)
        if not dest.parent.is_dir():
            raise SabreError(409, "Files cannot be created in non-existent collections")
        if dest.is_dir():
            raise SabreError(409, "The destination is a folder")
        current = dest.stat() if dest.is_file() else None
        etag = file_etag(current) if current else None
        overwrite = (req.header("overwrite") or "T").strip().upper()
        if overwrite not in ("T", "F"):
            raise SabreError(400, "The HTTP Overwrite header should be either T or F")
        if overwrite == "F" and current is not None:
            raise SabreError(412, "The destination node already exists, and the overwrite header is set to false")
        if_none = req.header("if-none-match")
        if if_none is not None:
            tags = _etag_list(if_none)
            if current is not None and ("*" in tags or etag in tags):
                raise SabreError(412, "An If-None-Match header was specified, but the ETag matched "
                                      "(or * was specified).")
        if_match = req.header("if-match")
        if if_match is not None:
            tags = _etag_list(if_match)
            if current is None:
                raise SabreError(412, "An If-Match header was specified and the resource did not exist")
            if "*" not in tags and etag not in tags:
                raise SabreError(412, "An If-Match header was specified, but none of the specified ETags matched.")
        self._check_destination_if(req, dest_rel, etag)
        self.check_lock(user, dest_rel, tokens)
        store.ensure_room(user, total, replaced=current.st_size if current else 0, where=dest_rel)
        tmp = store.new_tmp(user)
        try:
            with open(tmp, "wb") as out:
                for chunk in chunks:
                    with open(chunk, "rb") as src:
                        shutil.copyfileobj(src, out, _FLUSH)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        result = store.commit_file(user, tmp, dest_rel, mtime=mtime,
                                   exclusive=(if_none or "").strip() == "*")
        shutil.rmtree(folder, ignore_errors=True)
        return result


def dav_path_parts(path: str) -> list[str] | None:
    """``/remote.php/dav/a/b`` → ``["a", "b"]`` (None outside ``/remote.php/dav``)."""
    if path == DAV_ROOT:
        return []
    if not path.startswith(DAV_ROOT + "/"):
        return None
    return [p for p in path[len(DAV_ROOT) + 1:].split("/") if p]


__all__ = ["DavRequest", "NextcloudExtras", "Reply", "dav_path_parts", "error_reply", "send_reply",
           "split_dav_path"]
