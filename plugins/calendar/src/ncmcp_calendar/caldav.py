"""CalDAV requests: discovery, calendars, queries and conditional writes.

Rules kept here so no tool can break them:

* the calendar home is discovered (``/.well-known/caldav`` → principal → ``calendar-home-set``),
  never guessed; objects are addressed by the href the server gave, never rebuilt from a UID;
* every href a caller passes must lie inside the user's calendar home (a calendar tool must not
  become a way to touch files or contacts);
* creates send ``If-None-Match: *``, updates and deletes ``If-Match``; a 412 becomes a
  :class:`~ncmcp.Conflict` carrying the ETag the server holds now;
* reads never return an empty ETag: when a REPORT omits it, it is fetched.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import anyio
from ncmcp import Conflict, InvalidArgument, NotFound, PermissionDenied, ToolContext, ToolError, UpstreamError
from ncmcp.nextcloud import dav, xml
from ncmcp.nextcloud.client import upstream_message

from ncmcp_calendar import timeutil

ICS_HEADERS = {"Content-Type": "text/calendar; charset=utf-8"}
XML_HEADERS = dav.XML_HEADERS
HOME_TTL = 300.0  # seconds; discovery costs three requests and the home set never moves in practice
# RFC 3986 sub-delims and ':' '@' stay literal in a path; everything else is percent-encoded.
_PATH_SAFE = "/:@!$&'()*+,;=-._~"
_WRITE_PRIVILEGES = ("all", "write", "write-content", "bind")
_homes: dict[tuple[str, str], tuple[float, str]] = {}


@dataclass(frozen=True, slots=True)
class CalendarInfo:
    href: str  # decoded path, with a trailing slash
    name: str  # last path segment (Nextcloud's calendar "uri")
    display_name: str
    color: str | None
    components: tuple[str, ...]
    read_only: bool
    description: str | None = None

    def accepts(self, component: str) -> bool:
        return component in self.components

    def as_dict(self) -> dict[str, Any]:
        return {"href": self.href, "name": self.name, "display_name": self.display_name, "color": self.color,
                "components": list(self.components), "read_only": self.read_only, "description": self.description}


@dataclass(slots=True)
class CalObject:
    """One calendar object resource as stored: its href (decoded path), ETag and iCalendar text."""

    href: str
    etag: str
    data: bytes
    calendar: CalendarInfo | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def encode(href: str) -> str:
    """A decoded path as a request path (percent-encoded once)."""
    return quote(href, safe=_PATH_SAFE)


def quoted_etag(etag: str) -> str:
    etag = etag.strip()
    if etag.startswith(("W/", '"')):
        return etag
    return f'"{etag}"'


def same_etag(a: str | None, b: str | None) -> bool:
    def norm(e: str | None) -> str:
        return (e or "").strip().removeprefix("W/").strip('"')
    return bool(a) and bool(b) and norm(a) == norm(b)


# --- discovery and calendars ---------------------------------------------------------------------------

async def calendar_home(ctx: ToolContext) -> str:
    """The user's calendar home path (decoded, trailing slash), cached for a few minutes per user.

    Hrefs are absolute paths on the server's origin (``/nextcloud/remote.php/dav/...`` when Nextcloud
    lives below the web root); the core client sends such paths to the origin, so a sub-path is never
    doubled."""
    key = (ctx.http.base_url, ctx.user_id)
    cached = _homes.get(key)
    if cached and cached[0] > time.monotonic():
        return cached[1]
    home = unquote(await dav.discover_home(ctx.http, "caldav"))
    home = home if home.endswith("/") else home + "/"
    _homes[key] = (time.monotonic() + HOME_TTL, home)
    return home


def url(ctx: ToolContext, href: str) -> str:
    """The request path of an href (a decoded absolute path on the server's origin)."""
    return encode(href)


def object_path(home: str, href: str) -> str:
    """Validate a caller-given object href (absolute URL or path) and return its decoded path."""
    path = unquote(urlsplit(href.strip()).path) if "://" in href else href.strip()
    segments = path.split("/")
    if not path.startswith(home) or ".." in segments or "." in segments or path.endswith("/") or "\x00" in path:
        raise InvalidArgument(f"{href!r} is not a calendar object of this user; pass the href returned by the "
                              f"calendar tools (it starts with {home})", href=href)
    if path.count("/") - home.count("/") != 1:
        raise InvalidArgument(f"{href!r} is not a calendar object href (expected {home}<calendar>/<object>.ics)",
                              href=href)
    return path


def _privileges(resp: xml.DavResponse) -> set[str] | None:
    el = resp.props.get(xml.qname("d:current-user-privilege-set"))
    if el is None:
        return None
    found: set[str] = set()
    for privilege in el.iter(xml.qname("d:privilege")):
        for child in privilege:
            found.add(child.tag.rsplit("}", 1)[-1])
    return found


def _components(resp: xml.DavResponse) -> tuple[str, ...]:
    el = resp.props.get(xml.qname("c:supported-calendar-component-set"))
    if el is None:
        return ("VEVENT", "VTODO", "VJOURNAL")  # RFC 4791: absent means any component
    return tuple((c.get("name") or "").upper() for c in el.iter(xml.qname("c:comp")) if c.get("name"))


CALENDAR_PROPS = ["d:resourcetype", "d:displayname", "x1:calendar-color", "c:supported-calendar-component-set",
                  "d:current-user-privilege-set", "c:calendar-description", "oc:read-only"]


async def list_calendars(ctx: ToolContext) -> list[CalendarInfo]:
    """Every calendar collection in the home (inboxes, outboxes, trash bins and address books excluded)."""
    home = await calendar_home(ctx)
    found = await dav.propfind(ctx.http, url(ctx, home), CALENDAR_PROPS, depth="1")
    calendars: list[CalendarInfo] = []
    for resp in found:
        if not resp.has("d:resourcetype", "c:calendar"):
            continue
        href = resp.href if resp.href.endswith("/") else resp.href + "/"
        name = href.rstrip("/").rsplit("/", 1)[-1]
        privileges = _privileges(resp)
        # Nextcloud marks calendars shared read-only with oc:read-only; privileges say it in general.
        read_only = (privileges is not None and not (privileges & set(_WRITE_PRIVILEGES))) or \
            (resp.text("oc:read-only") or "").strip().lower() in ("1", "true")
        color = (resp.text("x1:calendar-color") or "").strip() or None
        calendars.append(CalendarInfo(
            href=href, name=name, display_name=(resp.text("d:displayname") or "").strip() or name, color=color,
            components=_components(resp), read_only=read_only,
            description=(resp.text("c:calendar-description") or "").strip() or None))
    calendars.sort(key=lambda c: (c.name != "personal", c.display_name.lower()))
    return calendars


def pick_calendar(calendars: Sequence[CalendarInfo], ident: str) -> CalendarInfo:
    """A calendar by its name (uri), href or display name."""
    wanted = ident.strip()
    for cal in calendars:
        if wanted in (cal.name, cal.href, cal.href.rstrip("/")) or (wanted.startswith("http") and urlsplit(wanted).path
                                                                     in (cal.href, cal.href.rstrip("/"))):
            return cal
    by_display = [c for c in calendars if c.display_name.casefold() == wanted.casefold()]
    if len(by_display) == 1:
        return by_display[0]
    names = ", ".join(f"{c.name!r} ({c.display_name})" for c in calendars) or "none"
    if by_display:
        raise InvalidArgument(f"Several calendars are called {ident!r}; use the name instead: {names}")
    raise NotFound(f"No calendar {ident!r}. Calendars: {names}")


async def resolve_calendar(ctx: ToolContext, ident: str | None, component: str, *,
                           writable: bool = False) -> CalendarInfo:
    """The named calendar, or by default the first writable one accepting ``component`` (Nextcloud's
    ``personal`` first). A named calendar that cannot hold ``component`` is refused with a message
    naming calendars that can."""
    calendars = await list_calendars(ctx)
    if ident:
        cal = pick_calendar(calendars, ident)
        if not cal.accepts(component):
            raise component_refused(cal, component, calendars)
        if writable and cal.read_only:
            raise PermissionDenied(f"Calendar {cal.name!r} ({cal.display_name}) is read-only")
        return cal
    for cal in calendars:
        if cal.accepts(component) and not cal.read_only:
            return cal
    raise component_refused(None, component, calendars)


def component_refused(cal: CalendarInfo | None, component: str, calendars: Iterable[CalendarInfo]) -> InvalidArgument:
    kind = "tasks" if component == "VTODO" else "events" if component == "VEVENT" else component
    able = [f"{c.name!r} ({c.display_name})" for c in calendars if c.accepts(component) and not c.read_only]
    where = f"Calendar {cal.name!r} ({cal.display_name}) accepts only {', '.join(cal.components)}, not {kind}. " if cal \
        else f"No writable calendar accepts {kind}. "
    hint = f"Calendars that accept {kind}: {', '.join(able)}." if able else \
        f"Create one with nc_calendar_manage_calendar (action 'create', components ['{component}'])."
    return InvalidArgument(where + hint, calendar=cal.name if cal else None, accepting=[a for a in able])


def calendars_for(calendars: Sequence[CalendarInfo], ident: str | None, component: str) -> list[CalendarInfo]:
    if ident:
        cal = pick_calendar(calendars, ident)
        if not cal.accepts(component):
            raise component_refused(cal, component, calendars)
        return [cal]
    return [c for c in calendars if c.accepts(component)]


# --- reading objects -------------------------------------------------------------------------------------

def _query_body(component: str, start: str | None, end: str | None, uid: str | None) -> bytes:
    inner: list[Any] = []
    if start or end:
        attrs = {k: v for k, v in (("start", start), ("end", end)) if v}
        inner.append(xml.element("c:time-range", attrib=attrs))
    if uid:
        inner.append(xml.element("c:prop-filter", attrib={"name": "UID"}, children=[
            xml.element("c:text-match", uid, attrib={"collation": "i;octet"})]))
    comp = xml.element("c:comp-filter", attrib={"name": component}, children=inner)
    body = xml.element("c:calendar-query", children=[
        xml.element("d:prop", children=[xml.element("d:getetag"), xml.element("c:calendar-data")]),
        xml.element("c:filter", children=[xml.element("c:comp-filter", attrib={"name": "VCALENDAR"}, children=[comp])]),
    ])
    return xml.to_bytes(body)


async def query(ctx: ToolContext, cal: CalendarInfo, component: str, *, start: str | None = None,
                end: str | None = None, uid: str | None = None) -> list[CalObject]:
    """One calendar-query REPORT on one calendar (``start``/``end`` as ``YYYYMMDDTHHMMSSZ``)."""
    found = await dav.report(ctx.http, url(ctx, cal.href), _query_body(component, start, end, uid), depth="1")
    objects: list[CalObject] = []
    for resp in found:
        data = resp.text("c:calendar-data")
        if data is None or resp.href.endswith("/"):
            continue
        objects.append(CalObject(href=resp.href, etag=(resp.text("d:getetag") or "").strip(),
                                 data=data.encode("utf-8"), calendar=cal))
    await fill_missing_etags(ctx, cal, objects)
    return objects


async def fill_missing_etags(ctx: ToolContext, cal: CalendarInfo, objects: list[CalObject]) -> None:
    """Some servers leave getetag out of REPORT answers; one calendar-multiget fetches them."""
    missing = [o for o in objects if not o.etag]
    if not missing:
        return
    body = xml.to_bytes(xml.element("c:calendar-multiget", children=[
        xml.element("d:prop", children=[xml.element("d:getetag")]),
        *(xml.element("d:href", encode(o.href)) for o in missing)]))
    found = {r.href: (r.text("d:getetag") or "").strip() for r in
             await dav.report(ctx.http, url(ctx, cal.href), body, depth="1")}
    for obj in missing:
        obj.etag = found.get(obj.href) or ""
        if not obj.etag:  # still nothing: the plain GET always carries it
            obj.etag = (await fetch(ctx, obj.href)).etag


async def fetch(ctx: ToolContext, href: str) -> CalObject:
    """GET one object (``href`` already validated) with its current ETag."""
    response = await ctx.http.request("GET", url(ctx, href), headers={"Accept": "text/calendar"}, ok=(404,))
    if response.status_code == 404:
        raise NotFound(f"No calendar object at {href} (it may have been deleted or moved)", href=href)
    etag = response.headers.get("ETag") or await current_etag(ctx, href)
    if not etag:
        raise UpstreamError(f"The server gave no ETag for {href}")
    return CalObject(href=href, etag=etag, data=response.content)


async def current_etag(ctx: ToolContext, href: str) -> str | None:
    """The ETag the server holds now, or None when the object is gone."""
    response = await ctx.http.request("PROPFIND", url(ctx, href), headers={**XML_HEADERS, "Depth": "0"},
                                      content=xml.propfind_body(["d:getetag"]), ok=(404,))
    if response.status_code == 404:
        return None
    for resp in xml.parse_multistatus(response.content, ctx.http.base_url):
        etag = resp.text("d:getetag")
        if etag:
            return etag.strip()
    return None


# --- conditional writes -----------------------------------------------------------------------------------

def new_object_href(cal: CalendarInfo, uid: str) -> str:
    """Where a new object goes: a name derived from the UID when it is path-safe, else a fresh one.
    (Only creation builds a path; existing objects are always addressed by their own href.)"""
    stem = uid if uid and all(ch.isalnum() or ch in "-_.@" for ch in uid) and len(uid) <= 200 else str(uuid.uuid4())
    return f"{cal.href}{stem}.ics"


async def create(ctx: ToolContext, cal: CalendarInfo, href: str, data: bytes, component: str) -> str | None:
    """PUT with ``If-None-Match: *``. Returns the new ETag when the server sent one."""
    response = await ctx.http.request("PUT", url(ctx, href), headers={**ICS_HEADERS, "If-None-Match": "*"},
                                      content=data, ok=(403, 412))
    if response.status_code == 412:
        raise Conflict(f"An object already exists at {href}; nothing was written",
                       current_etag=await current_etag(ctx, href))
    if response.status_code == 403:
        raise await _forbidden(ctx, response, cal, component)
    return response.headers.get("ETag")


async def replace(ctx: ToolContext, href: str, data: bytes, etag: str, *, cal: CalendarInfo | None = None,
                  component: str = "VEVENT") -> str | None:
    """PUT with ``If-Match``. A 412 becomes a conflict carrying the ETag the server holds now."""
    response = await ctx.http.request("PUT", url(ctx, href), headers={**ICS_HEADERS, "If-Match": quoted_etag(etag)},
                                      content=data, ok=(403, 404, 412))
    if response.status_code == 412:
        await _raise_conflict(ctx, href, etag, "updated")
    if response.status_code == 404:
        raise NotFound(f"{href} was deleted meanwhile; nothing was written", href=href)
    if response.status_code == 403:
        raise await _forbidden(ctx, response, cal, component)
    return response.headers.get("ETag")


async def remove(ctx: ToolContext, href: str, etag: str) -> None:
    response = await ctx.http.request("DELETE", url(ctx, href), headers={"If-Match": quoted_etag(etag)}, ok=(404, 412))
    if response.status_code == 412:
        await _raise_conflict(ctx, href, etag, "deleted")
    if response.status_code == 404:
        raise NotFound(f"{href} does not exist (already deleted?)", href=href)


async def _raise_conflict(ctx: ToolContext, href: str, sent: str, verb: str) -> None:
    current = await current_etag(ctx, href)
    if current is None:
        raise NotFound(f"{href} was deleted meanwhile; nothing was {verb}", href=href)
    if same_etag(current, sent):
        # The ETag still matches, so the 412 was about the content (some servers, e.g. Xandikos,
        # answer an invalid calendar object with 412 valid-calendar-data).
        raise UpstreamError(f"The server refused the calendar data for {href} (412 precondition on the content)")
    raise Conflict(f"{href} changed on the server since it was read; nothing was {verb}. Read it again and retry "
                   f"with the current etag.", current_etag=current, href=href)


async def _forbidden(ctx: ToolContext, response: Any, cal: CalendarInfo | None, component: str) -> Exception:
    message = upstream_message(response)
    if cal is not None and ("component" in message.lower() or b"supported-calendar-component" in response.content):
        # Nextcloud's default calendar is VEVENT-only and answers a VTODO with 403: explain, and name
        # the calendars that do accept it.
        return component_refused(cal, component, await list_calendars(ctx))
    return PermissionDenied(f"Nextcloud refused the write (403){': ' + message if message else ''}")


# --- calendars (collections) -----------------------------------------------------------------------------

def _calendar_props(display_name: str | None, color: str | None, description: str | None) -> list[Any]:
    props = []
    if display_name is not None:
        props.append(xml.element("d:displayname", display_name))
    if color is not None:
        props.append(xml.element("x1:calendar-color", color))
    if description is not None:
        props.append(xml.element("c:calendar-description", description))
    return props


async def make_calendar(ctx: ToolContext, name: str, display_name: str, color: str | None, components: Sequence[str],
                        description: str | None) -> str:
    home = await calendar_home(ctx)
    href = f"{home}{name}/"
    comps = xml.element("c:supported-calendar-component-set",
                        children=[xml.element("c:comp", attrib={"name": c}) for c in components])
    body = xml.to_bytes(xml.element("c:mkcalendar", children=[xml.element("d:set", children=[
        xml.element("d:prop", children=[*_calendar_props(display_name, color, description), comps])])]))
    response = await ctx.http.request("MKCALENDAR", url(ctx, href), headers=XML_HEADERS, content=body, ok=(403, 405))
    if response.status_code in (403, 405):
        raise Conflict(f"A calendar or collection named {name!r} already exists; choose another name")
    return href


async def update_calendar(ctx: ToolContext, cal: CalendarInfo, display_name: str | None, color: str | None,
                          description: str | None) -> None:
    props = _calendar_props(display_name, color, description)
    body = xml.to_bytes(xml.element("d:propertyupdate", children=[
        xml.element("d:set", children=[xml.element("d:prop", children=props)])]))
    response = await ctx.http.request("PROPPATCH", url(ctx, cal.href), headers=XML_HEADERS, content=body)
    failed = [tag.rsplit("}", 1)[-1] for r in xml.parse_multistatus(response.content, ctx.http.base_url) for tag in r.missing]
    if failed:
        raise UpstreamError(f"The server did not change {', '.join(sorted(failed))} of calendar {cal.name!r}")


async def delete_calendar(ctx: ToolContext, cal: CalendarInfo) -> None:
    await ctx.http.request("DELETE", url(ctx, cal.href))


# --- free/busy -------------------------------------------------------------------------------------------

class FreeBusyUnsupported(Exception):
    """The server cannot answer a free-busy-query on this calendar."""


async def free_busy(ctx: ToolContext, cal: CalendarInfo, start: str, end: str) -> bytes:
    """A CALDAV:free-busy-query REPORT (RFC 4791 §7.10); returns the VFREEBUSY iCalendar text."""
    body = xml.to_bytes(xml.element("c:free-busy-query", children=[
        xml.element("c:time-range", attrib={"start": start, "end": end})]))
    try:
        response = await ctx.http.request("REPORT", url(ctx, cal.href), headers={**XML_HEADERS, "Depth": "1"},
                                          content=body, ok=(400, 403, 404, 405, 415, 422, 501))
    except UpstreamError as exc:
        raise FreeBusyUnsupported(str(exc)) from exc
    if response.status_code >= 300 or b"VFREEBUSY" not in response.content.upper():
        raise FreeBusyUnsupported(f"HTTP {response.status_code}")
    return response.content


async def principal_addresses(ctx: ToolContext) -> list[str]:
    """The user's ``mailto:`` calendar addresses, used as ORGANIZER of meetings: the principal's
    calendar-user-address-set, else the email of the Nextcloud account."""
    home = await calendar_home(ctx)
    found = await dav.propfind(ctx.http, url(ctx, home), ["d:current-user-principal"])
    principal = next((xml.href_text(r.props.get(xml.qname("d:current-user-principal"))) for r in found if r.props), None)
    addresses: list[str] = []
    found = await dav.propfind(ctx.http, dav.origin_path(ctx.http, principal), ["c:calendar-user-address-set"]) \
        if principal else []
    for resp in found:
        el = resp.props.get(xml.qname("c:calendar-user-address-set"))
        if el is not None:
            addresses += [(h.text or "").strip() for h in el.iter(xml.qname("d:href"))]
    mailto = [a for a in addresses if a.lower().startswith("mailto:")]
    if mailto:
        return mailto
    try:
        user = await ctx.http.ocs("/ocs/v2.php/cloud/user")
    except ToolError:
        return []
    email = user.get("email") if isinstance(user, dict) else None
    return [f"mailto:{email}"] if email else []


async def gather(calls: Sequence[Any]) -> list[Any]:
    """Run coroutines concurrently (one request per calendar) and keep their order. A failure is
    re-raised as itself (the first one), not wrapped in an exception group, so the host shows its
    message."""
    results: list[Any] = [None] * len(calls)
    failures: list[BaseException] = []

    async def run(i: int, call: Any) -> None:
        try:
            results[i] = await call
        except Exception as exc:  # noqa: BLE001 - collected and re-raised below
            failures.append(exc)

    async with anyio.create_task_group() as tg:
        for i, call in enumerate(calls):
            tg.start_soon(run, i, call)
    if failures:
        raise failures[0]
    return results


def range_text(start: Any, end: Any) -> tuple[str, str]:
    return timeutil.to_utc_text(start), timeutil.to_utc_text(end)
