"""JSON Schemas shared by the calendar tools (inputs and outputs)."""

from __future__ import annotations

from typing import Any

from ncmcp import ToolHints

from ncmcp_calendar.timeutil import TIME_SCHEMA

READ = ToolHints(read_only=True, destructive=False, idempotent=True)
WRITE = ToolHints(read_only=False, destructive=False, idempotent=False)
DESTRUCTIVE = ToolHints(read_only=False, destructive=True, idempotent=False)


def obj(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required or [], "additionalProperties": False}


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    kinds = schema.get("type")
    return {**schema, "type": [kinds, "null"]} if isinstance(kinds, str) else {"anyOf": [schema, {"type": "null"}]}


STR = {"type": "string"}
TIME_OUT = nullable(TIME_SCHEMA)

# --- inputs ----------------------------------------------------------------------------------------------

NO_CONTROLS = r"^[^\x00-\x1f\x7f]*$"
TEXT_CHARS = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"  # tabs and line breaks allowed
CALENDAR_IN = {"type": "string", "minLength": 1, "maxLength": 500, "pattern": NO_CONTROLS,
               "description": "Calendar name (as in list_calendars, e.g. 'personal'), display name or href"}
HREF_IN = {"type": "string", "minLength": 1, "maxLength": 2000, "pattern": NO_CONTROLS,
           "description": "The object's href exactly as returned by the calendar tools"}
ETAG_IN = {"type": "string", "minLength": 1, "maxLength": 300, "pattern": "^[!-~]+$",
           "description": "The etag from your last read. If the object changed since, nothing is written and a "
                          "conflict carrying the current etag is returned."}
WHEN_IN = {"type": "string", "minLength": 4, "maxLength": 80, "pattern": NO_CONTROLS,
           "description": "ISO 8601: '2025-03-30' (all-day), '2025-03-30T09:00' (local time in `timezone`, or "
                          "floating without one), '2025-03-30T09:00+02:00' or '...Z' (an instant), or "
                          "'2025-03-30T09:00[Europe/Berlin]'"}
TZ_IN = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": r"^[A-Za-z0-9_+\-/]+$",
         "description": "IANA time zone (e.g. 'Europe/Berlin') for times given without one; also the zone of the output ranges"}
TEXT_IN = {"type": "string", "maxLength": 100_000, "pattern": TEXT_CHARS}
SHORT_IN = {"type": "string", "maxLength": 1000, "pattern": NO_CONTROLS}
SUMMARY_IN = {"type": "string", "minLength": 1, "maxLength": 1000, "pattern": NO_CONTROLS}
UID_IN = {"type": "string", "minLength": 1, "maxLength": 1000, "pattern": NO_CONTROLS}
CATEGORIES_IN = {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": NO_CONTROLS},
                 "maxItems": 50,
                 "description": "Category names; an empty list removes them all"}
PRIORITY_IN = {"type": "integer", "minimum": 0, "maximum": 9, "description": "1 highest … 9 lowest; 0 = undefined"}
CLASS_IN = {"type": "string", "enum": ["PUBLIC", "PRIVATE", "CONFIDENTIAL"]}
EVENT_STATUS = ["TENTATIVE", "CONFIRMED", "CANCELLED"]
TODO_STATUS = ["NEEDS-ACTION", "IN-PROCESS", "COMPLETED", "CANCELLED"]
COLOR_IN = {"type": "string", "maxLength": 40, "pattern": r"^(#[0-9A-Fa-f]{6}|#[0-9A-Fa-f]{3}|[A-Za-z]{3,30})?$",
            "description": "CSS colour name (RFC 7986, e.g. 'tomato') or #RRGGBB; empty removes it"}
RRULE_IN = {"type": "string", "maxLength": 500, "pattern": NO_CONTROLS,
            "description": "RFC 5545 RRULE such as 'FREQ=WEEKLY;BYDAY=MO,WE;UNTIL=20251231' or 'FREQ=DAILY;COUNT=5'; "
                           "an empty string removes the recurrence"}
ALARMS_IN = {"type": "array", "maxItems": 20,
             "description": "Reminders; replaces the existing ones. Pass the alarms you read back as they are to keep "
                          "them (they stay untouched, with their vendor details); [] removes all.",
             "items": {"type": "object", "additionalProperties": False, "properties": {
                 "minutes_before": {"type": "integer", "minimum": -100_000, "maximum": 100_000,
                                    "description": "Minutes before the start (negative: after)"},
                 "at": {"type": "string", "maxLength": 80, "pattern": NO_CONTROLS,
                        "description": "Absolute time instead, e.g. 2025-06-10T08:45:00Z"},
                 "trigger": {"type": "string", "maxLength": 80, "pattern": NO_CONTROLS,
                             "description": "As output by the tools (e.g. -PT15M)"},
                 "action": {"type": "string", "pattern": "^[A-Za-z-]{1,40}$", "default": "DISPLAY",
                            "description": "DISPLAY (default), EMAIL or AUDIO"},
                 "related": {"type": "string", "enum": ["start", "end"],
                             "description": "Anchor: the start (default) or the end/due time"},
                 "description": {"type": ["string", "null"], "maxLength": 1000, "pattern": TEXT_CHARS}}}}
EMAIL_IN = {"type": "string", "minLength": 3, "maxLength": 320, "pattern": r"^[^\s@]+@[^\s@]+$"}
ATTENDEE_OBJ = obj({"email": EMAIL_IN,
                    "name": {"type": ["string", "null"], "maxLength": 200, "pattern": NO_CONTROLS},
                    "cutype": {"type": "string", "maxLength": 40, "pattern": "^[A-Za-z-]*$",
                               "description": "INDIVIDUAL, GROUP, RESOURCE, ROOM"},
                    "role": {"type": "string", "enum": ["CHAIR", "REQ-PARTICIPANT", "OPT-PARTICIPANT", "NON-PARTICIPANT"]},
                    "partstat": {"type": "string", "enum": ["NEEDS-ACTION", "ACCEPTED", "DECLINED", "TENTATIVE", "DELEGATED"]},
                    "rsvp": {"type": "boolean"}}, ["email"])
ATTENDEES_IN = {"type": "array", "maxItems": 200,
                "description": "Attendees (emails or objects); replaces the list, keeping the details (e.g. replies) of "
                               "attendees that stay; [] removes all",
                "items": {"anyOf": [EMAIL_IN, ATTENDEE_OBJ]}}
LIMIT_IN = {"type": "integer", "minimum": 1, "maximum": 2000}

# --- outputs ---------------------------------------------------------------------------------------------

CALENDAR_OUT = {"type": "object", "properties": {
    "href": STR, "name": STR, "display_name": STR, "color": {"type": ["string", "null"]},
    "components": {"type": "array", "items": STR}, "read_only": {"type": "boolean"},
    "description": {"type": ["string", "null"]}}, "required": ["href", "name", "display_name", "components", "read_only"]}

ALARM_OUT = {"type": "object", "properties": {
    "action": STR, "description": {"type": ["string", "null"]}, "minutes_before": {"type": "integer"},
    "related": STR, "trigger": STR, "at": STR}, "required": ["action"]}
ATTENDEE_OUT = {"type": "object", "properties": {
    "email": STR, "name": {"type": ["string", "null"]}, "role": STR, "partstat": STR, "rsvp": {"type": "boolean"},
    "cutype": STR}, "required": ["email"]}

_COMMON_OUT = {
    "href": STR, "etag": {"type": "string", "minLength": 1}, "calendar": STR, "uid": STR, "summary": STR,
    "description": {"type": ["string", "null"]}, "location": {"type": ["string", "null"]},
    "status": {"type": ["string", "null"]}, "priority": {"type": ["integer", "null"]},
    "class": {"type": ["string", "null"]}, "url": {"type": ["string", "null"]}, "color": {"type": ["string", "null"]},
    "categories": {"type": "array", "items": STR}, "alarms": {"type": "array", "items": ALARM_OUT},
    "sequence": {"type": "integer"}, "last_modified": TIME_OUT, "recurrence_rule": {"type": ["string", "null"]},
}
EVENT_OUT = {"type": "object", "properties": {
    **_COMMON_OUT, "start": TIME_OUT, "end": TIME_OUT, "all_day": {"type": "boolean"}, "transparency": STR,
    "attendees": {"type": "array", "items": ATTENDEE_OUT},
    "organizer": {"type": ["object", "null"], "properties": {"email": STR, "name": {"type": ["string", "null"]}}},
    "is_recurring": {"type": "boolean"},
    "recurrence_id": {**TIME_OUT, "description": "For one occurrence of a series: its original start; pass its value as "
                                                 "`occurrence` to change or delete only that occurrence"},
    "exdates": {"type": "array", "items": TIME_SCHEMA}, "rdates": {"type": "array", "items": TIME_SCHEMA},
    "overrides": {"type": "array", "items": {"type": "object"}},
}, "required": ["href", "etag", "uid", "calendar", "summary", "start"]}
TODO_OUT = {"type": "object", "properties": {
    **_COMMON_OUT, "start": TIME_OUT, "due": TIME_OUT, "completed": TIME_OUT, "percent_complete": {"type": "integer"},
    "related_to": {"type": "array", "items": {"type": "object", "properties": {"uid": STR, "reltype": STR}}},
    "parent_uid": {"type": ["string", "null"]},
}, "required": ["href", "etag", "uid", "calendar", "summary"]}

DELETED_OUT = {"type": "object", "properties": {
    "deleted": {"type": "boolean"}, "href": STR, "uid": STR, "occurrence": TIME_OUT,
    "etag": {"type": ["string", "null"], "description": "The object's new etag when only one occurrence was removed"}},
    "required": ["deleted", "href"]}
