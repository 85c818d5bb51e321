"""Task (VTODO) tools. Tasks only go into calendars whose supported components include VTODO;
Nextcloud's default ``personal`` calendar is VEVENT-only, and the tools say which calendars accept
tasks instead of failing with a bare 403."""

from __future__ import annotations

import datetime as dt
from typing import Any

import anyio
from icalendar import Component, Todo
from ncmcp import Access, InvalidArgument, ToolContext, ToolSpec

from ncmcp_calendar import caldav, ical, objects, patch, timeutil
from ncmcp_calendar.expand import object_fields
from ncmcp_calendar.schemas import (
    ALARMS_IN,
    CALENDAR_IN,
    CATEGORIES_IN,
    CLASS_IN,
    DELETED_OUT,
    DESTRUCTIVE,
    ETAG_IN,
    HREF_IN,
    LIMIT_IN,
    NO_CONTROLS,
    PRIORITY_IN,
    READ,
    RRULE_IN,
    SHORT_IN,
    SUMMARY_IN,
    TEXT_IN,
    TODO_OUT,
    TODO_STATUS,
    TZ_IN,
    UID_IN,
    WHEN_IN,
    WRITE,
    obj,
)

KIND = "VTODO"
FAR = dt.datetime.max.replace(tzinfo=timeutil.UTC)


def _todo_out(obj_: caldav.CalObject, comp: Component) -> dict[str, Any]:
    return {**object_fields(obj_), "calendar": objects.calendar_name(obj_.href), **ical.todo_dict(comp)}


def _read_todos(found: list[caldav.CalObject]) -> tuple[list[tuple[caldav.CalObject, Component]], int]:
    out, skipped = [], 0
    for obj_ in found:
        try:
            comp = ical.master(ical.load(obj_.data), KIND)
        except Exception:  # noqa: BLE001 - one unreadable object must not hide the others
            comp = None
        if comp is None:
            skipped += 1
            continue
        out.append((obj_, comp))
    return out, skipped


def _sort_key(todo: dict[str, Any], tz: dt.tzinfo) -> tuple[Any, ...]:
    due = todo.get("due")
    when = timeutil.as_instant(timeutil.parse(due["value"], None), tz) if due else FAR
    return (when, todo.get("priority") or 10, todo["summary"].casefold())


def _matches(todo: dict[str, Any], *, include_completed: bool, status: str | None, text: str | None,
             category: str | None, priority_at_least: int | None, due_before: dt.datetime | None,
             parent_uid: str | None, tz: dt.tzinfo) -> bool:
    state = (todo.get("status") or "NEEDS-ACTION").upper()
    if status and state != status.upper():
        return False
    if not status and not include_completed and state in ("COMPLETED", "CANCELLED"):
        return False
    if text and text.casefold() not in f"{todo['summary']} {todo.get('description') or ''}".casefold():
        return False
    if category and category.casefold() not in {c.casefold() for c in todo["categories"]}:
        return False
    if priority_at_least is not None and not (todo.get("priority") and todo["priority"] <= priority_at_least):
        return False
    if due_before is not None:
        due = todo.get("due")
        if not due or timeutil.as_instant(timeutil.parse(due["value"], None), tz) >= due_before:
            return False
    if parent_uid is not None and todo.get("parent_uid") != parent_uid:
        return False
    return True


async def _collect(ctx: ToolContext, targets: list[caldav.CalendarInfo], limit: int, timezone: str | None,
                   **filters: Any) -> dict[str, Any]:
    zone_name = timezone or objects.default_zone(ctx) or "UTC"
    tz = timeutil.zone(zone_name)
    due_before = filters.pop("due_before", None)
    if due_before:
        value = timeutil.parse(due_before, zone_name, field="due_before")
        filters["due_before"] = timeutil.as_instant(value, tz)
    else:
        filters["due_before"] = None
    batches = await caldav.gather([caldav.query(ctx, cal, KIND) for cal in targets])
    found = [o for batch in batches for o in batch]
    pairs, skipped = await anyio.to_thread.run_sync(_read_todos, found)
    todos = [t for t in (_todo_out(o, c) for o, c in pairs) if _matches(t, tz=tz, **filters)]
    todos.sort(key=lambda t: _sort_key(t, tz))
    return {"todos": todos[:limit], "count": min(len(todos), limit), "truncated": len(todos) > limit,
            "calendars": [c.name for c in targets], "skipped": skipped}


async def list_todos(ctx: ToolContext, calendar: str | None = None, status: str | None = None,
                     include_completed: bool = False, text: str | None = None, category: str | None = None,
                     priority_at_least: int | None = None, due_before: str | None = None,
                     parent_uid: str | None = None, timezone: str | None = None, limit: int = 200) -> dict[str, Any]:
    target = await caldav.resolve_calendar(ctx, calendar, KIND)
    return await _collect(ctx, [target], limit, timezone, include_completed=include_completed, status=status, text=text,
                          category=category, priority_at_least=priority_at_least, due_before=due_before,
                          parent_uid=parent_uid)


async def search_todos(ctx: ToolContext, text: str | None = None, calendars: list[str] | None = None,
                       status: str | None = None, include_completed: bool = False, category: str | None = None,
                       priority_at_least: int | None = None, due_before: str | None = None,
                       parent_uid: str | None = None, timezone: str | None = None, limit: int = 200) -> dict[str, Any]:
    every = await caldav.list_calendars(ctx)
    if calendars:
        targets = [caldav.calendars_for(every, name, KIND)[0] for name in calendars]
    else:
        targets = [c for c in every if c.accepts(KIND)]
    return await _collect(ctx, targets, limit, timezone, include_completed=include_completed, status=status, text=text,
                          category=category, priority_at_least=priority_at_least, due_before=due_before,
                          parent_uid=parent_uid)


def _apply_dates(comp: Component, start: str | None, due: str | None, timezone: str | None,
                 default_tz: str | None) -> bool:
    changed = False
    for raw, prop, field in ((start, "DTSTART", "start"), (due, "DUE", "due")):
        if raw is None:
            continue
        changed = True
        if raw == "":
            comp.pop(prop, None)
            continue
        current = ical.value_of(comp, prop)
        zone = patch._local_zone(timezone, current, default_tz)
        ical.set_time(comp, prop, patch.read_time(raw, zone, field=field))
        if prop == "DUE":
            comp.pop("DURATION", None)
    begin, end = ical.value_of(comp, "DTSTART"), ical.value_of(comp, "DUE")
    if begin is not None and end is not None and \
            timeutil.as_instant(end, timeutil.UTC) < timeutil.as_instant(begin, timeutil.UTC):
        raise InvalidArgument("due must not be before start")
    if changed:
        ical.renormalize_recurrence(comp)
    return changed


def _apply_progress(comp: Component, status: str | None, percent_complete: int | None) -> None:
    """Keep STATUS, PERCENT-COMPLETE and COMPLETED consistent, as task clients expect."""
    if percent_complete is not None:
        ical.set_int(comp, "PERCENT-COMPLETE", percent_complete)
    if status is None:
        return
    status = status.upper()
    ical.set_text(comp, "STATUS", status)
    if status == "COMPLETED":
        if "COMPLETED" not in comp:
            ical.set_time(comp, "COMPLETED", timeutil.now().replace(microsecond=0))
        ical.set_int(comp, "PERCENT-COMPLETE", 100)
    else:
        comp.pop("COMPLETED", None)
        if percent_complete is None and (ical.int_of(comp, "PERCENT-COMPLETE") or 0) == 100:
            ical.set_int(comp, "PERCENT-COMPLETE", None)


def _set_parent(comp: Component, parent_uid: str) -> None:
    props = comp.get("RELATED-TO")
    kept = [p for p in (props if isinstance(props, list) else [props] if props is not None else [])
            if str((getattr(p, "params", {}) or {}).get("RELTYPE", "PARENT")).upper() != "PARENT"]
    comp.pop("RELATED-TO", None)
    for prop in kept:
        comp.add("RELATED-TO", prop, encode=False)
    if parent_uid:
        comp.add("RELATED-TO", parent_uid, parameters={"RELTYPE": "PARENT"})


def _related_default(comp: Component) -> str:
    # A reminder on a task without a start is relative to its due time (RFC 5545 TRIGGER;RELATED=END).
    return "start" if "DTSTART" in comp else "end"


async def create_todo(ctx: ToolContext, summary: str, calendar: str | None = None, description: str | None = None,
                      status: str | None = None, priority: int | None = None, percent_complete: int | None = None,
                      due: str | None = None, start: str | None = None, timezone: str | None = None,
                      categories: list[str] | None = None, parent_uid: str | None = None, location: str | None = None,
                      url: str | None = None, classification: str | None = None,
                      alarms: list[dict[str, Any]] | None = None, recurrence_rule: str | None = None) -> dict[str, Any]:
    todo = Todo()
    uid = ical.new_uid()
    now = timeutil.now().replace(microsecond=0)
    todo.add("UID", uid)
    todo.add("DTSTAMP", now)
    todo.add("CREATED", now)
    todo.add("LAST-MODIFIED", now)
    todo.add("SUMMARY", summary)
    _apply_dates(todo, start, due, timezone, objects.default_zone(ctx))
    _apply_progress(todo, status or "NEEDS-ACTION", percent_complete)
    if parent_uid:
        _set_parent(todo, parent_uid)
    patch.apply_common(todo, {k: v for k, v in {
        "description": description, "priority": priority, "categories": categories, "location": location, "url": url,
        "classification": classification, "recurrence_rule": recurrence_rule}.items() if v is not None})
    if alarms is not None:
        patch.apply_common(todo, {"alarms": alarms}, default_related=_related_default(todo))
    target = await caldav.resolve_calendar(ctx, calendar, KIND, writable=True)
    stored = await objects.create(ctx, target, todo, uid, KIND)
    return _todo_out(stored, ical.master(ical.load(stored.data), KIND))


async def update_todo(ctx: ToolContext, href: str, etag: str | None = None, summary: str | None = None,
                      description: str | None = None, status: str | None = None, priority: int | None = None,
                      percent_complete: int | None = None, due: str | None = None, start: str | None = None,
                      timezone: str | None = None, categories: list[str] | None = None, parent_uid: str | None = None,
                      location: str | None = None, url: str | None = None, classification: str | None = None,
                      alarms: list[dict[str, Any]] | None = None, recurrence_rule: str | None = None) -> dict[str, Any]:
    changes = {k: v for k, v in {"summary": summary, "description": description, "priority": priority,
                                 "categories": categories, "location": location, "url": url,
                                 "classification": classification, "recurrence_rule": recurrence_rule}.items()
               if v is not None}
    if not changes and all(v is None for v in (status, percent_complete, due, start, parent_uid, alarms)):
        raise InvalidArgument("Nothing to change: give at least one field to update")
    loaded = await objects.load(ctx, href, KIND, etag)
    comp = ical.master(loaded.cal, KIND)
    assert comp is not None
    moved = _apply_dates(comp, start, due, timezone, objects.default_zone(ctx))
    _apply_progress(comp, status, percent_complete)
    if parent_uid is not None:
        _set_parent(comp, parent_uid)
    significant = patch.apply_common(comp, changes) or moved
    if alarms is not None:
        patch.apply_common(comp, {"alarms": alarms}, default_related=_related_default(comp))
    ical.touch(comp, significant=significant or status is not None)
    stored = await objects.save(ctx, loaded)
    return _todo_out(stored, comp)


async def complete_todo(ctx: ToolContext, href: str, etag: str | None = None, completed: bool = True) -> dict[str, Any]:
    loaded = await objects.load(ctx, href, KIND, etag)
    comp = ical.master(loaded.cal, KIND)
    assert comp is not None
    _apply_progress(comp, "COMPLETED" if completed else "NEEDS-ACTION", None if completed else 0)
    ical.touch(comp, significant=True)
    stored = await objects.save(ctx, loaded)
    return _todo_out(stored, comp)


async def delete_todo(ctx: ToolContext, href: str, etag: str | None = None) -> dict[str, Any]:
    loaded = await objects.load(ctx, href, KIND, etag)
    comp = ical.master(loaded.cal, KIND)
    await caldav.remove(ctx, loaded.obj.href, loaded.obj.etag)
    return {"deleted": True, "href": loaded.obj.href, "uid": ical.text(comp, "UID") or "" if comp else "",
            "occurrence": None, "etag": None}


LIST_OUT = {"type": "object", "properties": {
    "todos": {"type": "array", "items": TODO_OUT}, "count": {"type": "integer"}, "truncated": {"type": "boolean"},
    "calendars": {"type": "array", "items": {"type": "string"}}, "skipped": {"type": "integer"}},
    "required": ["todos", "count", "truncated", "calendars"]}
FILTERS_IN = {
    "status": {"type": "string", "enum": TODO_STATUS},
    "include_completed": {"type": "boolean", "default": False,
                          "description": "Also list completed and cancelled tasks (implied when `status` is given)"},
    "category": SHORT_IN,
    "priority_at_least": {"type": "integer", "minimum": 1, "maximum": 9,
                          "description": "Only tasks at least this important: priority 1 (highest) up to this value"},
    "due_before": WHEN_IN, "parent_uid": {**UID_IN, "description": "Only subtasks of this task"},
    "timezone": TZ_IN, "limit": {**LIMIT_IN, "default": 200},
}
WHEN_OR_EMPTY = {**WHEN_IN, "minLength": 0, "description": WHEN_IN["description"] + "; an empty string removes it"}
FIELDS_IN = {
    "description": TEXT_IN, "status": {"type": "string", "enum": TODO_STATUS}, "priority": PRIORITY_IN,
    "percent_complete": {"type": "integer", "minimum": 0, "maximum": 100}, "due": WHEN_OR_EMPTY, "start": WHEN_OR_EMPTY,
    "timezone": TZ_IN, "categories": CATEGORIES_IN,
    "parent_uid": {**UID_IN, "minLength": 0,
                   "description": "UID of the parent task (RELATED-TO, makes this a subtask); empty removes it"},
    "location": SHORT_IN, "url": {"type": "string", "maxLength": 2000, "pattern": NO_CONTROLS},
    "classification": {**CLASS_IN, "description": "CLASS: PUBLIC, PRIVATE or CONFIDENTIAL"}, "alarms": ALARMS_IN,
    "recurrence_rule": RRULE_IN,
}

TOOLS = [
    ToolSpec(name="nc_calendar_list_todos", title="List tasks", access=Access.READ, handler=list_todos, hints=READ,
             description="Tasks of one task list (default: the first calendar that accepts tasks), open ones unless "
                         "asked otherwise, sorted by due date then priority.",
             input_schema=obj({"calendar": CALENDAR_IN, "text": SHORT_IN, **FILTERS_IN}), output_schema=LIST_OUT),
    ToolSpec(name="nc_calendar_search_todos", title="Search tasks", access=Access.READ, handler=search_todos, hints=READ,
             description="Search tasks across all calendars that hold tasks (or the listed ones) by text in the title or "
                         "description and by status, category, priority, due date or parent task.",
             input_schema=obj({"text": SHORT_IN, "calendars": {"type": "array", "items": CALENDAR_IN, "maxItems": 50},
                               **FILTERS_IN}), output_schema=LIST_OUT),
    ToolSpec(name="nc_calendar_create_todo", title="Create a task", access=Access.WRITE, handler=create_todo, hints=WRITE,
             description="Create a task (VTODO). `calendar` must accept tasks (Nextcloud's 'personal' calendar does not); "
                         "by default the first writable calendar that does is used. parent_uid makes it a subtask.",
             input_schema=obj({"summary": SUMMARY_IN, "calendar": CALENDAR_IN, **FIELDS_IN}, ["summary"]),
             output_schema=TODO_OUT),
    ToolSpec(name="nc_calendar_update_todo", title="Update a task", access=Access.WRITE, handler=update_todo, hints=WRITE,
             description="Change only the given fields of a task; the rest is kept. Setting status COMPLETED stamps the "
                         "completion time. Pass the etag you read: a concurrent change gives a conflict instead of being "
                         "overwritten. Empty strings and lists clear a field.",
             input_schema=obj({"href": HREF_IN, "etag": ETAG_IN, "summary": SUMMARY_IN, **FIELDS_IN}, ["href"]),
             output_schema=TODO_OUT),
    ToolSpec(name="nc_calendar_complete_todo", title="Complete a task", access=Access.WRITE, handler=complete_todo,
             hints=WRITE,
             description="Mark a task done (status COMPLETED, 100 %, completion time), or reopen it with completed=false.",
             input_schema=obj({"href": HREF_IN, "etag": ETAG_IN, "completed": {"type": "boolean", "default": True}},
                              ["href"]),
             output_schema=TODO_OUT),
    ToolSpec(name="nc_calendar_delete_todo", title="Delete a task", access=Access.WRITE, handler=delete_todo,
             hints=DESTRUCTIVE, description="Delete a task, conditional on its etag.",
             input_schema=obj({"href": HREF_IN, "etag": ETAG_IN}, ["href"]), output_schema=DELETED_OUT),
]
