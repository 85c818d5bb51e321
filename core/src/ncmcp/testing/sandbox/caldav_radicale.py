"""Radicale backend of the sandbox DAV service.

One in-process ``radicale.Application`` configured in code: ``auth.type =
http_x_remote_user`` (the sandbox front authenticates and sets ``X-Remote-User``),
``rights.type = owner_only`` and filesystem storage under ``<root>/radicale``.

Layout (Radicale's native one, served under ``/remote.php/dav/``): the principal, the
calendar home and the address-book home are all ``/remote.php/dav/<user>/``; collections
are its direct children (``/remote.php/dav/<user>/personal/``, ...).
"""

from __future__ import annotations

import pathlib
import threading
from collections.abc import Callable, Iterable
from typing import Any

import radicale
import radicale.config
import radicale.item
import vobject

from .caldav_common import (
    DAV_PREFIX,
    DEFAULT_ADDRESSBOOKS,
    DEFAULT_CALENDAR_COLOR,
    DEFAULT_CALENDARS,
    SYSTEM_ADDRESSBOOK,
    DavLayout,
    check_user_id,
    system_cards,
)


class RadicaleBackend:
    name = "radicale"

    def __init__(self, root: pathlib.Path) -> None:
        folder = pathlib.Path(root) / "radicale" / "collections"
        (folder / "collection-root").mkdir(parents=True, exist_ok=True)  # else Radicale warns
        configuration = radicale.config.load()
        configuration.update(
            {
                "server": {"script_name": DAV_PREFIX},
                "auth": {"type": "http_x_remote_user", "delay": "0"},
                "rights": {"type": "owner_only"},
                "storage": {"filesystem_folder": str(folder), "_filesystem_fsync": "False"},
                "web": {"type": "none"},
                "logging": {"level": "warning", "mask_passwords": "True"},
            },
            "ncmcp sandbox",
            privileged=True,  # allows the internal _filesystem_fsync switch (speed)
        )
        self._app = radicale.Application(configuration)
        self._storage = self._app._storage
        self._lock = threading.Lock()

    def wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        # Radicale wants text, not PEP 3333 latin-1 strings (its own server unquotes to str).
        environ["PATH_INFO"] = environ["ncmcp.dav_path"]
        environ["HTTP_X_REMOTE_USER"] = environ["ncmcp.dav_user"]
        return self._app(environ, start_response)

    def layout(self, user: str) -> DavLayout:
        home = f"{DAV_PREFIX}/{user}/"
        return DavLayout(
            principal=home,
            calendar_home=home,
            addressbook_home=home,
            calendars={c.uri: f"{home}{c.uri}/" for c in DEFAULT_CALENDARS},
            addressbooks={a.uri: f"{home}{a.uri}/" for a in DEFAULT_ADDRESSBOOKS},
        )

    def provision_user(self, user: str) -> None:
        check_user_id(user)
        storage = self._storage
        principal = f"/{user}/"
        with self._lock, storage.acquire_lock("w", user):
            if not next(iter(storage.discover(principal)), None):
                storage.create_collection(principal)
            for cal in DEFAULT_CALENDARS:
                path = f"{principal}{cal.uri}/"
                if next(iter(storage.discover(path)), None):
                    continue
                storage.create_collection(
                    path,
                    props={
                        "tag": "VCALENDAR",
                        "D:displayname": cal.displayname,
                        "C:supported-calendar-component-set": ",".join(cal.components),
                        "ICAL:calendar-color": DEFAULT_CALENDAR_COLOR,
                    },
                )
            for book in DEFAULT_ADDRESSBOOKS:
                path = f"{principal}{book.uri}/"
                if next(iter(storage.discover(path)), None):
                    continue
                collection, _, _ = storage.create_collection(
                    path, props={"tag": "VADDRESSBOOK", "D:displayname": book.displayname}
                )
                if book.uri == SYSTEM_ADDRESSBOOK:
                    for href, text in system_cards(user):
                        item = radicale.item.Item(
                            collection_path=path.strip("/"), vobject_item=vobject.readOne(text)
                        )
                        item.prepare()
                        collection.upload(href, item)
