"""``nc_calendar_bulk_operations``: update or delete the events matching a filter.

It is a dry run unless ``dry_run`` is false: first it says what it would change. A real run changes
each object with its own conditional request (``If-Match`` on the etag it just read), so an event
edited meanwhile is reported as a conflict and left alone, never overwritten.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import anyio
from ncmcp import Access, Conflict, InvalidArgument, NotFound, ToolContext, ToolError, ToolSpec

from ncmcp_calendar import caldav, ical, objects, patch
from ncmcp_calendar.expand import expand
from ncmcp_calendar.schemas import (
    CALENDAR_IN,
    CATEGORIES_IN,
    CLASS_IN,
    COLOR_IN,
    DESTRUCTIVE,
    EVENT_STATUS,
    LIMIT_IN,
    NO_CONTROLS,
    PRIORITY_IN,
    SHORT_IN,
    SUMMARY_IN,
    TEXT_IN,
    TIME_OUT,
    TZ_IN,
    WHEN_IN,
    obj,
)
from ncmcp_calendar.tools_events import KIND, matches, query_zone, read_range


def _select(found: list[caldav.CalObject], begin: dt.datetime | None, finish: dt.datetime | None, tz: dt.tzinfo,
            filters: dict[str, Any]) -> list[tuple[caldav.CalObject, dict[str, Any]]]:
    """Objects whose series matches the filters and (with a range) occurs in it."""
    if begin is not None and finish is not None:
        occs, _ = expand(found, KIND, begin, finish, tz)
        in_range = {o.obj.href for o in occs}
        found = [o for o in found if o.href in in_range]
    chosen = []
    for obj_ in found:
        try:
            series = ical.master(ical.load(obj_.data), KIND)
        except ToolError:
            continue
        if series is None:
            continue
        event = ical.event_dict(series)
        if matches(event, **filters):
            chosen.append((obj_, event))
    return chosen


async def _apply(ctx: ToolContext, operation: str, obj_: caldav.CalObject, changes: dict[str, Any]) -> dict[str, Any]:
    try:
        if operation == "delete":
            await caldav.remove(ctx, obj_.href, obj_.etag)
            return {"result": "deleted"}
        loaded = objects.Loaded(obj_, ical.load(obj_.data), KIND)
        series = ical.master(loaded.cal, KIND)
        significant = patch.apply_to_series(loaded.cal, series, KIND, changes)
        ical.touch(series, significant=significant)
        stored = await objects.save(ctx, loaded)
        return {"result": "updated", "new_etag": stored.etag}
    except Conflict as exc:
        return {"result": "conflict", "message": exc.message, "current_etag": exc.current_etag}
    except NotFound as exc:
        return {"result": "gone", "message": exc.message}
    except ToolError as exc:
        return {"result": "error", "message": exc.message}


async def bulk_operations(ctx: ToolContext, operation: str, dry_run: bool = True, calendar: str | None = None,
                          start: str | None = None, end: str | None = None, timezone: str | None = None,
                          text: str | None = None, category: str | None = None, status: str | None = None,
                          attendee: str | None = None, changes: dict[str, Any] | None = None,
                          limit: int = 100) -> dict[str, Any]:
    changes = {k: v for k, v in (changes or {}).items() if v is not None}
    if operation == "update" and not changes:
        raise InvalidArgument("operation 'update' needs `changes` (e.g. {\"location\": \"Room 2\"})")
    if operation == "delete" and changes:
        raise InvalidArgument("operation 'delete' takes no `changes`")
    if not any((calendar, start, text, category, status, attendee)):
        raise InvalidArgument("Give at least one filter (calendar, start/end, text, category, status or attendee)")
    zone_name, tz = query_zone(ctx, timezone)
    begin = finish = None
    lo = hi = None
    if start:
        begin, finish = read_range(start, end, tz)
        margin = dt.timedelta(days=1)
        lo, hi = caldav.range_text(begin - margin, finish + margin)
    elif end:
        raise InvalidArgument("end needs a start")
    targets = caldav.calendars_for(await caldav.list_calendars(ctx), calendar, KIND)
    targets = [t for t in targets if not t.read_only]
    batches = await caldav.gather([caldav.query(ctx, cal, KIND, start=lo, end=hi) for cal in targets])
    found = [o for batch in batches for o in batch]
    filters = {"text": text, "category": category, "status": status, "attendee": attendee}
    chosen = await anyio.to_thread.run_sync(_select, found, begin, finish, tz, filters)
    chosen.sort(key=lambda pair: (pair[1]["start"] or {}).get("value", ""))
    items = []
    for obj_, event in chosen[:limit]:
        items.append({"href": obj_.href, "uid": event["uid"], "etag": obj_.etag, "calendar": objects.calendar_name(obj_.href),
                      "summary": event["summary"], "start": event["start"], "is_recurring": event["is_recurring"],
                      "result": f"would be {'deleted' if operation == 'delete' else 'updated'}"})
    if not dry_run:
        by_href = {o.href: o for o, _ in chosen}
        for index, item in enumerate(items):
            item.update(await _apply(ctx, operation, by_href[item["href"]], changes))
            await ctx.report_progress(index + 1, len(items), item["href"])
    done = sum(1 for i in items if i["result"] in ("updated", "deleted"))
    return {"operation": operation, "dry_run": dry_run, "matched": len(chosen), "items": items,
            "truncated": len(chosen) > limit, "changed": done,
            "conflicts": sum(1 for i in items if i["result"] == "conflict"), "timezone": zone_name}


CHANGES_IN = obj({"summary": SUMMARY_IN, "description": TEXT_IN,
                  "location": SHORT_IN, "categories": CATEGORIES_IN, "status": {"type": "string", "enum": EVENT_STATUS},
                  "priority": PRIORITY_IN, "classification": CLASS_IN,
                  "url": {"type": "string", "maxLength": 2000, "pattern": NO_CONTROLS},
                  "color": COLOR_IN, "transparency": {"type": "string", "enum": ["OPAQUE", "TRANSPARENT"]}})

TOOLS = [
    ToolSpec(name="nc_calendar_bulk_operations", title="Update or delete events in bulk", access=Access.WRITE,
             handler=bulk_operations, hints=DESTRUCTIVE,
             description="Update (set the fields in `changes`) or delete every event series matching the filters "
                         "(calendar, time range, text, category, status, attendee). dry_run is true by default: it "
                         "lists what would change; call again with dry_run=false to apply. Each change is conditional "
                         "on the event's etag, so events edited meanwhile are reported as conflicts and left alone.",
             input_schema=obj({"operation": {"type": "string", "enum": ["update", "delete"]},
                               "dry_run": {"type": "boolean", "default": True}, "calendar": CALENDAR_IN,
                               "start": WHEN_IN, "end": WHEN_IN, "timezone": TZ_IN, "text": SHORT_IN,
                               "category": SHORT_IN, "status": {"type": "string", "enum": EVENT_STATUS},
                               "attendee": SHORT_IN, "changes": CHANGES_IN, "limit": {**LIMIT_IN, "default": 100}},
                              ["operation"]),
             output_schema={"type": "object", "properties": {
                 "operation": {"type": "string"}, "dry_run": {"type": "boolean"}, "matched": {"type": "integer"},
                 "items": {"type": "array", "items": {"type": "object", "properties": {
                     "href": {"type": "string"}, "uid": {"type": "string"}, "etag": {"type": "string"},
                     "calendar": {"type": "string"}, "summary": {"type": "string"}, "start": TIME_OUT,
                     "is_recurring": {"type": "boolean"}, "result": {"type": "string"},
                     "message": {"type": "string"}, "new_etag": {"type": ["string", "null"]},
                     "current_etag": {"type": ["string", "null"]}}, "required": ["href", "uid", "etag", "result"]}},
                 "truncated": {"type": "boolean"}, "changed": {"type": "integer"}, "conflicts": {"type": "integer"},
                 "timezone": {"type": "string"}},
                 "required": ["operation", "dry_run", "matched", "items", "changed", "conflicts"]}),
]
