"""Event tools: list, get, create, update, delete, quick meetings, upcoming events."""

from __future__ import annotations

import datetime as dt
from typing import Any

import anyio
from icalendar import Event
from ncmcp import Access, InvalidArgument, NotFound, ToolContext, ToolSpec

from ncmcp_calendar import caldav, ical, objects, patch, timeutil
from ncmcp_calendar.expand import Occurrence, expand, object_fields, occurrence_at
from ncmcp_calendar.schemas import (
    ALARMS_IN,
    ATTENDEES_IN,
    CALENDAR_IN,
    CATEGORIES_IN,
    CLASS_IN,
    COLOR_IN,
    DELETED_OUT,
    DESTRUCTIVE,
    EMAIL_IN,
    ETAG_IN,
    EVENT_OUT,
    EVENT_STATUS,
    HREF_IN,
    LIMIT_IN,
    NO_CONTROLS,
    PRIORITY_IN,
    READ,
    RRULE_IN,
    SHORT_IN,
    SUMMARY_IN,
    TEXT_IN,
    TIME_OUT,
    TZ_IN,
    UID_IN,
    WHEN_IN,
    WRITE,
    obj,
)

KIND = "VEVENT"
# Floating and all-day events carry no zone, so a server may place them up to a day away from where
# the caller's zone puts them: ask the server for a slightly wider window, then cut exactly here.
SERVER_MARGIN = dt.timedelta(days=1)


# --- ranges and listing ------------------------------------------------------------------------------------

def read_range(start: str, end: str | None, tz: dt.tzinfo, *, default_days: int = 0) -> tuple[dt.datetime, dt.datetime]:
    """A query window. Dates mean whole days in ``tz``; a date-only end includes that day."""
    def bound(text: str, field: str, is_end: bool) -> dt.datetime:
        value = timeutil.parse(text, None, field=field)
        if not isinstance(value, dt.datetime):
            value = dt.datetime.combine(value + dt.timedelta(days=1 if is_end else 0), dt.time(), tzinfo=tz)
        elif value.tzinfo is None:
            value = value.replace(tzinfo=tz)
        return value
    begin = bound(start, "start", False)
    finish = bound(end, "end", True) if end else begin + dt.timedelta(days=default_days or 1)
    if finish <= begin:
        raise InvalidArgument("end must be after start")
    if finish - begin > dt.timedelta(days=3700):
        raise InvalidArgument("The range is limited to about ten years")
    return begin, finish


def query_zone(ctx: ToolContext, timezone: str | None) -> tuple[str, dt.tzinfo]:
    name = timezone or objects.default_zone(ctx) or "UTC"
    return name, timeutil.zone(name)


async def occurrences(ctx: ToolContext, calendar: str | None, begin: dt.datetime, finish: dt.datetime,
                      tz: dt.tzinfo) -> tuple[list[Occurrence], list[str], int]:
    """Occurrences in the window over one or all calendars: one calendar-query REPORT per calendar,
    expanded here."""
    targets = caldav.calendars_for(await caldav.list_calendars(ctx), calendar, KIND)
    lo, hi = caldav.range_text(begin - SERVER_MARGIN, finish + SERVER_MARGIN)
    batches = await caldav.gather([caldav.query(ctx, cal, KIND, start=lo, end=hi) for cal in targets])
    found = [o for batch in batches for o in batch]
    occs, skipped = await anyio.to_thread.run_sync(expand, found, KIND, begin, finish, tz)
    return occs, [c.name for c in targets], skipped


def matches(event: dict[str, Any], text: str | None, category: str | None, status: str | None,
            attendee: str | None) -> bool:
    if text:
        needle = text.casefold()
        hay = " ".join(str(event.get(k) or "") for k in ("summary", "description", "location")).casefold()
        if needle not in hay:
            return False
    if category and category.casefold() not in {c.casefold() for c in event["categories"]}:
        return False
    if status and (event.get("status") or "CONFIRMED").upper() != status.upper():
        return False
    if attendee:
        needle = attendee.casefold()
        people = event["attendees"] + ([event["organizer"]] if event.get("organizer") else [])
        if not any(needle in (p.get("email") or "").casefold() or needle in (p.get("name") or "").casefold() for p in people):
            return False
    return True


async def list_events(ctx: ToolContext, start: str, end: str | None = None, calendar: str | None = None,
                      timezone: str | None = None, text: str | None = None, category: str | None = None,
                      status: str | None = None, attendee: str | None = None, limit: int = 200) -> dict[str, Any]:
    zone_name, tz = query_zone(ctx, timezone)
    begin, finish = read_range(start, end, tz)
    occs, names, skipped = await occurrences(ctx, calendar, begin, finish, tz)
    events = [e for e in (o.as_event() for o in occs) if matches(e, text, category, status, attendee)]
    return {"events": events[:limit], "count": min(len(events), limit), "truncated": len(events) > limit,
            "range": {"start": timeutil.describe(begin.astimezone(tz)), "end": timeutil.describe(finish.astimezone(tz))},
            "timezone": zone_name, "calendars": names, "skipped": skipped}


async def get_upcoming_events(ctx: ToolContext, days_ahead: int = 7, limit: int = 10, calendar: str | None = None,
                              timezone: str | None = None) -> dict[str, Any]:
    zone_name, tz = query_zone(ctx, timezone)
    begin = timeutil.now().astimezone(tz).replace(microsecond=0)
    finish = begin + dt.timedelta(days=days_ahead)
    occs, names, skipped = await occurrences(ctx, calendar, begin, finish, tz)
    events = [o.as_event() for o in occs]
    return {"events": events[:limit], "count": min(len(events), limit), "truncated": len(events) > limit,
            "range": {"start": timeutil.describe(begin), "end": timeutil.describe(finish)},
            "timezone": zone_name, "calendars": names, "skipped": skipped}


# --- one event -----------------------------------------------------------------------------------------------

def _series_details(loaded: objects.Loaded) -> dict[str, Any]:
    series = ical.master(loaded.cal, KIND)
    assert series is not None
    out = {**object_fields(loaded.obj), "calendar": objects.calendar_name(loaded.obj.href), **ical.event_dict(series)}
    if "RECURRENCE-ID" not in series:
        out["recurrence_id"] = None
    out["exdates"] = ical.date_list(series, "EXDATE")
    out["rdates"] = ical.date_list(series, "RDATE")
    out["overrides"] = [{"recurrence_id": ical.time_out(o, "RECURRENCE-ID", ical.tzid_of(series, "DTSTART")),
                         "start": ical.time_out(o, "DTSTART"), "end": ical.time_out(o, "DTEND"),
                         "summary": ical.text(o, "SUMMARY"), "status": ical.text(o, "STATUS")}
                        for o in ical.overrides(loaded.cal, KIND) if o is not series]
    return out


def _find_occurrence(loaded: objects.Loaded, occurrence: str) -> tuple[Any, Any, timeutil.Temporal]:
    """(series, the occurrence's component (override or expanded), RECURRENCE-ID value)."""
    series = ical.master(loaded.cal, KIND)
    if series is None or "RECURRENCE-ID" in series or not ical.is_recurring(series):
        raise InvalidArgument(f"{loaded.obj.href} is not a recurring event; leave out `occurrence`")
    start = ical.value_of(series, "DTSTART")
    when = timeutil.same_kind(start, timeutil.parse(occurrence, None, field="occurrence"))
    override = ical.find_override(loaded.cal, KIND, when)
    if override is not None:
        return series, override, ical.value_of(override, "RECURRENCE-ID")
    occ = occurrence_at(loaded.cal, KIND, series, when)
    if occ is None:
        raise NotFound(f"The series has no occurrence starting {occurrence} (pass an occurrence's recurrence_id value)",
                       href=loaded.obj.href, occurrence=occurrence)
    return series, occ, when


def _event_out(obj: caldav.CalObject, comp: Any, series: Any = None) -> dict[str, Any]:
    out = {**object_fields(obj), "calendar": objects.calendar_name(obj.href), **ical.event_dict(comp, series)}
    if "RECURRENCE-ID" not in comp:
        out["recurrence_id"] = None
    return out


async def get_event(ctx: ToolContext, href: str | None = None, uid: str | None = None, calendar: str | None = None,
                    occurrence: str | None = None) -> dict[str, Any]:
    if not href:
        if not uid:
            raise InvalidArgument("Give the event's href (preferred) or its uid")
        href = await find_href_by_uid(ctx, uid, calendar, KIND)
    loaded = await objects.load(ctx, href, KIND)
    if occurrence:
        series, occ, _ = _find_occurrence(loaded, occurrence)
        return _event_out(loaded.obj, occ, series)
    return _series_details(loaded)


async def find_href_by_uid(ctx: ToolContext, uid: str, calendar: str | None, kind: str) -> str:
    """The href of the object holding ``uid``, found by a calendar-query on the UID (the object's
    file name is the server's business and need not match the UID)."""
    targets = caldav.calendars_for(await caldav.list_calendars(ctx), calendar, kind)
    batches = await caldav.gather([caldav.query(ctx, cal, kind, uid=uid) for cal in targets])
    hrefs = [o.href for batch in batches for o in batch
             if any(ical.text(c, "UID") == uid for c in ical.components(ical.load(o.data), kind))]
    if not hrefs:
        raise NotFound(f"No {'event' if kind == KIND else 'task'} with uid {uid!r}")
    if len(hrefs) > 1:
        raise InvalidArgument(f"uid {uid!r} exists in several calendars ({', '.join(hrefs)}); pass the href")
    return hrefs[0]


# --- writes ----------------------------------------------------------------------------------------------

EDITABLE = ("summary", "description", "location", "categories", "status", "priority", "classification", "url",
            "color", "transparency", "alarms", "attendees", "recurrence_rule")


async def _addresses_if_needed(ctx: ToolContext, comp: Any, organizer: str | None) -> list[str]:
    if "ATTENDEE" not in comp or "ORGANIZER" in comp or organizer:
        return []
    return await caldav.principal_addresses(ctx)


async def create_event(ctx: ToolContext, summary: str, start: str, end: str | None = None, calendar: str | None = None,
                       timezone: str | None = None, all_day: bool | None = None, duration_minutes: int | None = None,
                       description: str | None = None, location: str | None = None, categories: list[str] | None = None,
                       recurrence_rule: str | None = None, alarms: list[dict[str, Any]] | None = None,
                       attendees: list[Any] | None = None, organizer: str | None = None, status: str | None = None,
                       priority: int | None = None, classification: str | None = None, url: str | None = None,
                       color: str | None = None, transparency: str | None = None) -> dict[str, Any]:
    # Everything is checked and built before the first request, so bad input costs no round trip.
    default_tz = objects.default_zone(ctx)
    first = patch._kind_fix(patch.read_time(start, timezone or default_tz, field="start"), all_day, field="start")
    event = Event()
    uid = ical.new_uid()
    event.add("UID", uid)
    now = timeutil.now().replace(microsecond=0)
    event.add("DTSTAMP", now)
    event.add("CREATED", now)
    event.add("LAST-MODIFIED", now)
    event.add("DTSTART", first)
    if end is None and duration_minutes is None:
        event.add("DTEND", first + (dt.timedelta(hours=1) if isinstance(first, dt.datetime) else dt.timedelta(days=1)))
    event.add("SUMMARY", summary)
    patch.apply_times(event, start=None, end=end, all_day=None, timezone=timezone, default_tz=default_tz,
                      duration_minutes=duration_minutes)
    changes = {k: v for k, v in {"description": description, "location": location, "categories": categories,
                                 "recurrence_rule": recurrence_rule, "alarms": alarms, "attendees": attendees,
                                 "status": status, "priority": priority, "classification": classification,
                                 "url": url, "color": color, "transparency": transparency}.items() if v is not None}
    patch.apply_common(event, changes)
    cal_info = await caldav.resolve_calendar(ctx, calendar, KIND, writable=True)
    patch.set_organizer_if_needed(event, organizer, await _addresses_if_needed(ctx, event, organizer))
    stored = await objects.create(ctx, cal_info, event, uid, KIND)
    return _event_out(stored, ical.master(ical.load(stored.data), KIND))


async def update_event(ctx: ToolContext, href: str, etag: str | None = None, occurrence: str | None = None,
                       summary: str | None = None, start: str | None = None, end: str | None = None,
                       timezone: str | None = None, all_day: bool | None = None, duration_minutes: int | None = None,
                       description: str | None = None, location: str | None = None,
                       categories: list[str] | None = None, recurrence_rule: str | None = None,
                       alarms: list[dict[str, Any]] | None = None, attendees: list[Any] | None = None,
                       organizer: str | None = None, status: str | None = None, priority: int | None = None,
                       classification: str | None = None, url: str | None = None, color: str | None = None,
                       transparency: str | None = None) -> dict[str, Any]:
    changes = {k: v for k, v in {"summary": summary, "description": description, "location": location,
                                 "categories": categories, "recurrence_rule": recurrence_rule, "alarms": alarms,
                                 "attendees": attendees, "status": status, "priority": priority,
                                 "classification": classification, "url": url, "color": color,
                                 "transparency": transparency}.items() if v is not None}
    timing = any(v is not None for v in (start, end, timezone, all_day, duration_minutes))
    if not changes and not timing and organizer is None:
        raise InvalidArgument("Nothing to change: give at least one field to update")
    loaded = await objects.load(ctx, href, KIND, etag)
    default_tz = objects.default_zone(ctx)
    series = ical.master(loaded.cal, KIND)
    assert series is not None
    if occurrence:
        if recurrence_rule is not None:
            raise InvalidArgument("recurrence_rule belongs to the whole series; leave out `occurrence` to change it")
        series, occ, rid = _find_occurrence(loaded, occurrence)
        target = occ if any(c is occ for c in loaded.cal.subcomponents) else None
        if target is None:  # first change to this occurrence: it becomes an override
            target = ical.occurrence_template(series, rid, ical.value_of(occ, "DTSTART"), ical.value_of(occ, "DTEND"))
            loaded.cal.add_component(target)
        old, new = patch.apply_times(target, start=start, end=end, all_day=all_day, timezone=timezone,
                                     default_tz=default_tz, duration_minutes=duration_minutes)
    else:
        target = series
        old, new = patch.apply_times(target, start=start, end=end, all_day=all_day, timezone=timezone,
                                     default_tz=default_tz, duration_minutes=duration_minutes)
        if new is not old and old is not None and new is not None and ical.is_recurring(series):
            patch.move_exceptions(loaded.cal, series, KIND, old, new)
    if occurrence:
        significant = patch.apply_common(target, changes) or timing
    else:
        significant = patch.apply_to_series(loaded.cal, target, KIND, changes) or timing
    patch.set_organizer_if_needed(target, organizer, await _addresses_if_needed(ctx, target, organizer))
    ical.touch(target, significant=significant)
    stored = await objects.save(ctx, loaded)
    return _event_out(stored, target, series if occurrence else None)


async def delete_event(ctx: ToolContext, href: str, etag: str | None = None, occurrence: str | None = None) -> dict[str, Any]:
    loaded = await objects.load(ctx, href, KIND, etag)
    series = ical.master(loaded.cal, KIND)
    uid = ical.text(series, "UID") if series is not None else ""
    if not occurrence:
        await caldav.remove(ctx, loaded.obj.href, loaded.obj.etag)
        return {"deleted": True, "href": loaded.obj.href, "uid": uid or "", "occurrence": None, "etag": None}
    series, occ, rid = _find_occurrence(loaded, occurrence)
    doomed = [c for c in ical.overrides(loaded.cal, KIND) if ical.same_moment(ical.value_of(c, "RECURRENCE-ID"), rid)]
    ical.remove_components(loaded.cal, doomed)
    ical.add_exdate(series, timeutil.same_kind(ical.value_of(series, "DTSTART"), rid))
    ical.touch(series, significant=True)
    stored = await objects.save(ctx, loaded)
    tzid = ical.tzid_of(series, "DTSTART")
    return {"deleted": True, "href": stored.href, "uid": uid or "", "occurrence": timeutil.describe(rid, tzid),
            "etag": stored.etag}


async def create_meeting(ctx: ToolContext, title: str, date: str, time: str, duration_minutes: int = 60,
                         timezone: str | None = None, attendees: list[Any] | None = None, location: str | None = None,
                         description: str | None = None, reminder_minutes: int | None = 15,
                         calendar: str | None = None, organizer: str | None = None) -> dict[str, Any]:
    clock = timeutil.parse_clock(time, field="time")
    day = timeutil.parse(date, None, field="date")
    if isinstance(day, dt.datetime):
        raise InvalidArgument("date must be a date like 2025-06-10 (the time goes in `time`)")
    alarms = [] if reminder_minutes is None else [{"minutes_before": reminder_minutes}]
    return await create_event(ctx, summary=title, start=dt.datetime.combine(day, clock).isoformat(), calendar=calendar,
                              timezone=timezone, duration_minutes=duration_minutes, attendees=attendees or None,
                              location=location, description=description, alarms=alarms or None, organizer=organizer,
                              status="CONFIRMED")


# --- specs -----------------------------------------------------------------------------------------------

LIST_OUT = {"type": "object", "properties": {
    "events": {"type": "array", "items": EVENT_OUT}, "count": {"type": "integer"}, "truncated": {"type": "boolean"},
    "range": {"type": "object", "properties": {"start": TIME_OUT, "end": TIME_OUT}}, "timezone": {"type": "string"},
    "calendars": {"type": "array", "items": {"type": "string"}}, "skipped": {"type": "integer"}},
    "required": ["events", "count", "truncated", "range", "timezone", "calendars"]}

FIELDS_IN = {
    "description": TEXT_IN, "location": SHORT_IN, "categories": CATEGORIES_IN, "recurrence_rule": RRULE_IN,
    "alarms": ALARMS_IN, "attendees": ATTENDEES_IN,
    "organizer": {**EMAIL_IN, "description": "Organizer email (default: the user's own address)"},
    "status": {"type": "string", "enum": EVENT_STATUS}, "priority": PRIORITY_IN,
    "classification": {**CLASS_IN, "description": "CLASS: PUBLIC, PRIVATE or CONFIDENTIAL"},
    "url": {"type": "string", "maxLength": 2000, "pattern": NO_CONTROLS}, "color": COLOR_IN,
    "transparency": {"type": "string", "enum": ["OPAQUE", "TRANSPARENT"], "description": "OPAQUE = busy, TRANSPARENT = free"},
    "timezone": TZ_IN, "all_day": {"type": "boolean"},
    "duration_minutes": {"type": "integer", "minimum": 1, "maximum": 60 * 24 * 366,
                         "description": "Instead of `end` for timed events"},
}
OCCURRENCE_IN = {"type": "string", "minLength": 4, "maxLength": 80,
                 "description": "Only this occurrence of a recurring event: its recurrence_id value (original start)"}

TOOLS = [
    ToolSpec(name="nc_calendar_list_events", title="List events", access=Access.READ, handler=list_events, hints=READ,
             description="Events overlapping a time range, recurring ones expanded into occurrences (each keeps its own "
                         "zone). One calendar, or all calendars when `calendar` is left out. Filters: text (in title, "
                         "description, location), category, status, attendee (email or name). Date-only bounds are whole "
                         "days in `timezone` (default UTC or the server setting); a date-only end includes that day.",
             input_schema=obj({"start": WHEN_IN, "end": WHEN_IN, "calendar": CALENDAR_IN, "timezone": TZ_IN,
                               "text": SHORT_IN, "category": SHORT_IN, "status": {"type": "string", "enum": EVENT_STATUS},
                               "attendee": SHORT_IN, "limit": {**LIMIT_IN, "default": 200}}, ["start"]),
             output_schema=LIST_OUT),
    ToolSpec(name="nc_calendar_get_upcoming_events", title="Upcoming events", access=Access.READ,
             handler=get_upcoming_events, hints=READ,
             description="Events from now over the next days (default 7), across all calendars unless one is named.",
             input_schema=obj({"days_ahead": {"type": "integer", "minimum": 1, "maximum": 366, "default": 7},
                               "limit": {**LIMIT_IN, "default": 10}, "calendar": CALENDAR_IN, "timezone": TZ_IN}),
             output_schema=LIST_OUT),
    ToolSpec(name="nc_calendar_get_event", title="Get an event", access=Access.READ, handler=get_event, hints=READ,
             description="One event by href (or uid) with its etag: the whole series (with its exceptions: exdates, rdates and "
                         "overridden occurrences), or one occurrence when `occurrence` is given.",
             input_schema=obj({"href": HREF_IN, "uid": {**UID_IN, "description": "Instead of href: find the event by its UID"},
                               "calendar": CALENDAR_IN, "occurrence": OCCURRENCE_IN}), output_schema=EVENT_OUT),
    ToolSpec(name="nc_calendar_create_event", title="Create an event", access=Access.WRITE, handler=create_event, hints=WRITE,
             description="Create an event. Times: a date for all-day events (end date exclusive, default one day), or a "
                         "date-time; give `timezone` (IANA) for local times (recurring events keep their local time across "
                         "DST). Without `end` a timed event lasts `duration_minutes` or one hour. `calendar` defaults to "
                         "the first writable calendar that accepts events.",
             input_schema=obj({"summary": SUMMARY_IN, "start": WHEN_IN,
                               "end": WHEN_IN, "calendar": CALENDAR_IN, **FIELDS_IN}, ["summary", "start"]),
             output_schema=EVENT_OUT),
    ToolSpec(name="nc_calendar_update_event", title="Update an event", access=Access.WRITE, handler=update_event, hints=WRITE,
             description="Change only the given fields of an event; everything else (other reminders, attendee replies, "
                         "vendor properties, exceptions) is kept. Whole series by default, or one occurrence with "
                         "`occurrence`. Moving a series moves its exceptions along. Pass the etag you read: a concurrent "
                         "change gives a conflict with the current etag instead of being overwritten. Empty strings and "
                         "empty lists clear a field.",
             input_schema=obj({"href": HREF_IN, "etag": ETAG_IN, "occurrence": OCCURRENCE_IN,
                               "summary": SUMMARY_IN, "start": WHEN_IN,
                               "end": WHEN_IN, **FIELDS_IN}, ["href"]),
             output_schema=EVENT_OUT),
    ToolSpec(name="nc_calendar_delete_event", title="Delete an event", access=Access.WRITE, handler=delete_event,
             hints=DESTRUCTIVE,
             description="Delete an event series (the whole object), or only one occurrence with `occurrence` (it is "
                         "excluded from the series). Conditional on the etag.",
             input_schema=obj({"href": HREF_IN, "etag": ETAG_IN, "occurrence": OCCURRENCE_IN}, ["href"]),
             output_schema=DELETED_OUT),
    ToolSpec(name="nc_calendar_create_meeting", title="Create a meeting", access=Access.WRITE, handler=create_meeting,
             hints=WRITE,
             description="Quick form: a meeting on a date at a time for some minutes, with attendees and a reminder "
                         "(default 15 minutes before; null for none).",
             input_schema=obj({"title": SUMMARY_IN,
                               "date": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"},
                               "time": {"type": "string", "pattern": r"^\d{2}:\d{2}(:\d{2})?$"},
                               "duration_minutes": {"type": "integer", "minimum": 1, "maximum": 1440, "default": 60},
                               "timezone": TZ_IN, "attendees": ATTENDEES_IN, "location": SHORT_IN, "description": TEXT_IN,
                               "reminder_minutes": {"type": ["integer", "null"], "minimum": 0, "maximum": 40320, "default": 15},
                               "calendar": CALENDAR_IN, "organizer": FIELDS_IN["organizer"]},
                              ["title", "date", "time"]),
             output_schema=EVENT_OUT),
]
