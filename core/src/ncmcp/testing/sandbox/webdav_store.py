"""On-disk state of the WebDAV files sandbox: layout, file ids, ETags, favourites, quota,
trash bin and versions.  Everything here is synchronous and thread-safe (one re-entrant
lock per store); the WsgiDAV provider and the asynchronous Nextcloud extras both use it.

Layout under ``root``::

    <user>/files/            the user's files (what /remote.php/dav/files/<user>/ shows)
    <user>/trash/            trashed items, named "<name>.d<deletion timestamp>"
    <user>/versions/<id>/    old contents of file <id>, one file per version, named by timestamp
    <user>/uploads/<id>/     chunked-upload (v2) directories and their chunks
    <user>/.dav-tmp/         request bodies being received (renamed or copied on success)
    <user>/dav-state.json    favourites and trash metadata (original location, deletion time)

File ids are inode numbers: they survive MOVE (a rename), trash and restore, and they
are what a Notes fake storing notes in the same tree gets from ``os.stat``.  Overwrites
keep the inode (content is copied into the existing file), so ids also survive PUT,
chunked-upload assembly and version restore.
"""

from __future__ import annotations

import itertools
import json
import mimetypes
import os
import pathlib
import re
import secrets
import shutil
import stat as stat_mod
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from .webdav_xml import SabreError

#: Nextcloud's instance id as used in ``oc:id`` (``oc`` + 10 characters).
INSTANCE_ID = "ocsandbox01"
FILE_PERMISSIONS = "RGDNVW"
FOLDER_PERMISSIONS = "RGDNVCK"
FOLDER_MIME = "httpd/unix-directory"

_USER_RE = re.compile(r"^[A-Za-z0-9 _.@\-']{1,64}$")

_MIME = mimetypes.MimeTypes()  # built-in table only: the same answers on every machine
_MIME_OVERRIDES = {
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".txt": "text/plain",
    ".json": "application/json",
    ".yml": "application/yaml",
    ".yaml": "application/yaml",
    ".ics": "text/calendar",
    ".vcf": "text/vcard",
    ".webp": "image/webp",
    ".heic": "image/heic",
    ".odt": "application/vnd.oasis.opendocument.text",
    ".ods": "application/vnd.oasis.opendocument.spreadsheet",
    ".odp": "application/vnd.oasis.opendocument.presentation",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
}
_PREVIEW_MIMES = {
    "image/png", "image/jpeg", "image/gif", "image/bmp", "image/webp", "image/heic",
    "image/x-xbitmap", "text/plain", "text/markdown", "audio/mpeg",
}


def check_user_id(user: str) -> str:
    """Nextcloud user ids: letters, digits, space, ``_ . @ - '``; never ``.`` or ``..``."""
    if not _USER_RE.match(user or "") or user in (".", ".."):
        raise ValueError(f"invalid user id {user!r}")
    return user


def content_type(name: str) -> str:
    ext = os.path.splitext(name)[1].lower()
    if ext in _MIME_OVERRIDES:
        return _MIME_OVERRIDES[ext]
    guessed, _ = _MIME.guess_type("x" + ext, strict=False) if ext else (None, None)
    return guessed or "application/octet-stream"


def has_preview(mime: str) -> bool:
    return mime in _PREVIEW_MIMES


def oc_id(fileid: int) -> str:
    """``oc:id``: the file id zero-padded to 8 digits followed by the instance id."""
    return f"{fileid:08d}{INSTANCE_ID}"


def file_etag(st: os.stat_result) -> str:
    """Unquoted strong ETag of a file: inode, mtime in ns and size (all hex)."""
    return f"{st.st_ino:x}-{st.st_mtime_ns:x}-{st.st_size:x}"


def split_rel(rel: str) -> list[str]:
    """Split a user-relative path (``a/b``) into safe components; rejects ``.``/``..``/NUL."""
    parts = [p for p in rel.split("/") if p]
    for p in parts:
        if p in (".", "..") or "\0" in p or "\\" in p:
            raise SabreError(400, f"Invalid path segment {p!r}")
    return parts


def tree_size(path: str | os.PathLike[str]) -> int:
    """Total size of the regular files under ``path`` (or of ``path`` itself)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return 0
    if not stat_mod.S_ISDIR(st.st_mode):
        return st.st_size if stat_mod.S_ISREG(st.st_mode) else 0
    total = 0
    stack = [os.fspath(path)]
    while stack:
        current = stack.pop()
        try:
            with os.scandir(current) as it:
                for entry in it:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    elif entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_size
        except FileNotFoundError:
            continue
    return total


def _tree_inodes(path: pathlib.Path) -> Iterator[int]:
    try:
        yield os.lstat(path).st_ino
    except FileNotFoundError:
        return
    if path.is_dir() and not path.is_symlink():
        for dirpath, dirnames, filenames in os.walk(path):
            for name in itertools.chain(dirnames, filenames):
                try:
                    yield os.lstat(os.path.join(dirpath, name)).st_ino
                except FileNotFoundError:
                    pass


@dataclass(slots=True)
class TrashItem:
    name: str  # "<filename>.d<timestamp>", the href segment
    filename: str
    location: str  # original path relative to the user's files root
    deleted: int
    path: pathlib.Path


@dataclass(slots=True)
class Version:
    name: str  # timestamp
    path: pathlib.Path
    st: os.stat_result


class DavStore:
    """Per-sandbox file state.  ``quota_bytes`` is the default per-user quota (None = unlimited)."""

    def __init__(self, root: pathlib.Path, *, quota_bytes: int | None = None, min_chunk_size: int = 0) -> None:
        self.root = pathlib.Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.default_quota = quota_bytes
        self.min_chunk_size = min_chunk_size
        self.lock = threading.RLock()
        self.boot = secrets.token_hex(3)  # folder ETags from an earlier process never repeat
        self._quotas: dict[str, int | None] = {}
        self._gens: dict[int, int] = {}
        self._counter = itertools.count(1)
        self._states: dict[str, dict[str, Any]] = {}
        self._provisioned: set[str] = set()
        self._id_paths: dict[tuple[str, int], pathlib.Path] = {}
        self._real_bases: dict[str, str] = {}

    # -- layout -----------------------------------------------------------------------
    def home(self, user: str) -> pathlib.Path:
        return self.root / check_user_id(user)

    def files_dir(self, user: str) -> pathlib.Path:
        return self.home(user) / "files"

    def trash_dir(self, user: str) -> pathlib.Path:
        return self.home(user) / "trash"

    def versions_dir(self, user: str) -> pathlib.Path:
        return self.home(user) / "versions"

    def uploads_dir(self, user: str) -> pathlib.Path:
        return self.home(user) / "uploads"

    def provision(self, user: str) -> None:
        home = self.home(user)
        with self.lock:
            for sub in ("files", "trash", "versions", "uploads", ".dav-tmp"):
                (home / sub).mkdir(parents=True, exist_ok=True)
            self._provisioned.add(user)

    def is_provisioned(self, user: str) -> bool:
        return user in self._provisioned

    def fs_path(self, user: str, rel: str) -> pathlib.Path:
        """Filesystem path of ``rel`` (relative to the user's files root), kept inside it."""
        base = self.files_dir(user)
        parts = split_rel(rel)
        path = base.joinpath(*parts)
        real_base = self._real_bases.get(user)
        if real_base is None:
            real_base = self._real_bases[user] = os.path.realpath(base)
        if not parts:
            return path
        real = os.path.realpath(path)
        if real != real_base and not real.startswith(real_base + os.sep):
            raise SabreError(403, "Access outside the user's files is not allowed")
        return path

    def new_tmp(self, user: str) -> pathlib.Path:
        return self.home(user) / ".dav-tmp" / uuid.uuid4().hex

    # -- persisted state ----------------------------------------------------------------
    def _state(self, user: str) -> dict[str, Any]:
        state = self._states.get(user)
        if state is None:
            path = self.home(user) / "dav-state.json"
            try:
                state = json.loads(path.read_text("utf-8"))
            except (FileNotFoundError, ValueError):
                state = {}
            state.setdefault("favorites", [])
            state.setdefault("trash", {})
            self._states[user] = state
        return state

    def _save(self, user: str) -> None:
        path = self.home(user) / "dav-state.json"
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self._state(user), indent=1, sort_keys=True), "utf-8")
        os.replace(tmp, path)

    # -- ids, ETags, favourites -----------------------------------------------------------
    def folder_etag(self, st: os.stat_result) -> str:
        """Folder ETag: inode, mtime, a generation bumped by writes anywhere below, boot id."""
        gen = self._gens.get(st.st_ino, 0)
        return f"{st.st_ino:x}-{st.st_mtime_ns:x}-{gen:x}-{self.boot}"

    def bump(self, user: str, *rels: str) -> None:
        """Record a change at each ``rel``: every folder above it gets a new ETag."""
        files = self.files_dir(user)
        with self.lock:
            gen = next(self._counter)
            for rel in rels:
                try:
                    parts = split_rel(rel)
                except SabreError:
                    continue
                folder = files
                chain = [folder]
                for part in parts[:-1]:
                    folder = folder / part
                    chain.append(folder)
                for folder in chain:
                    try:
                        self._gens[os.stat(folder).st_ino] = gen
                    except OSError:
                        pass

    def is_favorite(self, user: str, fileid: int) -> bool:
        with self.lock:
            return fileid in self._state(user)["favorites"]

    def favorites(self, user: str) -> set[int]:
        with self.lock:
            return set(self._state(user)["favorites"])

    def set_favorite(self, user: str, fileid: int, on: bool) -> None:
        with self.lock:
            favs: list[int] = self._state(user)["favorites"]
            if on and fileid not in favs:
                favs.append(fileid)
            elif not on and fileid in favs:
                favs.remove(fileid)
            else:
                return
            self._save(user)

    def forget_tree(self, user: str, path: pathlib.Path) -> None:
        """Before ``path`` disappears for good: drop its favourites and versions (ids may be reused)."""
        with self.lock:
            inodes = set(_tree_inodes(path))
            state = self._state(user)
            before = len(state["favorites"])
            state["favorites"] = [f for f in state["favorites"] if f not in inodes]
            if len(state["favorites"]) != before:
                self._save(user)
            vdir = self.versions_dir(user)
            for ino in inodes:
                shutil.rmtree(vdir / str(ino), ignore_errors=True)
                self._id_paths.pop((user, ino), None)

    def path_for_fileid(self, user: str, fileid: int) -> pathlib.Path | None:
        """The file or folder with this id in the user's files tree (None if absent)."""
        cached = self._id_paths.get((user, fileid))
        if cached is not None:
            try:
                if os.lstat(cached).st_ino == fileid:
                    return cached
            except OSError:
                pass
        files = self.files_dir(user)
        try:
            if os.lstat(files).st_ino == fileid:
                return files
        except OSError:
            return None
        for dirpath, dirnames, filenames in os.walk(files):
            for name in itertools.chain(filenames, dirnames):
                full = pathlib.Path(dirpath, name)
                try:
                    if os.lstat(full).st_ino == fileid:
                        self._id_paths[(user, fileid)] = full
                        return full
                except OSError:
                    pass
        return None

    def rel_of(self, user: str, path: pathlib.Path) -> str:
        rel = path.relative_to(self.files_dir(user)).as_posix()
        return "" if rel == "." else rel

    # -- quota ----------------------------------------------------------------------------
    def quota(self, user: str) -> int | None:
        return self._quotas.get(user, self.default_quota)

    def set_quota(self, user: str, quota_bytes: int | None) -> None:
        self._quotas[user] = quota_bytes

    def used(self, user: str) -> int:
        return tree_size(self.files_dir(user))

    def free(self, user: str) -> int | None:
        """Bytes left under the quota, or None when unlimited."""
        quota = self.quota(user)
        if quota is None:
            return None
        return max(0, quota - self.used(user))

    def ensure_room(self, user: str, incoming: int, *, replaced: int = 0, where: str = "") -> None:
        """Raise 507 unless ``incoming`` bytes (replacing ``replaced`` bytes) fit the quota."""
        quota = self.quota(user)
        if quota is None or incoming <= 0:
            return
        free = max(0, quota - self.used(user) + replaced)
        if incoming > free:
            raise SabreError(507, f"Insufficient space in /{where}, {incoming} required, {free} available")

    # -- writes ---------------------------------------------------------------------------
    def commit_file(
        self, user: str, tmp: pathlib.Path, rel: str, *, mtime: float | None = None, exclusive: bool = False,
        if_match: str | None = None,
    ) -> tuple[bool, os.stat_result]:
        """Move a fully received body into place at ``rel``.

        A new file takes the temporary file (rename).  An existing one keeps its inode:
        its old content is saved as a version, then the new content is copied in.
        ``exclusive`` (``If-None-Match: *``) answers 412 if the file appeared meanwhile, and
        ``if_match`` (the request's ``If-Match``) 412 if the file changed meanwhile: WsgiDAV checks the
        preconditions before receiving the body, so concurrent writers could otherwise all pass.
        Returns ``(created, stat)``.
        """
        path = self.fs_path(user, rel)
        with self.lock:
            try:
                try:
                    old: os.stat_result | None = os.lstat(path)
                except FileNotFoundError:
                    old = None
                if old is not None and stat_mod.S_ISDIR(old.st_mode):
                    raise SabreError(409, "A folder with this name already exists")
                if if_match is not None and if_match.strip() != "*":
                    wanted = {tag.strip().removeprefix("W/") for tag in if_match.split(",")}
                    if old is None or f'"{file_etag(old)}"' not in wanted:
                        raise SabreError(412, "An If-Match header was specified, but none of the specified ETags matched.")
                if old is None:
                    if not path.parent.is_dir():
                        raise SabreError(409, "Files cannot be created in non-existent collections")
                    os.replace(tmp, path)
                else:
                    if exclusive:
                        raise SabreError(
                            412, "An If-None-Match header was specified, but the ETag matched (or * was specified)."
                        )
                    self.save_version(user, path, old)
                    shutil.copyfile(tmp, path)  # opens "wb": same inode, same file id
            finally:
                tmp.unlink(missing_ok=True)
            st = self.finish_write(path, old.st_mtime_ns if old else None, mtime)
            self.bump(user, rel)
            return old is None, st

    @staticmethod
    def finish_write(path: pathlib.Path, prev_mtime_ns: int | None, mtime: float | None = None) -> os.stat_result:
        """Set the mtime after a write so that the ETag always changes.

        Without ``mtime`` (``X-OC-MTime``) the write time stays, raised to just above the
        previous mtime if the clock did not move.  With ``mtime`` the seconds are the
        client's and the nanoseconds come from the clock (Nextcloud keeps whole seconds).
        """
        st = os.stat(path)
        target = st.st_mtime_ns
        if mtime is not None:
            target = int(mtime) * 1_000_000_000 + time.time_ns() % 1_000_000_000
        prev = prev_mtime_ns
        # Coarse file-system clocks give equal (or, after a raised mtime, slightly lower)
        # stamps for quick successive writes: step just above the previous one instead.
        if prev is not None and (target == prev or (mtime is None and prev - 1_000_000_000 < target < prev)):
            target = prev + 1
        if target != st.st_mtime_ns:
            os.utime(path, ns=(st.st_atime_ns, target))
            st = os.stat(path)
        return st

    # -- versions -------------------------------------------------------------------------
    def save_version(self, user: str, path: pathlib.Path, st: os.stat_result | None = None) -> str | None:
        """Keep the current content of ``path`` as a version (not for empty files)."""
        st = st or os.stat(path)
        if st.st_size == 0 or not stat_mod.S_ISREG(st.st_mode):
            return None
        with self.lock:
            vdir = self.versions_dir(user) / str(st.st_ino)
            vdir.mkdir(parents=True, exist_ok=True)
            stamp = int(st.st_mtime)
            names = [int(n) for n in os.listdir(vdir) if n.isdigit()]
            if names:
                stamp = max(stamp, max(names) + 1)
            shutil.copy2(path, vdir / str(stamp))
            return str(stamp)

    def versions(self, user: str, fileid: int) -> list[Version]:
        vdir = self.versions_dir(user) / str(fileid)
        out = []
        try:
            names = os.listdir(vdir)
        except FileNotFoundError:
            return []
        for name in names:
            if name.isdigit():
                p = vdir / name
                try:
                    out.append(Version(name, p, os.stat(p)))
                except FileNotFoundError:
                    pass
        out.sort(key=lambda v: int(v.name), reverse=True)
        return out

    def version_path(self, user: str, fileid: int, name: str) -> pathlib.Path:
        if not name.isdigit():
            raise SabreError(404, f"Version {name} not found")
        p = self.versions_dir(user) / str(fileid) / name
        if not p.is_file():
            raise SabreError(404, f"Version {name} not found")
        return p

    def restore_version(
        self, user: str, fileid: int, name: str, check: Callable[[str], None] | None = None
    ) -> os.stat_result:
        """Make version ``name`` current again; the current content becomes a version."""
        with self.lock:
            path = self.path_for_fileid(user, fileid)
            if path is None or not path.is_file():
                raise SabreError(404, f"File with id {fileid} not found")
            vpath = self.version_path(user, fileid, name)
            rel = self.rel_of(user, path)
            if check:
                check(rel)
            old = os.stat(path)
            self.save_version(user, path, old)
            shutil.copyfile(vpath, path)
            vpath.unlink()
            st = self.finish_write(path, old.st_mtime_ns)
            self.bump(user, rel)
            return st

    def delete_version(self, user: str, fileid: int, name: str) -> None:
        with self.lock:
            self.version_path(user, fileid, name).unlink()

    # -- trash bin ------------------------------------------------------------------------
    def trash(self, user: str, rel: str) -> str:
        """Move ``rel`` into the trash bin; returns its trash name ``<name>.d<timestamp>``."""
        path = self.fs_path(user, rel)
        parts = split_rel(rel)
        if not parts:
            raise SabreError(403, "The home folder cannot be deleted")
        with self.lock:
            tdir = self.trash_dir(user)
            stamp = int(time.time())
            while os.path.lexists(tdir / f"{path.name}.d{stamp}"):
                stamp += 1
            tname = f"{path.name}.d{stamp}"
            os.rename(path, tdir / tname)
            self._state(user)["trash"][tname] = {"filename": path.name, "location": "/".join(parts), "deleted": stamp}
            self._save(user)
            self.bump(user, rel)
            return tname

    def trash_items(self, user: str) -> list[TrashItem]:
        tdir = self.trash_dir(user)
        with self.lock:
            meta = dict(self._state(user)["trash"])
        items = []
        for name in sorted(os.listdir(tdir)):
            info = meta.get(name)
            if info is None:
                base, _, stamp = name.rpartition(".d")
                info = {"filename": base or name, "location": base or name,
                        "deleted": int(stamp) if stamp.isdigit() else 0}
            items.append(TrashItem(name, info["filename"], info["location"], int(info["deleted"]), tdir / name))
        return items

    def trash_item(self, user: str, name: str) -> TrashItem:
        for item in self.trash_items(user):
            if item.name == name:
                return item
        raise SabreError(404, f"File with name {name} could not be located")

    def restore(self, user: str, name: str, check: Callable[[str], None] | None = None) -> str:
        """Put trash item ``name`` back where it was; returns the restored path.

        As in Nextcloud: a missing original folder restores into the files root, and a
        name already taken becomes ``name (restored).ext``, ``name (restored 2).ext`` …
        """
        with self.lock:
            item = self.trash_item(user, name)
            parent_rel, _, filename = item.location.rpartition("/")
            filename = filename or item.filename
            parent = self.fs_path(user, parent_rel)
            if not parent.is_dir():
                parent_rel, parent = "", self.files_dir(user)
            target = filename
            if os.path.lexists(parent / target):
                stem, ext = os.path.splitext(filename)
                target = f"{stem} (restored){ext}"
                n = 2
                while os.path.lexists(parent / target):
                    target = f"{stem} (restored {n}){ext}"
                    n += 1
            rel = f"{parent_rel}/{target}".lstrip("/")
            if check:
                check(rel)
            os.rename(item.path, parent / target)
            self._state(user)["trash"].pop(name, None)
            self._save(user)
            self.bump(user, rel)
            return rel

    def purge(self, user: str, name: str | None = None) -> None:
        """Delete trash item ``name`` for good (all items when ``name`` is None)."""
        with self.lock:
            items = self.trash_items(user) if name is None else [self.trash_item(user, name)]
            for item in items:
                self.forget_tree(user, item.path)
                if item.path.is_dir() and not item.path.is_symlink():
                    shutil.rmtree(item.path)
                else:
                    item.path.unlink(missing_ok=True)
                self._state(user)["trash"].pop(item.name, None)
            self._save(user)

    def remove_tree(self, user: str, path: pathlib.Path) -> None:
        """Delete ``path`` for good (MOVE/COPY overwriting a target)."""
        with self.lock:
            self.forget_tree(user, path)
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
