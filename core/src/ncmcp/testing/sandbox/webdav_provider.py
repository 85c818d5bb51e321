"""The WsgiDAV half of the files sandbox: a Nextcloud-flavoured FilesystemProvider.

One provider is mounted at ``/remote.php/dav/files``; WsgiDAV paths look like
``/alice/dir/a.txt`` and map to ``<root>/alice/files/dir/a.txt`` only when ``alice`` is
the authenticated user (``X-Remote-User``, trusted: the sandbox front sets it).  On top
of stock WsgiDAV it gives:

* strong ETags (inode + mtime ns + size) that change on every write, folder ETags that
  change when anything below changes, live ``oc:``/``nc:`` properties, persisted
  ``oc:favorite`` (PROPPATCH), per-user quota (507), ``X-OC-MTime``, ``OC-Etag`` and
  ``OC-FileId`` response headers;
* PUT bodies streamed into a temporary file and committed only when complete (a new
  file is renamed into place; an existing one keeps its inode and its old content
  becomes a version);
* DELETE moves into the trash bin;
* Sabre-shaped XML error bodies, Nextcloud's XML prefixes on 207 bodies, empty bodies on
  201, PROPFIND ``Depth: infinity`` treated as 1 (Nextcloud's default), ``If-Match`` on a
  missing target → 412, and HTTP conditionals on MOVE/COPY applied to the source only.
"""

from __future__ import annotations

import contextlib
import errno
import io
import logging
import os
import pathlib
import shutil
import stat as stat_mod
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, unquote, urlparse

from wsgidav import util
from wsgidav.dav_error import DAVError, PRECONDITION_CODE_ProtectedProperty, get_http_status_string
from wsgidav.dav_provider import DAVNonCollection
from wsgidav.fs_dav_provider import FileResource, FilesystemProvider, FolderResource
from wsgidav.mw.base_mw import BaseMiddleware
from wsgidav.request_server import RequestServer
from wsgidav.util import etree
from wsgidav.wsgidav_app import WsgiDAVApp

from . import webdav_xml as x
from .webdav_store import (
    FILE_PERMISSIONS,
    FOLDER_MIME,
    FOLDER_PERMISSIONS,
    DavStore,
    SabreError,
    content_type,
    file_etag,
    has_preview,
    oc_id,
    tree_size,
)

_log = logging.getLogger(__name__)

FILES_SHARE = "/remote.php/dav/files"
BLOCK_SIZE = 256 * 1024

D = "{DAV:}"
OC = "{http://owncloud.org/ns}"
NC = "{http://nextcloud.org/ns}"
OCS = "{http://open-collaboration-services.org/ns}"

OC_FAVORITE = OC + "favorite"
ALLPROP_FILE = [D + "resourcetype", D + "getlastmodified", D + "getcontentlength", D + "getcontenttype", D + "getetag"]
ALLPROP_FOLDER = [D + "resourcetype", D + "getlastmodified", D + "getetag",
                  D + "quota-used-bytes", D + "quota-available-bytes"]
NC_LIVE = [
    D + "displayname", OC + "fileid", OC + "id", OC + "permissions", OC + "size", OC_FAVORITE,
    NC + "has-preview", OC + "owner-id", OC + "owner-display-name", OC + "share-types",
    OCS + "share-permissions", OC + "tags", NC + "is-encrypted",
]
FOLDER_ONLY = [NC + "contained-file-count", NC + "contained-folder-count"]
_PROTECTED = set(NC_LIVE + FOLDER_ONLY + ALLPROP_FILE + ALLPROP_FOLDER) - {OC_FAVORITE}
_NOT_OURS = object()
_WRITE_METHODS = {"PUT", "MKCOL", "DELETE", "MOVE", "COPY", "LOCK"}
_HTTP_CONDITIONALS = ("HTTP_IF_MATCH", "HTTP_IF_NONE_MATCH", "HTTP_IF_MODIFIED_SINCE", "HTTP_IF_UNMODIFIED_SINCE")


class NcDAVError(DAVError):
    """A DAVError with a Nextcloud message (and optionally a specific Sabre exception class)."""

    def __init__(self, status: int, message: str = "", *, exception: str | None = None,
                 err_condition: Any = None, add_headers: Any = None) -> None:
        super().__init__(status, message, err_condition=err_condition, add_headers=add_headers)
        self.sabre_exception = exception


@contextlib.contextmanager
def dav_errors() -> Iterator[None]:
    """Turn store errors (SabreError) into DAVErrors that WsgiDAV passes through."""
    try:
        yield
    except SabreError as e:
        raise NcDAVError(e.status, e.message, exception=e.exception, add_headers=e.headers) from None


def split_dav_path(path: str) -> tuple[str, str]:
    """``/alice/a/b`` → ``("alice", "a/b")``; ``/`` → ``("", "")``."""
    parts = [p for p in path.split("/") if p]
    if not parts:
        return "", ""
    return parts[0], "/".join(parts[1:])


def files_rel_of_url(url: str, user: str) -> str | None:
    """User-relative path of an absolute or path-only files URL of ``user`` (else None)."""
    path = unquote(urlparse(url).path)
    prefix = f"{FILES_SHARE}/{user}"
    if path.rstrip("/") == prefix:
        return ""
    if not path.startswith(prefix + "/"):
        return None
    return "/".join(p for p in path[len(prefix) + 1:].split("/") if p)


def _int_header(environ: dict[str, Any], key: str) -> int | None:
    value = (environ.get(key) or "").strip()
    return int(value) if value.isdigit() else None


class _LimitedWriter:
    """File writer that answers 507 as soon as the body outgrows the quota."""

    def __init__(self, f: Any, limit: int | None, where: str) -> None:
        self.f = f
        self.limit = limit
        self.where = where
        self.written = 0

    def write(self, data: bytes) -> None:
        self.written += len(data)
        if self.limit is not None and self.written > self.limit:
            raise NcDAVError(507, f"Insufficient space in /{self.where}, {self.written} required, "
                                  f"{self.limit} available")
        self.f.write(data)

    def close(self) -> None:
        if not self.f.closed:
            self.f.close()


class _NcProps:
    """Live Nextcloud properties shared by files and folders."""

    path: str
    environ: dict[str, Any]
    is_collection: bool
    name: str
    file_stat: os.stat_result
    _file_path: str

    def _init_nc(self) -> None:
        self.user, self.rel = split_dav_path(self.path)
        self.name = self.rel.rsplit("/", 1)[-1] if self.rel else self.user

    @property
    def store(self) -> DavStore:
        return self.provider.store  # type: ignore[attr-defined]

    def get_property_names(self, *, is_allprop: bool) -> list[str]:
        base = ALLPROP_FOLDER if self.is_collection else ALLPROP_FILE
        if is_allprop:
            return list(base)
        names = list(base) + NC_LIVE + (FOLDER_ONLY if self.is_collection else [])
        names += [D + "lockdiscovery", D + "supportedlock"]
        pm = self.provider.prop_manager  # type: ignore[attr-defined]
        if pm:
            names += pm.get_properties(self.get_ref_url(), self.environ)  # type: ignore[attr-defined]
        return names

    def get_property_value(self, name: str) -> Any:
        value = self._nc_value(name)
        if value is _NOT_OURS:
            return super().get_property_value(name)  # type: ignore[misc]
        return value

    def _nc_value(self, name: str) -> Any:
        st = self.file_stat
        folder = self.is_collection
        if name == D + "getetag":
            return f'"{self.get_etag()}"'  # type: ignore[attr-defined]
        if name == D + "getcontenttype":
            return FOLDER_MIME if folder else content_type(self.name)
        if name == D + "getcontentlength":
            if folder:
                raise DAVError(404)
            return str(st.st_size)
        if name == D + "displayname":
            return self.name
        if name in (D + "quota-used-bytes", D + "quota-available-bytes"):
            if not folder:
                raise DAVError(404)
            if name == D + "quota-used-bytes":
                return str(tree_size(self._file_path))
            free = self.store.free(self.user)
            return "-3" if free is None else str(free)
        if name == OC + "fileid":
            return str(st.st_ino)
        if name == OC + "id":
            return oc_id(st.st_ino)
        if name == OC + "permissions":
            return FOLDER_PERMISSIONS if folder else FILE_PERMISSIONS
        if name == OC + "size":
            return str(tree_size(self._file_path) if folder else st.st_size)
        if name == OC_FAVORITE:
            return "1" if self.store.is_favorite(self.user, st.st_ino) else "0"
        if name == NC + "has-preview":
            return "false" if folder else ("true" if has_preview(content_type(self.name)) else "false")
        if name in (OC + "owner-id", OC + "owner-display-name"):
            return self.user
        if name in (OC + "share-types", OC + "tags"):
            return etree.Element(name)
        if name == OCS + "share-permissions":
            return "31" if folder else "19"
        if name == NC + "is-encrypted":
            return "0"
        if name in FOLDER_ONLY:
            if not folder:
                raise DAVError(404)
            files = dirs = 0
            with os.scandir(self._file_path) as it:
                for entry in it:
                    if entry.is_dir(follow_symlinks=False):
                        dirs += 1
                    elif entry.is_file(follow_symlinks=False):
                        files += 1
            return str(files if name.endswith("file-count") else dirs)
        return _NOT_OURS

    def set_property_value(self, name: str, value: Any, *, dry_run: bool = False) -> Any:
        if name == OC_FAVORITE:
            text = "" if value is None else (value.text or "").strip().lower()
            if not dry_run:
                self.store.set_favorite(self.user, self.file_stat.st_ino, text in ("1", "true"))
            return True
        if name == D + "lastmodified":  # Nextcloud lets clients set the mtime this way
            text = "" if value is None else (value.text or "").strip()
            if not text.isdigit():
                raise DAVError(400, "lastmodified must be a unix timestamp")
            if not dry_run:
                os.utime(self._file_path, (int(text), int(text)))
            return True
        if name in _PROTECTED:
            raise DAVError(403, err_condition=PRECONDITION_CODE_ProtectedProperty)
        return super().set_property_value(name, value, dry_run=dry_run)  # type: ignore[misc]

    # -- delete: trash bin; overwrite-delete: for good -----------------------------------
    def handle_delete(self) -> bool:
        if not self.rel:
            raise NcDAVError(403, "The home folder cannot be deleted")
        lm = self.provider.lock_manager  # type: ignore[attr-defined]
        if lm:
            lm.check_write_permission(
                url=self.get_ref_url(),  # type: ignore[attr-defined]
                depth="infinity",
                token_list=self.environ.get("wsgidav.ifLockTokenList", []),
                principal=self.environ.get("wsgidav.user_name", ""),
            )
        with dav_errors():
            self.store.trash(self.user, self.rel)
        self.remove_all_locks(recursive=True)  # type: ignore[attr-defined]
        self.remove_all_properties(recursive=True)  # type: ignore[attr-defined]
        return True

    def delete(self) -> Any:
        self.store.forget_tree(self.user, pathlib.Path(self._file_path))
        result = super().delete()  # type: ignore[misc]
        self.store.bump(self.user, self.rel)
        return result


class NcFileResource(_NcProps, FileResource):
    def __init__(self, path: str, environ: dict[str, Any], file_path: str, *, pending: bool = False) -> None:
        if pending:  # PUT of a new file: nothing on disk until the body is complete
            DAVNonCollection.__init__(self, path, environ)
            self._file_path = file_path
            self.file_stat = None  # type: ignore[assignment]
        else:
            super().__init__(path, environ, file_path)
        self._init_nc()
        self._tmp: pathlib.Path | None = None
        self._writer: _LimitedWriter | None = None

    def get_content_type(self) -> str:
        return content_type(self.name)

    def get_etag(self) -> str:
        return file_etag(self.file_stat)

    def get_last_modified(self) -> float:
        return self.file_stat.st_mtime

    def get_content_length(self) -> int:
        return self.file_stat.st_size

    def begin_write(self, *, content_type: str | None = None) -> _LimitedWriter:
        store, env = self.store, self.environ
        replaced = self.file_stat.st_size if self.file_stat else 0
        length = _int_header(env, "CONTENT_LENGTH") or _int_header(env, "HTTP_OC_TOTAL_LENGTH")
        with dav_errors():
            if length:
                store.ensure_room(self.user, length, replaced=replaced, where=self.rel)
        quota = store.quota(self.user)
        limit = None if quota is None else max(0, quota - store.used(self.user) + replaced)
        self._tmp = store.new_tmp(self.user)
        self._writer = _LimitedWriter(open(self._tmp, "wb", buffering=BLOCK_SIZE), limit, self.rel)  # noqa: SIM115
        return self._writer

    def end_write(self, *, with_errors: bool) -> None:
        writer, tmp = self._writer, self._tmp
        self._writer = self._tmp = None
        if writer is not None:
            writer.close()
        if tmp is None:
            return
        if with_errors:
            tmp.unlink(missing_ok=True)
            return
        expected = _int_header(self.environ, "CONTENT_LENGTH")
        received = writer.written if writer is not None else 0
        disconnected = (self.environ.get("asgi.scope") or {}).get("ncmcp.receive_state", {}).get("disconnected")
        if disconnected or (expected is not None and received != expected):
            tmp.unlink(missing_ok=True)  # a cut-off body never replaces anything
            raise NcDAVError(400, f"Expected filesize of {expected} bytes but read (from Nextcloud client) and wrote "
                                  f"(to Nextcloud storage) {received} bytes. Could either be a network problem on the "
                                  "sending side or a problem writing to the storage on the server side.")
        exclusive = (self.environ.get("HTTP_IF_NONE_MATCH") or "").strip() == "*"
        with dav_errors():
            _, st = self.store.commit_file(
                self.user, tmp, self.rel, mtime=self.environ.get("ncmcp.mtime"), exclusive=exclusive,
                if_match=self.environ.get("HTTP_IF_MATCH"),
            )
        self.file_stat = st


class NcFolderResource(_NcProps, FolderResource):
    def __init__(self, path: str, environ: dict[str, Any], file_path: str) -> None:
        super().__init__(path, environ, file_path)
        self._init_nc()

    def get_etag(self) -> str:
        return self.store.folder_etag(self.file_stat)

    def support_etag(self) -> bool:
        return True

    def get_content_type(self) -> str:
        return FOLDER_MIME

    def create_empty_resource(self, name: str) -> Any:
        if self.environ.get("REQUEST_METHOD") == "PUT":
            path = util.join_uri(self.path, name)
            return NcFileResource(path, self.environ, os.path.join(self._file_path, name), pending=True)
        return super().create_empty_resource(name)  # LOCK on an unmapped URL: an empty file


class NcFilesProvider(FilesystemProvider):
    """FilesystemProvider for all users' ``files`` trees under one share."""

    def __init__(self, store: DavStore) -> None:
        super().__init__(str(store.root), readonly=False, fs_opts={"follow_symlinks": False})
        self.store = store

    def _loc_to_file_path(self, path: str, environ: dict[str, Any] | None = None) -> str:
        user, rel = split_dav_path(path)
        if not user:
            raise NcDAVError(404, "File with name / could not be located")
        current = (environ or {}).get("wsgidav.auth.user_name")
        if current is not None and user != current:
            raise NcDAVError(403, "Access to another user's files is not allowed")
        with dav_errors():
            return str(self.store.fs_path(user, rel))

    def get_resource_inst(self, path: str, environ: dict[str, Any]) -> Any:
        self._count_get_resource_inst += 1
        user, _ = split_dav_path(path)
        if not user:
            return None
        fp = self._loc_to_file_path(path, environ)
        try:
            st = os.lstat(fp)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if stat_mod.S_ISLNK(st.st_mode):
            raise NcDAVError(403, "Symbolic links are not served")
        if stat_mod.S_ISDIR(st.st_mode):
            return NcFolderResource(path, environ, fp)
        return NcFileResource(path, environ, fp)

    def custom_request_handler(self, environ: dict[str, Any], start_response: Any, default_handler: Any) -> Any:
        method = environ["REQUEST_METHOD"]
        path = environ["PATH_INFO"]
        user, rel = split_dav_path(path)
        if method == "PROPFIND" and (environ.get("HTTP_DEPTH") or "infinity").lower() not in ("0", "1"):
            environ["HTTP_DEPTH"] = "1"  # Nextcloud disables Depth: infinity and answers as for 1
        normalize_if_header(environ)
        if method in ("GET", "HEAD") and self.is_collection(path, environ):
            raise NcDAVError(501, "There was no plugin in the system that was willing to handle this GET method. "
                                  "Enable the Browser plugin to get a better result here.")
        mtime = environ.get("HTTP_X_OC_MTIME")
        if method == "PUT":
            if mtime is not None:
                try:
                    environ["ncmcp.mtime"] = float(mtime.strip())
                except ValueError:
                    raise NcDAVError(400, "X-OC-MTime header must be an integer (unix timestamp).") from None
            if "HTTP_IF_MATCH" in environ and not self.exists(path, environ):
                raise NcDAVError(412, "An If-Match header was specified and the resource did not exist")

        def _start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            code = int(status.split(" ", 1)[0])
            if method in ("PUT", "MKCOL") and code in (200, 201, 204):
                try:
                    st = os.stat(self._loc_to_file_path(path, environ))
                except (OSError, DAVError):
                    st = None
                if st is not None:
                    headers = [*headers, ("OC-FileId", oc_id(st.st_ino))]
                    if method == "PUT":
                        headers.append(("OC-Etag", f'"{file_etag(st)}"'))
                        if mtime is not None:
                            headers.append(("X-OC-MTime", "accepted"))
            return start_response(status, headers, exc_info)

        try:
            return default_handler(environ, _start_response)
        finally:
            if method in _WRITE_METHODS and user:
                touched = [rel]
                dest = environ.get("HTTP_DESTINATION")
                if dest and method in ("MOVE", "COPY"):
                    dest_rel = files_rel_of_url(dest, user)
                    if dest_rel is not None:
                        touched.append(dest_rel)
                self.store.bump(user, *touched)


def normalize_if_header(environ: dict[str, Any]) -> None:
    """Parse the RFC 4918 ``If`` header once, keying tagged lists by WsgiDAV's ref URLs.

    Clients tag lists with absolute URLs (``<http://host/remote.php/dav/files/u/a> (…)``);
    WsgiDAV compares tags with quoted server paths, so absolute tags never matched.
    """
    util.parse_if_header_dict(environ)
    conditions = environ.get("wsgidav.conditions.if")
    if not conditions:
        return
    out: dict[str, Any] = {}
    for key, lists in conditions.items():
        out[key] = lists
        if key != "*":
            path = quote(unquote(urlparse(key).path)).rstrip("/")
            out[path] = out[path + "/"] = lists
    environ["wsgidav.conditions.if"] = out


class AbsentResource:
    """Stand-in for a missing destination in ``If`` evaluation (entity tags never match)."""

    @staticmethod
    def support_etag() -> bool:
        return True


class NcRequestServer(RequestServer):
    """RequestServer with Sabre's semantics where stock WsgiDAV differs.

    * ``If-Match``/``If-None-Match``/``If-(Un)Modified-Since`` apply to the request target
      only (WsgiDAV also checked a MOVE/COPY destination and every member of a moved
      folder, so ``If-Match`` could never pass there).
    * MOVE/COPY are our own: WsgiDAV percent-decodes ``Destination`` before splitting off
      the query, so names containing ``?`` could not be targets.  A destination may be
      guarded with a tagged ``If: <dest-url> (["etag"])`` list.
    """

    def _evaluate_if_headers(self, res: Any, environ: dict[str, Any]) -> Any:
        if res is not None and res.path.rstrip("/") != environ["PATH_INFO"].rstrip("/"):
            saved = {k: environ.pop(k) for k in _HTTP_CONDITIONALS if k in environ}
            try:
                return super()._evaluate_if_headers(res, environ)
            finally:
                environ.update(saved)
        return super()._evaluate_if_headers(res, environ)

    def do_PROPFIND(self, environ: dict[str, Any], start_response: Any) -> Any:
        # RFC 4918 names the "names only" request <d:propname/>; WsgiDAV expects <d:name/>.
        length = _int_header(environ, "CONTENT_LENGTH")
        if length:
            body = environ["wsgi.input"].read(length)
            with contextlib.suppress(Exception):
                root = x.parse(body)
                for child in root:
                    if child.tag == x.clark(x.DAV, "propname"):
                        child.tag = x.clark(x.DAV, "name")
                        body = x.to_bytes(root)
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
        return super().do_PROPFIND(environ, start_response)

    def do_MOVE(self, environ: dict[str, Any], start_response: Any) -> Any:
        return self._nc_copy_move(environ, start_response, is_move=True)

    def do_COPY(self, environ: dict[str, Any], start_response: Any) -> Any:
        return self._nc_copy_move(environ, start_response, is_move=False)

    def _nc_copy_move(self, environ: dict[str, Any], start_response: Any, *, is_move: bool) -> Any:
        provider: NcFilesProvider = self._davProvider
        store = provider.store
        src_path = environ["PATH_INFO"]
        user, src_rel = split_dav_path(src_path)
        src = provider.get_resource_inst(src_path, environ)
        if src is None:
            raise NcDAVError(404, f"File with name {src_rel} could not be located")
        header = (environ.get("HTTP_DESTINATION") or "").strip()
        if not header:
            raise NcDAVError(400, "The destination header was not supplied")
        overwrite = (environ.get("HTTP_OVERWRITE") or "T").strip().upper()
        if overwrite not in ("T", "F"):
            raise NcDAVError(400, "The HTTP Overwrite header should be either T or F")
        depth = (environ.get("HTTP_DEPTH") or "infinity").strip().lower()
        if depth not in ("0", "infinity") or (is_move and src.is_collection and depth != "infinity"):
            raise NcDAVError(400, "The HTTP Depth header must be 0 or infinity (infinity for MOVE)")
        dest_rel = files_rel_of_url(header, user)
        if dest_rel is None:
            raise NcDAVError(403, "The destination is not inside the user's files")
        dest_path = util.normalize_path(f"/{user}/{dest_rel}").rstrip("/")
        _, dest_rel = split_dav_path(dest_path)
        if not src_rel or not dest_rel:
            raise NcDAVError(403, "The home folder cannot be moved, copied or overwritten")
        if dest_rel == src_rel:
            raise NcDAVError(403, "Source and destination uri are identical.")
        if dest_rel.startswith(src_rel + "/"):
            raise NcDAVError(409, "A folder cannot be moved or copied into itself")
        dest = provider.get_resource_inst(dest_path, environ)
        dest_parent = provider.get_resource_inst(util.get_uri_parent(dest_path), environ)
        if dest_parent is None or not dest_parent.is_collection:
            raise NcDAVError(409, "The destination node is not found")

        self._evaluate_if_headers(src, environ)
        dest_ref = quote(FILES_SHARE + dest_path) + ("/" if src.is_collection else "")
        self._check_tagged_if(dest, dest_ref, environ)
        if is_move:
            self._check_write_permission(src, "infinity", environ)
            self._check_write_permission(provider.get_resource_inst(util.get_uri_parent(src_path), environ),
                                         "0", environ)
        if dest is not None:
            self._check_write_permission(dest, "infinity", environ)
        else:
            self._check_write_permission(dest_parent, "0", environ)
        if dest is not None and overwrite == "F":
            raise NcDAVError(412, "The destination node already exists, and the overwrite header is set to false")

        pm = provider.prop_manager
        src_fp = src._file_path
        with store.lock:
            if dest is not None:
                dest.delete()
            dest_fp = provider._loc_to_file_path(dest_path, environ)
            if is_move:
                os.rename(src_fp, dest_fp)
                if pm:
                    pm.move_properties(src.get_ref_url(), dest_ref, with_children=True, environ=environ)
                src.remove_all_locks(recursive=True)
            else:
                if not src.is_collection:
                    shutil.copy2(src_fp, dest_fp)
                elif depth == "infinity":
                    shutil.copytree(src_fp, dest_fp, symlinks=True)
                else:
                    os.mkdir(dest_fp)
                if pm:
                    pm.copy_properties(src.get_ref_url(), dest_ref, environ)
        return util.send_status_response(environ, start_response, 204 if dest is not None else 201)

    def _check_tagged_if(self, res: Any, ref_url: str, environ: dict[str, Any]) -> None:
        conditions = environ.get("wsgidav.conditions.if") or {}
        for key in (ref_url.rstrip("/"), ref_url.rstrip("/") + "/"):
            if key in conditions:
                tokens: list[str] = []
                lm = self._davProvider.lock_manager
                if lm and res is not None:
                    locks = lm.get_indirect_url_lock_list(key, principal=environ.get("wsgidav.user_name"))
                    tokens = [lock["token"] for lock in locks]
                etag = res.get_etag() if res is not None else "[absent]"
                if not util.test_if_header_dict(res or AbsentResource(), {key: conditions[key]}, key, tokens, etag):
                    raise NcDAVError(412, "An If header precondition on the destination failed")
                return


class NcResolver(BaseMiddleware):
    """Last middleware: hand the request to :class:`NcRequestServer`."""

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        provider = environ["wsgidav.provider"]
        if provider is None:
            raise NcDAVError(404, "No such DAV collection")
        app_iter = NcRequestServer(provider)(environ, start_response)
        try:
            yield from app_iter
        finally:
            close = getattr(app_iter, "close", None)
            if close:
                close()


def _message_for(e: DAVError, environ: dict[str, Any]) -> str:
    if isinstance(e, NcDAVError):
        return e.context_info or ""
    status, method = e.value, environ.get("REQUEST_METHOD", "")
    ctx = str(e.context_info or "")
    _, rel = split_dav_path(environ.get("PATH_INFO", ""))
    if status == 404:
        return f"File with name {rel} could not be located"
    if status == 409:
        if method == "MKCOL":
            return "Parent node does not exist"
        if method in ("MOVE", "COPY"):
            return "The destination node is not found"
        return "Files cannot be created in non-existent collections"
    if status == 412:
        if "If-Match" in ctx:
            return "An If-Match header was specified, but none of the specified ETags matched."
        if "If-None-Match" in ctx:
            return "An If-None-Match header was specified, but the ETag matched (or * was specified)."
        if "Overwrite" in ctx:
            return "The destination node already exists, and the overwrite header is set to false"
    if status == 405 and method == "MKCOL":
        return "The resource you tried to create already exists"
    if status == 423:
        return ctx or "The resource you are trying to modify is locked"
    return ctx or get_http_status_string(e).split(" ", 1)[-1]


def _error_response(e: DAVError, environ: dict[str, Any], start_response: Any) -> list[bytes]:
    status = get_http_status_string(e)
    if e.value in (204, 304):
        start_response(status, [("Content-Length", "0")])
        return [b""]
    extra = []
    if e.err_condition is not None:
        with contextlib.suppress(Exception):
            extra = list(e.err_condition.as_xml())
    exception = getattr(e, "sabre_exception", None) or x.SABRE_EXCEPTIONS.get(e.value, "Sabre\\DAV\\Exception")
    body = x.sabre_error_body(exception, _message_for(e, environ), extra)
    headers = [("Content-Type", x.XML_CONTENT_TYPE), ("Content-Length", str(len(body)))]
    headers += list(e.add_headers or [])
    start_response(status, headers)
    if environ.get("REQUEST_METHOD") == "HEAD":
        return [b""]
    return [body]


def _as_dav_error(exc: BaseException) -> DAVError:
    if isinstance(exc, DAVError):
        return exc
    if isinstance(exc, SabreError):
        return NcDAVError(exc.status, exc.message, exception=exc.exception, add_headers=exc.headers)
    if isinstance(exc, OSError):
        if exc.errno in (errno.EACCES, errno.EPERM):
            return NcDAVError(403, exc.strerror or "Forbidden")
        if exc.errno == errno.ENOSPC:
            return NcDAVError(507, "No space left on the device")
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return NcDAVError(404, "File not found")
    _log.exception("webdav sandbox: internal error")
    return NcDAVError(500, f"{type(exc).__name__}: {exc}", exception="Sabre\\DAV\\Exception")


class NcGlue(BaseMiddleware):
    """First middleware: trusted user header, Sabre error bodies, Nextcloud-shaped 2xx bodies."""

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        environ["wsgidav.auth.user_name"] = environ.get("HTTP_X_REMOTE_USER", "")
        captured: list[Any] = []

        def _capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured[:] = [status, list(headers)]
            return lambda _data: None

        app_iter: Any = None
        try:
            app_iter = self.next_app(environ, _capture)
            chunks = iter(app_iter)
            first = next(chunks, None)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a Sabre error body
            if app_iter is not None and hasattr(app_iter, "close"):
                app_iter.close()
            return _error_response(_as_dav_error(exc), environ, start_response)
        status, headers = captured
        headers = [(k, v) for k, v in headers if k.lower() != "date"]  # the HTTP server adds its own
        code = int(status.split(" ", 1)[0])
        ctype = next((v for k, v in headers if k.lower() == "content-type"), "")
        method = environ.get("REQUEST_METHOD", "")

        def _rest() -> bytes:
            data = b"" if first is None else first
            parts = [data, *chunks]
            if hasattr(app_iter, "close"):
                app_iter.close()
            return b"".join(parts)

        if code >= 400 and "xml" not in ctype:
            _rest()
            return _error_response(DAVError(code), environ, start_response)
        if code in (200, 201) and method not in ("GET", "HEAD") and ctype.startswith("text/html"):
            _rest()
            kept = [(k, v) for k, v in headers if k.lower() not in ("content-type", "content-length")]
            start_response(status, [*kept, ("Content-Length", "0")])
            return [b""]
        if code >= 400:  # an XML error body (a DAV precondition): wrap it in Sabre's shape
            body = _rest()
            extra: list[Any] = []
            with contextlib.suppress(Exception):
                root = x.parse(body)
                if root.tag == x.clark(x.DAV, "error"):
                    extra = [el for el in root if x.split_clark(el.tag)[0] != x.SABRE]
            e = DAVError(code)
            exception = x.SABRE_EXCEPTIONS.get(code, "Sabre\\DAV\\Exception")
            body = x.sabre_error_body(exception, _message_for(e, environ), extra)
            kept = [(k, v) for k, v in headers if k.lower() not in ("content-length", "content-type")]
            start_response(status, [*kept, ("Content-Type", x.XML_CONTENT_TYPE), ("Content-Length", str(len(body)))])
            return [b"" if method == "HEAD" else body]
        if code == 207 or (method in ("LOCK", "PROPPATCH") and "xml" in ctype):
            body = x.reserialize(_rest()) if method != "HEAD" else _rest()
            kept = [(k, v) for k, v in headers if k.lower() not in ("content-length", "content-type")]
            start_response(status, [*kept, ("Content-Type", x.XML_CONTENT_TYPE), ("Content-Length", str(len(body)))])
            return [body]
        start_response(status, headers)
        return _stream(first, chunks, app_iter)


def _stream(first: bytes | None, chunks: Iterator[bytes], app_iter: Any) -> Iterator[bytes]:
    try:
        if first is not None:
            yield first
        yield from chunks
    finally:
        if hasattr(app_iter, "close"):
            app_iter.close()


def build_wsgidav(store: DavStore) -> tuple[WsgiDAVApp, NcFilesProvider]:
    provider = NcFilesProvider(store)
    config = {
        "provider_mapping": {FILES_SHARE: provider},
        "middleware_stack": [NcGlue, NcResolver],
        "lock_storage": True,
        "property_manager": True,
        "verbose": 0,
        "logging": {"enable": False},
        "dir_browser": {"enable": False},
        "block_size": BLOCK_SIZE,
        "add_header_MS_Author_Via": False,
        "suppress_version_info": True,
        "honor_mtime_header": False,
        "http_authenticator": {"accept_basic": False, "accept_digest": False, "trusted_auth_header": None},
    }
    return WsgiDAVApp(config), provider
