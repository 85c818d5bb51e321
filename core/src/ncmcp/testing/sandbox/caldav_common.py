"""Shared pieces of the sandbox CalDAV/CardDAV service: defaults, layout, Sabre errors.

The sandbox serves CalDAV and CardDAV from a real server (Radicale or Xandikos) and adds
Nextcloud's behaviours in a thin ASGI layer (see :mod:`.caldav`).  This module holds what
both backends share: the Nextcloud default collections every user gets, the per-backend
URL layout description and the Sabre-style XML error bodies Nextcloud sends.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from ncmcp.testing.sandbox.sabre import error_body

#: Where the DAV service lives; every href the backends emit starts with it.
DAV_PREFIX = "/remote.php/dav"

#: URI (last path segment) of Nextcloud's read-only "Accounts" address book.
SYSTEM_ADDRESSBOOK = "z-server-generated--system"

#: Accounts listed in every user's system address book besides the user.
SYSTEM_ACCOUNTS: tuple[tuple[str, str], ...] = (("admin", "Administrator"), ("support", "Support"))

#: Nextcloud's default calendar colour.
DEFAULT_CALENDAR_COLOR = "#0082c9"

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


@dataclasses.dataclass(frozen=True)
class CalendarSpec:
    uri: str
    displayname: str
    components: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class AddressbookSpec:
    uri: str
    displayname: str
    read_only: bool = False


#: Nextcloud's defaults.  ``personal`` is VEVENT only exactly like Nextcloud's; ``tasks``
#: is a sandbox addition (Nextcloud has no default task list) so tests have a calendar
#: that accepts VTODO.
DEFAULT_CALENDARS: tuple[CalendarSpec, ...] = (
    CalendarSpec("personal", "Personal", ("VEVENT",)),
    CalendarSpec("tasks", "Tasks", ("VEVENT", "VTODO")),
)
DEFAULT_ADDRESSBOOKS: tuple[AddressbookSpec, ...] = (
    AddressbookSpec("contacts", "Contacts"),
    AddressbookSpec(SYSTEM_ADDRESSBOOK, "Accounts", read_only=True),
)


@dataclasses.dataclass(frozen=True)
class DavLayout:
    """Hrefs (absolute paths, all under ``/remote.php/dav/``) of one user's DAV tree."""

    principal: str
    calendar_home: str
    addressbook_home: str
    calendars: dict[str, str]
    addressbooks: dict[str, str]

    @property
    def system_addressbook(self) -> str:
        return self.addressbooks[SYSTEM_ADDRESSBOOK]


class DavBackend(Protocol):
    """What :class:`.caldav.CalDavSandbox` needs from a backend."""

    name: str

    def wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """WSGI entry: SCRIPT_NAME is ``/remote.php/dav``, ``HTTP_X_REMOTE_USER`` the user."""
        ...

    def provision_user(self, user: str) -> None: ...

    def layout(self, user: str) -> DavLayout: ...


def check_user_id(user: str) -> str:
    """Refuse user ids that cannot be one path segment."""
    if not user or user in (".", "..") or "/" in user or "\\" in user or "\x00" in user:
        raise ValueError(f"invalid user id for the DAV sandbox: {user!r}")
    return user


def account_card(uid: str, name: str) -> tuple[str, str]:
    """(file name, vCard 3.0 text) of one account in the system address book."""
    text = "\r\n".join(
        [
            "BEGIN:VCARD",
            "VERSION:3.0",
            "PRODID:-//ncmcp//sandbox system address book//EN",
            f"UID:{uid}",
            f"FN:{name}",
            f"N:{name};;;;",
            f"EMAIL;TYPE=OTHER:{uid}@example.test",
            f"CLOUD:{uid}@localhost",
            "END:VCARD",
            "",
        ]
    )
    return f"{uid}.vcf", text


def system_cards(user: str) -> list[tuple[str, str]]:
    """The cards of ``user``'s system address book: the user plus :data:`SYSTEM_ACCOUNTS`."""
    names = dict(SYSTEM_ACCOUNTS)
    accounts = [(user, names.get(user, user))] + [(u, n) for u, n in SYSTEM_ACCOUNTS if u != user]
    return [account_card(uid, name) for uid, name in accounts]


sabre_error = error_body  # a Sabre/Nextcloud DAV error body


SABRE_XML_HEADERS = [("Content-Type", "application/xml; charset=utf-8")]
