"""Read-modify-write of one calendar object: load it by href, check the caller's etag, save it back
conditionally on the etag that was read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from icalendar import Calendar
from ncmcp import Conflict, InvalidArgument, ToolContext

from ncmcp_calendar import caldav, ical, timeutil
from ncmcp_calendar.caldav import CalObject

NOUN = {"VEVENT": "an event", "VTODO": "a task"}
FOUND = {"VEVENT": "an event", "VTODO": "a task", "VJOURNAL": "a journal entry"}


@dataclass(slots=True)
class Loaded:
    obj: CalObject
    cal: Calendar
    kind: str


async def load(ctx: ToolContext, href: str, kind: str, etag: str | None = None) -> Loaded:
    """Fetch the object at ``href``; refuse it when it is not a ``kind`` or when ``etag`` is stale."""
    home = await caldav.calendar_home(ctx)
    obj = await caldav.fetch(ctx, caldav.object_path(home, href))
    if etag and not caldav.same_etag(etag, obj.etag):
        raise Conflict(f"{obj.href} changed since you read it (your etag {etag}, now {obj.etag}); nothing was "
                       f"written. Read it again and reapply your change.", current_etag=obj.etag)
    cal = ical.load(obj.data)
    found = ical.primary_kind(cal)
    if found != kind:
        other = {"VEVENT": "nc_calendar_*_event", "VTODO": "nc_calendar_*_todo"}.get(found or "", "")
        raise InvalidArgument(f"{obj.href} is not {NOUN[kind]} but {FOUND.get(found or '', 'another kind of object')}"
                              + (f"; use {other}" if other else ""), href=obj.href)
    return Loaded(obj, cal, kind)


async def save(ctx: ToolContext, loaded: Loaded) -> CalObject:
    """PUT the changed object with ``If-Match`` on the etag it was read with."""
    data = ical.dump(loaded.cal)
    etag = await caldav.replace(ctx, loaded.obj.href, data, loaded.obj.etag, component=loaded.kind)
    return await settle(ctx, loaded.obj.href, data, etag, loaded.obj.calendar)


async def create(ctx: ToolContext, target: caldav.CalendarInfo, component: Any, uid: str, kind: str) -> CalObject:
    """PUT a new object (``If-None-Match: *``) holding ``component`` into the calendar ``target``."""
    cal = ical.new_calendar()
    cal.add_component(component)
    href = caldav.new_object_href(target, uid)
    data = ical.dump(cal)
    etag = await caldav.create(ctx, target, href, data, kind)
    return await settle(ctx, href, data, etag, target)


async def settle(ctx: ToolContext, href: str, data: bytes, etag: str | None,
                 calendar: caldav.CalendarInfo | None) -> CalObject:
    """The stored state after a write. Servers that rewrite the object on PUT (Sabre does when it
    repairs data) send no ETag; then the stored version is read back so the caller gets both."""
    if etag:
        return CalObject(href=href, etag=etag, data=data, calendar=calendar)
    stored = await caldav.fetch(ctx, href)
    stored.calendar = calendar
    return stored


def calendar_name(href: str) -> str:
    return href.rstrip("/").rsplit("/", 2)[-2]


def default_zone(ctx: ToolContext) -> str | None:
    """The zone for times given without one (setting ``NEXTCLOUD_MCP_CALENDAR_DEFAULT_TIMEZONE``);
    without it such times are floating, as iCalendar defines them."""
    name = (ctx.settings.get("default_timezone") or "").strip()
    if name:
        timeutil.zone(name)  # fail early on a misconfigured zone
    return name or None
