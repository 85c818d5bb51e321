"""Xandikos backend of the sandbox DAV service.

Xandikos has no multi-user authorisation of its own, so the backend keeps one
``XandikosApp`` per user over a single shared filesystem backend (``<root>/xandikos``),
picks the app from ``X-Remote-User`` and refuses any path outside the user's own
principal with 403.  Requests are serialised with a lock (Xandikos runs each request in
its own ``asyncio.run``; its store cache is not meant for concurrent threads).

Layout (Xandikos' native one, served under ``/remote.php/dav/``): principal
``/remote.php/dav/<user>/``, calendar home ``/remote.php/dav/<user>/calendars/``,
address-book home ``/remote.php/dav/<user>/contacts/``.
"""

from __future__ import annotations

import pathlib
import posixpath
import shutil
import threading
from collections.abc import Callable, Iterable
from typing import Any

from xandikos.web import (
    STORE_TYPE_ADDRESSBOOK,
    STORE_TYPE_CALENDAR,
    SingleUserFilesystemBackend,
    XandikosApp,
)

from .caldav_common import (
    DAV_PREFIX,
    DEFAULT_ADDRESSBOOKS,
    DEFAULT_CALENDAR_COLOR,
    DEFAULT_CALENDARS,
    SABRE_XML_HEADERS,
    SYSTEM_ACCOUNTS,
    SYSTEM_ADDRESSBOOK,
    DavLayout,
    account_card,
    check_user_id,
    sabre_error,
    system_cards,
)

CALENDAR_HOME = "calendars"  # Xandikos' own names for the home sets
ADDRESSBOOK_HOME = "contacts"


class XandikosBackend:
    name = "xandikos"

    def __init__(self, root: pathlib.Path) -> None:
        self._root = pathlib.Path(root) / "xandikos"
        self._folder = self._root / "users"
        self._folder.mkdir(parents=True, exist_ok=True)
        self._template_dir: pathlib.Path | None = None
        self._backend = SingleUserFilesystemBackend(str(self._folder), show_principals_on_root=False)
        self._apps: dict[str, XandikosApp] = {}
        self._lock = threading.RLock()

    def layout(self, user: str) -> DavLayout:
        principal = f"{DAV_PREFIX}/{user}/"
        cal_home = f"{principal}{CALENDAR_HOME}/"
        card_home = f"{principal}{ADDRESSBOOK_HOME}/"
        return DavLayout(
            principal=principal,
            calendar_home=cal_home,
            addressbook_home=card_home,
            calendars={c.uri: f"{cal_home}{c.uri}/" for c in DEFAULT_CALENDARS},
            addressbooks={a.uri: f"{card_home}{a.uri}/" for a in DEFAULT_ADDRESSBOOKS},
        )

    def provision_user(self, user: str) -> None:
        check_user_id(user)
        backend = self._backend
        principal = f"/{user}/"
        with self._lock:
            if backend.get_resource(principal) is None:
                # Creating the git stores costs ~0.1 s per user (a dozen commits, each
                # with fsyncs and hook look-ups), so a user's tree is copied from a
                # template built once; only the user's own card is added afterwards.
                shutil.copytree(self._template(), self._folder / user, symlinks=True)
                backend._open_store.cache_clear()
            backend._mark_as_principal(principal)
            _populate(backend, principal, system_cards(user))  # fills gaps; no-op when complete
            backend._open_store.cache_clear()
            if user not in self._apps:
                self._apps[user] = XandikosApp(backend, principal)

    def _template(self) -> pathlib.Path:
        if self._template_dir is None:
            template_root = self._root / "template"  # reused (and completed) after a restart
            template_root.mkdir(exist_ok=True)
            template_backend = SingleUserFilesystemBackend(str(template_root))
            accounts = [account_card(uid, name) for uid, name in SYSTEM_ACCOUNTS]
            _populate(template_backend, "/principal/", accounts)
            self._template_dir = template_root / "principal"
        return self._template_dir

    def wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        # Set by the sandbox layer: the user and the DAV-relative path as text.
        user = environ["ncmcp.dav_user"]
        segments = [s for s in environ["ncmcp.dav_path"].split("/") if s]
        if segments and segments[0] != user:
            start_response("403 Forbidden", list(SABRE_XML_HEADERS))
            return [sabre_error("Sabre\\DAV\\Exception\\Forbidden", "Access to this resource is forbidden")]
        with self._lock:
            app = self._apps.get(user)
            if app is None:
                self.provision_user(user)
                app = self._apps[user]
            # Xandikos resolves the user from REMOTE_USER; the gate above did the checking.
            environ["REMOTE_USER"] = user
            # Xandikos percent-decodes PATH_INFO itself (as under aiohttp): give it the encoded path,
            # or names with '#', '%' or non-ASCII characters are stored under mangled names.
            environ["PATH_INFO"] = environ.get("ncmcp.raw_path", environ["PATH_INFO"])
            return list(app(environ, start_response))


def _populate(backend: SingleUserFilesystemBackend, principal: str, cards: list[tuple[str, str]]) -> None:
    """Create the principal and whichever default collections and system cards are missing."""
    if backend.get_resource(principal) is None:
        backend.create_principal(principal)
    for cal in DEFAULT_CALENDARS:
        path = posixpath.join(principal, CALENDAR_HOME, cal.uri)
        if backend.get_resource(path) is not None:
            continue
        store = backend.create_collection(path).store
        store.set_type(STORE_TYPE_CALENDAR)
        store.set_displayname(cal.displayname)
        store.set_color(DEFAULT_CALENDAR_COLOR)
        store.config.set_supported_calendar_components(list(cal.components))
    for book in DEFAULT_ADDRESSBOOKS:
        path = posixpath.join(principal, ADDRESSBOOK_HOME, book.uri)
        if backend.get_resource(path) is None:
            store = backend.create_collection(path).store
            store.set_type(STORE_TYPE_ADDRESSBOOK)
            store.set_displayname(book.displayname)
        if book.uri == SYSTEM_ADDRESSBOOK:
            collection = backend.get_resource(path)
            existing = {name for name, _ in collection.members()}
            for name, text in cards:
                if name not in existing:
                    collection.store.import_one(name, "text/vcard", [text.encode("utf-8")])
