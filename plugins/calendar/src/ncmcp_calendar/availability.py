"""Free time: ``nc_calendar_find_availability``.

Busy time comes from the server's CALDAV:free-busy-query REPORT (RFC 4791 §7.10, one per calendar;
it honours transparency and cancelled events the way the server sees them). Where a server does not
answer it, the busy time is computed here from the calendar's events (expanded, transparent and
cancelled ones left out). The output says which method each calendar used.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import anyio
from ncmcp import Access, InvalidArgument, ToolContext, ToolSpec

from ncmcp_calendar import caldav, ical, objects, timeutil
from ncmcp_calendar.expand import expand
from ncmcp_calendar.schemas import CALENDAR_IN, READ, TIME_OUT, TZ_IN, obj

Interval = tuple[dt.datetime, dt.datetime]
FREE_BUSY = "free-busy-query"
EVENTS = "events"


def parse_free_busy(body: bytes) -> list[Interval]:
    cal = ical.load(body)
    busy: list[Interval] = []
    for comp in cal.walk("VFREEBUSY"):
        props = comp.get("FREEBUSY")
        for prop in props if isinstance(props, list) else [props] if props is not None else []:
            if str((getattr(prop, "params", {}) or {}).get("FBTYPE", "BUSY")).upper() == "FREE":
                continue
            start, end_or_length = prop.dt
            end = start + end_or_length if isinstance(end_or_length, dt.timedelta) else end_or_length
            busy.append((timeutil.as_instant(start, timeutil.UTC), timeutil.as_instant(end, timeutil.UTC)))
    return busy


def busy_from_events(found: list[caldav.CalObject], begin: dt.datetime, finish: dt.datetime,
                     tz: dt.tzinfo) -> list[Interval]:
    occs, _ = expand(found, "VEVENT", begin, finish, tz)
    busy = []
    for occ in occs:
        comp = occ.component
        if (ical.text(comp, "TRANSP") or "OPAQUE").upper() == "TRANSPARENT":
            continue
        if (ical.text(comp, "STATUS") or "").upper() == "CANCELLED":
            continue
        start, end = ical.value_of(comp, "DTSTART"), ical.end_of(comp)
        if start is None or end is None:
            continue
        busy.append((timeutil.as_instant(start, tz), timeutil.as_instant(end, tz)))
    return busy


def merge(intervals: list[Interval]) -> list[Interval]:
    out: list[Interval] = []
    for start, end in sorted(intervals):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def free_windows(first: dt.date, last: dt.date, tz: dt.tzinfo, day_start: dt.time, day_end: dt.time,
                 weekdays: set[int], busy: list[Interval], not_before: dt.datetime, minimum: dt.timedelta) -> list[Interval]:
    """Free windows inside working hours (wall-clock in ``tz``, so DST days keep their hours)."""
    windows: list[Interval] = []
    day = first
    while day <= last:
        if day.isoweekday() in weekdays:
            # Aware construction through the zone keeps 09:00 at 09:00 local on either side of DST.
            open_ = max(dt.datetime.combine(day, day_start, tzinfo=tz), not_before)
            close = dt.datetime.combine(day, day_end, tzinfo=tz)
            cursor = open_
            for b_start, b_end in busy:
                if b_end <= cursor or b_start >= close:
                    continue
                if b_start > cursor:
                    windows.append((cursor, b_start))
                cursor = max(cursor, b_end)
                if cursor >= close:
                    break
            if cursor < close:
                windows.append((cursor, close))
        day += dt.timedelta(days=1)
    return [(s, e) for s, e in windows if e - s >= minimum]


async def _busy_for(ctx: ToolContext, cal: caldav.CalendarInfo, begin: dt.datetime, finish: dt.datetime,
                    tz: dt.tzinfo) -> tuple[list[Interval], str]:
    lo, hi = caldav.range_text(begin, finish)
    try:
        body = await caldav.free_busy(ctx, cal, lo, hi)
        return await anyio.to_thread.run_sync(parse_free_busy, body), FREE_BUSY
    except caldav.FreeBusyUnsupported as exc:
        ctx.log.info("free_busy_fallback", calendar=cal.name, reason=str(exc))
    margin = dt.timedelta(days=1)
    lo, hi = caldav.range_text(begin - margin, finish + margin)
    found = await caldav.query(ctx, cal, "VEVENT", start=lo, end=hi)
    return await anyio.to_thread.run_sync(busy_from_events, found, begin, finish, tz), EVENTS


async def find_availability(ctx: ToolContext, duration_minutes: int, start_date: str, end_date: str | None = None,
                            timezone: str | None = None, working_hours_start: str = "09:00",
                            working_hours_end: str = "17:00", working_days: list[int] | None = None,
                            calendars: list[str] | None = None, max_slots: int = 50) -> dict[str, Any]:
    zone_name = timezone or objects.default_zone(ctx) or "UTC"
    tz = timeutil.zone(zone_name)
    first = timeutil.parse(start_date, None, field="start_date")
    last = timeutil.parse(end_date, None, field="end_date") if end_date else first
    if isinstance(first, dt.datetime) or isinstance(last, dt.datetime):
        raise InvalidArgument("start_date and end_date are dates like 2025-06-10")
    if last < first or (last - first).days > 92:
        raise InvalidArgument("end_date must be on or after start_date, at most 92 days later")
    day_start = timeutil.parse_clock(working_hours_start, field="working_hours_start")
    day_end = timeutil.parse_clock(working_hours_end, field="working_hours_end")
    if day_end <= day_start:
        raise InvalidArgument("working_hours_end must be after working_hours_start")
    weekdays = set(working_days or [1, 2, 3, 4, 5])
    every = await caldav.list_calendars(ctx)
    targets = [caldav.calendars_for(every, c, "VEVENT")[0] for c in calendars] if calendars else \
        [c for c in every if c.accepts("VEVENT")]
    begin = dt.datetime.combine(first, dt.time(), tzinfo=tz)
    finish = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), tzinfo=tz)
    results = await caldav.gather([_busy_for(ctx, cal, begin, finish, tz) for cal in targets])
    busy = merge([interval for intervals, _ in results for interval in intervals])
    methods = {cal.name: method for cal, (_, method) in zip(targets, results, strict=True)}
    used = set(methods.values())
    minimum = dt.timedelta(minutes=duration_minutes)
    windows = free_windows(first, last, tz, day_start, day_end, weekdays, busy,
                           timeutil.now().replace(second=0, microsecond=0), minimum)
    def period(start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
        return {"start": timeutil.describe(start.astimezone(tz), zone_name),
                "end": timeutil.describe(end.astimezone(tz), zone_name), "minutes": int((end - start).total_seconds() // 60)}

    slots = [period(s, e) for s, e in windows[:max_slots]]
    return {"slots": slots, "count": len(slots), "truncated": len(windows) > max_slots,
            "method": used.pop() if len(used) == 1 else ("mixed" if used else FREE_BUSY), "methods": methods,
            "busy": [period(s, e) for s, e in busy if e > begin and s < finish][:500],
            "timezone": zone_name, "duration_minutes": duration_minutes}


PERIOD = {"type": "object", "properties": {"start": TIME_OUT, "end": TIME_OUT, "minutes": {"type": "integer"}},
          "required": ["start", "end"]}

TOOLS = [
    ToolSpec(name="nc_calendar_find_availability", title="Find free time", access=Access.READ, handler=find_availability,
             hints=READ,
             description="Free windows of at least `duration_minutes` within working hours on working days between two "
                         "dates (inclusive), in `timezone`, over the user's calendars (or the listed ones). Uses the "
                         "server's free-busy query and falls back to reading the events; `method` says which. Each slot "
                         "is a whole free window; any start inside it that leaves `duration_minutes` works.",
             input_schema=obj({
                 "duration_minutes": {"type": "integer", "minimum": 5, "maximum": 1440},
                 "start_date": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"},
                 "end_date": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"},
                 "timezone": TZ_IN,
                 "working_hours_start": {"type": "string", "pattern": r"^\d{2}:\d{2}$", "default": "09:00"},
                 "working_hours_end": {"type": "string", "pattern": r"^\d{2}:\d{2}$", "default": "17:00"},
                 "working_days": {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 7},
                                  "uniqueItems": True, "description": "ISO weekdays, 1 = Monday (default 1-5)"},
                 "calendars": {"type": "array", "items": CALENDAR_IN, "maxItems": 50},
                 "max_slots": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}},
                 ["duration_minutes", "start_date"]),
             output_schema={"type": "object", "properties": {
                 "slots": {"type": "array", "items": PERIOD}, "count": {"type": "integer"}, "truncated": {"type": "boolean"},
                 "method": {"type": "string", "enum": [FREE_BUSY, EVENTS, "mixed"]},
                 "methods": {"type": "object", "additionalProperties": {"type": "string"}},
                 "busy": {"type": "array", "items": PERIOD}, "timezone": {"type": "string"},
                 "duration_minutes": {"type": "integer"}},
                 "required": ["slots", "method", "methods", "timezone"]}),
]
