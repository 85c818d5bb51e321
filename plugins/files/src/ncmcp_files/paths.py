"""Where requests go: user paths in, encoded request paths out, server hrefs back to user paths.

Every path a tool sends to Nextcloud is built by :class:`DavSpace` from a path that went through
:func:`normalize` first, so traversal, control characters and header injection are refused in one
place and names with spaces, ``#``, ``%``, ``?`` or non-ASCII letters are percent-encoded the same
way everywhere. Hrefs coming back are decoded (by :mod:`ncmcp.nextcloud.xml`) before they are
turned into user paths again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

from ncmcp import InvalidArgument

# C0 controls (NUL, CR, LF, TAB …), DEL and C1 controls: never part of a Nextcloud name, and CR/LF
# are how header injection starts.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
FOLDER_MIME = "httpd/unix-directory"
#: Longest path accepted (the tools' schemas say the same).
MAX_PATH = 4096
#: How much of a user value an error message repeats.
SHOWN = 120


def shorten(value: str) -> str:
    """A user value for a message: long ones are cut in the middle, so errors stay readable."""
    return value if len(value) <= SHOWN else f"{value[:SHOWN // 2]}…{value[-SHOWN // 4:]} ({len(value)} characters)"


def normalize(path: str, *, what: str = "path") -> str:
    """A user path as ``"a/b/c"`` (``""`` is the user's root), or :class:`InvalidArgument` saying why.

    Paths are relative to the user's files root; a leading ``/`` means that root too. Repeated and
    trailing slashes and ``.`` segments are dropped. ``..`` is refused rather than resolved: a path
    that tries to climb is a mistake or an attack, and guessing what was meant would hide both.
    Names are plain text (this side encodes them), so a segment that *decodes* to ``..``, a
    separator or a control character (``%2e%2e``, ``%2f``, ``%00``) is refused too: a proxy that
    decodes twice must not turn it into a traversal.
    """
    if _CONTROL.search(path):
        raise InvalidArgument(f"{what} contains a control character (such as NUL, a tab or a line break); "
                              "Nextcloud names cannot contain them")
    if "\\" in path:
        raise InvalidArgument(f"{what} contains a backslash; separate folders with '/' (Nextcloud names cannot contain '\\')")
    parts = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            raise InvalidArgument(f"{what} {shorten(path)!r} contains '..'; paths are relative to your Nextcloud root "
                                  "and cannot leave it")
        if "%" in segment and _decodes_to_escape(segment):
            raise InvalidArgument(f"{what} {shorten(path)!r} contains a percent-encoded '..', '/', '\\' or control "
                                  "character; give names as plain text (they are encoded for you)")
        parts.append(segment)
    return "/".join(parts)


def _decodes_to_escape(segment: str) -> bool:
    decoded = segment
    for _ in range(3):  # %252e%252e decodes to %2e%2e, then to ..
        decoded = unquote(decoded)
        if decoded in (".", "..") or "/" in decoded or "\\" in decoded or _CONTROL.search(decoded):
            return True
        if "%" not in decoded:
            return False
    return False


def whole(value: int | float | None) -> int | None:
    """JSON Schema's ``integer`` admits ``2.0`` (and ``-0.0``): make such values real ints."""
    return None if value is None else int(value)


def segment(name: str, *, what: str) -> str:
    """A single name (no ``/``), for trash-bin and version ids taken from earlier results."""
    clean = normalize(name, what=what)
    if not clean or "/" in clean:
        raise InvalidArgument(f"{what} must be a single name as returned by the listing, without '/'")
    return clean


def encode(rel: str) -> str:
    """Percent-encode each segment of a normalized path (``/`` stays the separator)."""
    return "/".join(quote(part, safe="") for part in rel.split("/")) if rel else ""


def parent_of(rel: str) -> str:
    return rel.rpartition("/")[0]


def name_of(rel: str) -> str:
    return rel.rpartition("/")[2]


def join(folder: str, name: str) -> str:
    return f"{folder}/{name}" if folder else name


def is_within(rel: str, folder: str) -> bool:
    """``rel`` is ``folder`` itself or below it."""
    return not folder or rel == folder or rel.startswith(folder + "/")


def resource_uri(rel: str) -> str:
    """The MCP resource URI of a file (``nc://files/{path}``), percent-encoded like a request path."""
    return f"nc://files/{encode(rel)}"


def from_resource_path(raw: str) -> str:
    """The ``{path}`` of a resource URI, decoded and normalized."""
    if len(raw) > MAX_PATH * 3:
        raise InvalidArgument(f"The path is longer than {MAX_PATH} characters")
    return normalize(unquote(raw))


@dataclass(frozen=True, slots=True)
class DavSpace:
    """One user's DAV trees on one server: request paths (relative to the client's base URL),
    absolute URLs (for ``Destination`` and ``If`` headers) and the way back from hrefs."""

    user_id: str
    base_url: str  # the Nextcloud client's base URL, possibly with a sub-path such as /nextcloud

    @property
    def _user(self) -> str:
        return quote(self.user_id, safe="")

    @property
    def _base_path(self) -> str:
        return urlsplit(self.base_url).path.rstrip("/")

    def files(self, rel: str = "") -> str:
        return f"/remote.php/dav/files/{self._user}/{encode(rel)}"

    def files_url(self, rel: str) -> str:
        """Absolute URL (``Destination`` wants one)."""
        return self.base_url.rstrip("/") + self.files(rel)

    def files_href(self, rel: str) -> str:
        """Path on the server origin, with any sub-path (the resource tag of an ``If`` header)."""
        return self._base_path + self.files(rel)

    def search_scope(self, rel: str) -> str:
        """The ``d:href`` of a SEARCH scope: relative to the DAV root, percent-encoded."""
        return f"/files/{self._user}/{encode(rel)}".rstrip("/") if rel else f"/files/{self._user}"

    def trash(self, name: str = "") -> str:
        return f"/remote.php/dav/trashbin/{self._user}/trash/{quote(name, safe='')}"

    def trash_restore_url(self, name: str) -> str:
        return self.base_url.rstrip("/") + f"/remote.php/dav/trashbin/{self._user}/restore/{quote(name, safe='')}"

    def versions(self, file_id: int, version: str = "") -> str:
        return f"/remote.php/dav/versions/{self._user}/versions/{file_id}/{quote(version, safe='')}"

    def version_restore_url(self) -> str:
        return self.base_url.rstrip("/") + f"/remote.php/dav/versions/{self._user}/restore/target"

    def upload(self, upload_id: str, chunk: str = "") -> str:
        return f"/remote.php/dav/uploads/{self._user}/{quote(upload_id, safe='')}/{quote(chunk, safe='')}".rstrip("/")

    def rel_from_href(self, href: str) -> str | None:
        """The user path of a decoded href under this user's files root, else ``None``."""
        root = f"{self._base_path}/remote.php/dav/files/{self.user_id}"
        if href.rstrip("/") == root:
            return ""
        if not href.startswith(root + "/"):
            return None
        return href[len(root) + 1:].strip("/")

    def last_segment(self, href: str) -> str:
        """The decoded last name of an href (trash-bin items, versions, chunks)."""
        return href.rstrip("/").rpartition("/")[2]
