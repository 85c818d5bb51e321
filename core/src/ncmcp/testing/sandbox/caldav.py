"""CalDAV and CardDAV for the sandbox: a real server plus Nextcloud's behaviours.

``build_caldav_app(root, backend=...)`` returns a :class:`CalDavSandbox` whose ``app`` is
an ASGI application serving everything under ``/remote.php/dav/`` (except the files
trees, which the front routes elsewhere).  It runs Radicale (default) or Xandikos
in-process and adds, in a thin layer in front of them, what Nextcloud does and they
do not:

* **Users come from ``X-Remote-User``.**  The sandbox front authenticates, strips
  ``Authorization`` and any client-sent ``X-Remote-User`` and sets ``X-Remote-User`` to
  the Nextcloud user id.  Without the header the layer answers 401.  Each user only sees
  their own tree (Radicale ``owner_only``; a path gate for Xandikos): 403 otherwise.
* **Defaults** (:meth:`CalDavSandbox.provision_user`, also run on a user's first
  request, like Nextcloud creating them on first login): calendar ``personal``
  ("Personal", VEVENT only), calendar ``tasks`` ("Tasks", VEVENT+VTODO; a sandbox
  addition so tests have a task list), address book ``contacts`` ("Contacts") and the
  read-only system address book ``z-server-generated--system`` ("Accounts") holding cards
  for the user, ``admin`` and ``support``.
* **supported-calendar-component-set is enforced**: a PUT whose components the target
  calendar does not list answers 403 with Sabre's ``InvalidComponentType`` body (a
  ``Sabre\\DAV\\Exception\\Forbidden`` subclass, as Nextcloud sends it) and the message
  "iCalendar objects must at least have a component of type VEVENT".  The set is read
  from the calendar itself (an internal ``PROPFIND``), cached per collection and dropped
  on MKCALENDAR/MKCOL/PROPPATCH/DELETE/MOVE/COPY touching the collection.
* **The system address book is read-only**: PUT/DELETE/PROPPATCH/MKCOL/MKCALENDAR/POST
  and MOVE/COPY in or into it answer 403 ``Sabre\\DAVACL\\Exception\\NeedPrivileges``, and
  ``DAV:current-user-privilege-set`` in PROPFIND answers lists only read privileges.
* XML requests without ``Content-Type`` get ``application/xml; charset=utf-8`` (Nextcloud
  accepts them; Xandikos would answer 415).

Mounting: the app expects ASGI's usual convention, ``scope["path"]`` is the full path
(``/remote.php/dav/alice/personal/x.ics``) whatever ``root_path`` is.  A scope whose
``path`` does not start with ``/remote.php/dav`` but whose ``root_path`` ends with it (an
older mount convention that strips the prefix) is accepted too.  Other paths give 404.

Layouts (clients must discover them from ``PROPFIND /remote.php/dav/``
``current-user-principal`` → ``calendar-home-set`` / ``addressbook-home-set``):

==========  =========================  ====================================  ==================================
backend     principal                  calendar home                         address-book home
==========  =========================  ====================================  ==================================
radicale    /remote.php/dav/<u>/       /remote.php/dav/<u>/                  /remote.php/dav/<u>/
xandikos    /remote.php/dav/<u>/       /remote.php/dav/<u>/calendars/        /remote.php/dav/<u>/contacts/
==========  =========================  ====================================  ==================================

Default collections are children of the home sets (``CalDavSandbox.layout(user)`` gives
the hrefs).
"""

from __future__ import annotations

import io
import logging
import pathlib
import sys
import threading
import xml.etree.ElementTree as ET  # noqa: N817 - serialisation only; parsing uses defusedxml
from collections.abc import Awaitable, Callable, MutableMapping
from http import HTTPStatus
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

import anyio.to_thread
from defusedxml.ElementTree import fromstring as parse_xml

from .caldav_common import (
    DAV_PREFIX,
    SABRE_XML_HEADERS,
    SYSTEM_ADDRESSBOOK,
    DavBackend,
    DavLayout,
    check_user_id,
    sabre_error,
)
from .lifespan import answer_lifespan
from .sabre import exception_for

__all__ = ["DAV_PREFIX", "CalDavSandbox", "DavLayout", "build_caldav_app"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_log = logging.getLogger(__name__)
_DAV = "{DAV:}"
_CALDAV = "{urn:ietf:params:xml:ns:caldav}"
_XML_METHODS = frozenset({"PROPFIND", "PROPPATCH", "REPORT", "MKCALENDAR", "MKCOL"})
_WRITE_METHODS = frozenset({"PUT", "DELETE", "PROPPATCH", "MKCOL", "MKCALENDAR", "POST", "MOVE", "COPY"})
_INVALIDATING_METHODS = frozenset({"MKCALENDAR", "MKCOL", "PROPPATCH", "DELETE", "MOVE", "COPY"})
_CALENDAR_OBJECT_TYPES = ("VEVENT", "VTODO", "VJOURNAL")
_SABRE_DEFAULT_COMPONENTS = ("VEVENT", "VTODO", "VJOURNAL")  # calendar without the property
_COMPONENT_PROPFIND = (
    b'<?xml version="1.0" encoding="utf-8"?>'
    b'<d:propfind xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop>'
    b"<d:resourcetype/><c:supported-calendar-component-set/></d:prop></d:propfind>"
)
_READ_ONLY_PRIVILEGES = ("read", "read-acl", "read-current-user-privilege-set")


def build_caldav_app(
    root: pathlib.Path, *, backend: Literal["radicale", "xandikos"] = "radicale"
) -> CalDavSandbox:
    """Create the DAV service storing its data under ``root`` (created if missing)."""
    root = pathlib.Path(root)
    root.mkdir(parents=True, exist_ok=True)
    impl: DavBackend
    if backend == "radicale":
        from .caldav_radicale import RadicaleBackend

        impl = RadicaleBackend(root)
    elif backend == "xandikos":
        from .caldav_xandikos import XandikosBackend

        impl = XandikosBackend(root)
    else:
        raise ValueError(f"unknown DAV backend {backend!r}")
    return CalDavSandbox(impl)


class CalDavSandbox:
    """The sandbox's CalDAV/CardDAV service; ``app`` is the ASGI application."""

    def __init__(self, backend: DavBackend) -> None:
        self.backend = backend
        self.backend_name: str = backend.name
        self._provisioned: set[str] = set()
        self._provision_lock = threading.Lock()
        # collection path relative to /remote.php/dav (with trailing slash) -> the
        # calendar's components, or None for "not a calendar"
        self._components: dict[str, tuple[str, ...] | None] = {}
        self.app: Callable[[Scope, Receive, Send], Awaitable[None]] = self._asgi

    # -- public helpers -------------------------------------------------------------
    def provision_user(self, user: str) -> None:
        """Create the user's Nextcloud defaults; idempotent."""
        check_user_id(user)
        with self._provision_lock:
            self.backend.provision_user(user)
            self._provisioned.add(user)

    def layout(self, user: str) -> DavLayout:
        """Hrefs of ``user``'s principal, home sets and default collections."""
        return self.backend.layout(user)

    # -- ASGI -----------------------------------------------------------------------
    async def _asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            return await answer_lifespan(receive, send)
        if scope["type"] != "http":
            return
        rel = _relative_path(scope)
        if rel is None:
            await _respond(send, 404, [("Content-Type", "text/plain")], b"Not Found")
            return
        headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]]
        raw_user = next((v for k, v in scope["headers"] if k.lower() == b"x-remote-user"), b"")
        user = raw_user.decode("utf-8", "replace").strip()
        method = scope["method"].upper()
        if not user:
            body = sabre_error(
                "Sabre\\DAV\\Exception\\NotAuthenticated", "No public access to this resource."
            )
            hdrs = [*SABRE_XML_HEADERS, ("WWW-Authenticate", 'Basic realm="Nextcloud", charset="UTF-8"')]
            await _respond(send, 401, hdrs, body, head=method == "HEAD")
            return
        try:
            check_user_id(user)
        except ValueError:
            await _respond(send, 403, SABRE_XML_HEADERS, _forbidden("Invalid user"), head=method == "HEAD")
            return
        body = await _read_body(receive)
        if user not in self._provisioned:
            await anyio.to_thread.run_sync(self.provision_user, user)

        request = _Request(method, rel, user, headers, body, scope)
        early = self._system_addressbook_guard(request)
        if early is None and method == "PUT":
            early = await self._component_guard(request)
        if early is not None:
            status, hdrs, payload = early
            await _respond(send, status, hdrs, payload, head=method == "HEAD")
            return

        if method in _XML_METHODS and body.strip() and not request.header("content-type"):
            request.headers.append(("content-type", "application/xml; charset=utf-8"))
        status, hdrs, payload = await anyio.to_thread.run_sync(self._call_backend, request)

        if method in _INVALIDATING_METHODS:
            self._invalidate(rel)
            destination = request.destination()
            if destination is not None:
                self._invalidate(destination)
        if method == "PROPFIND" and status == 207:
            payload = self._restrict_system_privileges(user, payload)
        if status >= 400:
            hdrs, payload = _as_sabre_error(request, status, hdrs, payload)
        await _respond(send, status, hdrs, payload, head=method == "HEAD")

    # -- backend calls --------------------------------------------------------------
    def _call_backend(self, request: _Request) -> tuple[int, list[tuple[str, str]], bytes]:
        environ = _environ(request)
        captured: dict[str, Any] = {}
        chunks: list[bytes] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if exc_info is not None and captured:
                raise exc_info[1].with_traceback(exc_info[2])
            captured["status"] = status
            captured["headers"] = headers
            return chunks.append

        try:
            result = self.backend.wsgi(environ, start_response)
            try:
                for chunk in result:
                    if chunk:
                        chunks.append(bytes(chunk))
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        except Exception:  # noqa: BLE001 - answer like Nextcloud would, keep serving
            _log.exception("DAV backend %s failed on %s %s", self.backend_name, request.method, request.rel)
            body = sabre_error("Sabre\\DAV\\Exception", "Internal error in the sandbox DAV backend")
            return 500, list(SABRE_XML_HEADERS), body
        status = int(captured["status"].split(" ", 1)[0])
        return status, list(captured["headers"]), b"".join(chunks)

    # -- Nextcloud behaviours ---------------------------------------------------------
    def _system_addressbook_guard(self, request: _Request) -> tuple[int, list[tuple[str, str]], bytes] | None:
        if request.method not in _WRITE_METHODS:
            return None
        system = self.layout(request.user).system_addressbook.removeprefix(DAV_PREFIX)
        targets = [request.rel]
        destination = request.destination()
        if destination is not None:
            targets.append(destination)
        hit = next((t for t in targets if _is_within(t, system)), None)
        if hit is None:
            return None
        if request.method == "PUT":
            privilege = "write-content" if request.header("if-match") else "bind"
        elif request.method in ("DELETE", "MOVE"):
            privilege = "unbind"
        elif request.method == "PROPPATCH":
            privilege = "write-properties"
        elif request.method == "POST":
            privilege = "write-content"
        else:
            privilege = "bind"
        uri = hit.strip("/")
        href = f"{DAV_PREFIX}/{uri}"
        message = f'User did not have the required privileges ({{DAV:}}{privilege}) for path "{uri}"'
        extra = (
            "  <d:need-privileges><d:resource>"
            f"<d:href>{_xml_text(href)}</d:href><d:privilege><d:{privilege}/></d:privilege>"
            "</d:resource></d:need-privileges>\n"
        )
        body = sabre_error("Sabre\\DAVACL\\Exception\\NeedPrivileges", message, extra)
        return 403, list(SABRE_XML_HEADERS), body

    async def _component_guard(self, request: _Request) -> tuple[int, list[tuple[str, str]], bytes] | None:
        content_type = request.header("content-type") or ""
        if not (
            content_type.lower().startswith("text/calendar")
            or request.body.lstrip()[:15].upper() == b"BEGIN:VCALENDAR"
        ):
            return None
        if request.rel.endswith("/"):
            return None
        if not (DAV_PREFIX + request.rel).startswith(self.layout(request.user).principal):
            return None  # not the user's tree: the backend refuses it, and nothing may leak
        collection = request.rel.rsplit("/", 1)[0] + "/"
        if collection in self._components:
            supported = self._components[collection]
        else:
            supported, cacheable = await anyio.to_thread.run_sync(
                self._read_components, request.user, collection
            )
            if cacheable:
                self._components[collection] = supported
        if supported is None:
            return None
        found = _top_level_components(request.body)
        if found is None:  # not parseable: the backend answers
            return None
        if found and all(c in supported for c in found):
            return None
        message = "iCalendar objects must at least have a component of type " + ", ".join(supported)
        body = sabre_error(
            "Sabre\\CalDAV\\Exception\\InvalidComponentType",
            message,
            "  <cal:supported-calendar-component/>\n",
        )
        return 403, list(SABRE_XML_HEADERS), body

    def _read_components(self, user: str, collection: str) -> tuple[tuple[str, ...] | None, bool]:
        """(components of the calendar at ``collection`` or None, whether to cache)."""
        probe = _Request(
            "PROPFIND",
            collection,
            user,
            [("depth", "0"), ("content-type", "application/xml; charset=utf-8")],
            _COMPONENT_PROPFIND,
            None,
        )
        status, _, payload = self._call_backend(probe)
        if status != 207:
            return None, False
        try:
            tree = parse_xml(payload)
        except Exception:  # noqa: BLE001 - an unparseable answer just disables the check
            return None, False
        is_calendar = False
        components: list[str] | None = None
        for propstat in tree.iter(f"{_DAV}propstat"):
            status_el = propstat.find(f"{_DAV}status")
            if status_el is None or " 200 " not in f"{status_el.text or ''} ":
                continue
            for rtype in propstat.iter(f"{_DAV}resourcetype"):
                if rtype.find(f"{_CALDAV}calendar") is not None:
                    is_calendar = True
            for comp_set in propstat.iter(f"{_CALDAV}supported-calendar-component-set"):
                components = [
                    (c.get("name") or "").upper() for c in comp_set.iter(f"{_CALDAV}comp") if c.get("name")
                ]
        if not is_calendar:
            return None, True
        return tuple(components) if components else _SABRE_DEFAULT_COMPONENTS, True

    def _invalidate(self, rel: str) -> None:
        prefix = rel if rel.endswith("/") else rel + "/"
        for key in [k for k in self._components if k.startswith(prefix)]:
            self._components.pop(key, None)

    def _restrict_system_privileges(self, user: str, payload: bytes) -> bytes:
        if b"current-user-privilege-set" not in payload or SYSTEM_ADDRESSBOOK.encode() not in payload:
            return payload
        system = self.layout(user).system_addressbook
        try:
            tree = parse_xml(payload)
        except Exception:  # noqa: BLE001
            return payload
        changed = False
        for response in tree.iter(f"{_DAV}response"):
            href_el = response.find(f"{_DAV}href")
            if href_el is None or not _is_within(unquote(urlsplit(href_el.text or "").path), system):
                continue
            for privset in response.iter(f"{_DAV}current-user-privilege-set"):
                for child in list(privset):
                    privset.remove(child)
                for name in _READ_ONLY_PRIVILEGES:
                    ET.SubElement(ET.SubElement(privset, f"{_DAV}privilege"), f"{_DAV}{name}")
                changed = True
        if not changed:
            return payload
        return ET.tostring(tree, encoding="utf-8", xml_declaration=True)


# -- helpers ----------------------------------------------------------------------------
class _Request:
    def __init__(
        self,
        method: str,
        rel: str,
        user: str,
        headers: list[tuple[str, str]],
        body: bytes,
        scope: Scope | None,
    ) -> None:
        self.method = method
        self.rel = rel
        self.user = user
        self.headers = headers
        self.body = body
        self.scope = scope

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name), None)

    def destination(self) -> str | None:
        value = self.header("destination")
        if not value:
            return None
        path = unquote(urlsplit(value).path)
        if path == DAV_PREFIX or path.startswith(DAV_PREFIX + "/"):
            return path[len(DAV_PREFIX) :] or "/"
        return None


def _relative_path(scope: Scope) -> str | None:
    path: str = scope.get("path") or "/"
    if path == DAV_PREFIX or path.startswith(DAV_PREFIX + "/"):
        return path[len(DAV_PREFIX) :] or "/"
    root_path: str = scope.get("root_path") or ""
    if root_path.rstrip("/").endswith(DAV_PREFIX):
        return path if path.startswith("/") else "/" + path
    return None


def _raw_relative_path(scope: Scope) -> str | None:
    raw = (scope.get("raw_path") or b"").decode("latin-1").split("?", 1)[0]
    prefix = DAV_PREFIX.rstrip("/")
    return raw[len(prefix):] if raw.startswith(prefix + "/") else None


def _is_within(rel: str, collection: str) -> bool:
    return rel == collection.rstrip("/") or rel.startswith(collection.rstrip("/") + "/")


def _environ(request: _Request) -> dict[str, Any]:
    scope = request.scope or {}
    server = scope.get("server") or ("127.0.0.1", 80)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": request.method,
        "SCRIPT_NAME": DAV_PREFIX,
        # PEP 3333: text decoded as latin-1 from the raw (UTF-8) bytes
        "PATH_INFO": request.rel.encode("utf-8").decode("latin-1"),
        "QUERY_STRING": (scope.get("query_string") or b"").decode("latin-1"),
        "SERVER_NAME": str(server[0]),
        "SERVER_PORT": str(server[1] or 80),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "REMOTE_ADDR": (scope.get("client") or ("127.0.0.1", 0))[0],
        "CONTENT_LENGTH": str(len(request.body)),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": io.BytesIO(request.body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "ncmcp.dav_user": request.user,
        "ncmcp.dav_path": request.rel,
        # The path as sent, still percent-encoded (Xandikos unquotes PATH_INFO itself).
        "ncmcp.raw_path": _raw_relative_path(scope) or request.rel,
    }
    for name, value in request.headers:
        if name in ("content-length", "authorization", "x-script-name", "accept-encoding", "x-remote-user"):
            continue  # the body is buffered; the user is set below; answers stay uncompressed
        if name == "content-type":
            environ["CONTENT_TYPE"] = value
            continue
        key = "HTTP_" + name.upper().replace("-", "_")
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    environ["HTTP_X_REMOTE_USER"] = request.user.encode("utf-8").decode("latin-1")
    return environ


def _top_level_components(body: bytes) -> list[str] | None:
    """Names of the components directly inside VCALENDAR (VTIMEZONE excluded)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    depth = 0
    seen_calendar = False
    found: list[str] = []
    for raw in text.splitlines():
        line = raw.strip().upper()
        if line.startswith("BEGIN:"):
            name = line[6:].strip()
            if depth == 0:
                if name != "VCALENDAR":
                    return None
                seen_calendar = True
            elif depth == 1 and name != "VTIMEZONE":
                found.append(name)
            depth += 1
        elif line.startswith("END:"):
            depth -= 1
    if not seen_calendar:
        return None
    return [c for c in found if c in _CALENDAR_OBJECT_TYPES]




def _as_sabre_error(
    request: _Request, status: int, headers: list[tuple[str, str]], payload: bytes
) -> tuple[list[tuple[str, str]], bytes]:
    """Give a backend's plain-text error Nextcloud's XML shape; XML errors pass as they are."""
    content_type = next((v for k, v in headers if k.lower() == "content-type"), "")
    if "xml" in content_type.lower():
        return headers, payload
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    message = payload.decode("utf-8", "replace").strip() or phrase
    if status == 412 and request.header("if-none-match"):
        message = "An If-None-Match header was specified, but the ETag matched (or * was specified)."
    elif status == 412 and request.header("if-match"):
        message = "An If-Match header was specified, but none of the specified ETags matched."
    exception = exception_for(status)
    kept = [(k, v) for k, v in headers if k.lower() not in ("content-type", "content-length")]
    return [*kept, *SABRE_XML_HEADERS], sabre_error(exception, message)


def _xml_text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _forbidden(message: str) -> bytes:
    return sabre_error("Sabre\\DAV\\Exception\\Forbidden", message)


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _respond(
    send: Send, status: int, headers: list[tuple[str, str]], body: bytes, *, head: bool = False
) -> None:
    drop = ("transfer-encoding", "connection") if head else ("content-length", "transfer-encoding", "connection")
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers if k.lower() not in drop]
    if not any(k == b"content-length" for k, _ in raw):
        raw.append((b"content-length", str(len(body)).encode("ascii")))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": b"" if head else body})
