"""Times in and out of the tools.

iCalendar knows four kinds of time and they must never be confused:

* ``date``      — an all-day value (``DTSTART;VALUE=DATE:20250330``);
* ``floating``  — a wall-clock time with no zone (``DTSTART:20250330T090000``), the same local
  time wherever the reader is;
* ``utc``       — an instant (``DTSTART:20250330T070000Z``);
* ``zoned``     — a wall-clock time in a named zone (``DTSTART;TZID=Europe/Berlin:...``), which
  keeps its local time across DST changes when it recurs.

Inputs are ISO 8601: ``2025-03-30`` (a date), ``2025-03-30T09:00`` (floating unless a zone is
given), ``2025-03-30T09:00+02:00`` / ``...Z`` (an instant), or RFC 9557's
``2025-03-30T09:00[Europe/Berlin]`` (a zoned time). A separate ``timezone`` argument names the IANA
zone for inputs without one. Outputs are objects saying which kind and which zone.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ncmcp import InvalidArgument

UTC = dt.UTC
_BRACKET = re.compile(r"^(?P<base>[^\[\]]+)\[(?P<zone>[A-Za-z0-9_+\-/]+)\]$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

Temporal = dt.date | dt.datetime

TIME_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A time as iCalendar holds it. kind: 'date' (all-day), 'floating' (local time, no zone), "
                   "'utc' or 'zoned' (local time in the named zone). value is ISO 8601 (with its UTC offset "
                   "for utc/zoned).",
    "properties": {
        "value": {"type": "string"},
        "kind": {"type": "string", "enum": ["date", "floating", "utc", "zoned"]},
        "timezone": {"type": ["string", "null"], "description": "IANA zone or the object's own TZID"},
    },
    "required": ["value", "kind", "timezone"],
}


def zone(name: str) -> dt.tzinfo:
    """An IANA zone by name (``UTC`` included)."""
    if name.upper() in ("UTC", "Z", "GMT", "ETC/UTC"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidArgument(f"Unknown time zone {name!r}; use an IANA name such as 'Europe/Berlin' or 'UTC'") from exc


def is_utc(tz: dt.tzinfo | None) -> bool:
    if tz is None:
        return False
    if tz is UTC or getattr(tz, "key", None) in ("UTC", "Etc/UTC"):
        return True
    # A fixed zero offset is UTC too (icalendar parses 'Z' times as ZoneInfo('UTC')).
    return isinstance(tz, dt.timezone) and tz.utcoffset(None) == dt.timedelta(0)


def zone_label(value: dt.datetime, tzid: str | None = None) -> str | None:
    """The zone name to show: the TZID the object uses, else the tzinfo's own name."""
    if value.tzinfo is None:
        return None
    if is_utc(value.tzinfo):
        return "UTC"
    if tzid:
        return tzid
    key = getattr(value.tzinfo, "key", None)
    return key or value.tzname()


def parse(text: str, timezone: str | None = None, *, field: str = "time") -> Temporal:
    """Parse one input time (see the module doc). Returns a date, a naive datetime (floating), or an
    aware datetime (UTC for a bare offset, the named zone otherwise)."""
    raw = (text or "").strip()
    if not raw:
        raise InvalidArgument(f"{field} is empty")
    if _DATE.match(raw):
        try:
            return dt.date.fromisoformat(raw)
        except ValueError as exc:
            raise InvalidArgument(f"{field}: {raw!r} is not a valid date") from exc
    inline_zone = None
    found = _BRACKET.match(raw)
    if found:
        raw, inline_zone = found["base"], found["zone"]
    try:
        value = dt.datetime.fromisoformat(raw.replace(" ", "T", 1) if "T" not in raw else raw)
    except ValueError as exc:
        raise InvalidArgument(f"{field}: {text!r} is not ISO 8601 (e.g. 2025-03-30, 2025-03-30T09:00, "
                              f"2025-03-30T09:00+02:00 or 2025-03-30T09:00[Europe/Berlin])") from exc
    target = inline_zone or timezone
    if target:
        tz = zone(target)
        return value.replace(tzinfo=tz) if value.tzinfo is None else value.astimezone(tz)
    if value.tzinfo is not None:
        # A bare offset names no zone: keep the exact instant, in UTC.
        return value.astimezone(UTC)
    return value


def describe(value: Temporal, tzid: str | None = None) -> dict[str, Any]:
    """The output form of one time."""
    if not isinstance(value, dt.datetime):
        return {"value": value.isoformat(), "kind": "date", "timezone": None}
    if value.tzinfo is None:
        return {"value": value.isoformat(), "kind": "floating", "timezone": None}
    if is_utc(value.tzinfo):
        return {"value": value.astimezone(UTC).isoformat().replace("+00:00", "Z"), "kind": "utc", "timezone": "UTC"}
    return {"value": value.isoformat(), "kind": "zoned", "timezone": zone_label(value, tzid)}


def as_instant(value: Temporal, local: dt.tzinfo) -> dt.datetime:
    """An aware datetime for comparisons: dates start at midnight and floating times are read in
    ``local`` (the zone the caller asked about)."""
    if not isinstance(value, dt.datetime):
        return dt.datetime.combine(value, dt.time(), tzinfo=local)
    if value.tzinfo is None:
        return value.replace(tzinfo=local)
    return value


def to_utc_text(value: dt.datetime) -> str:
    """``20250330T070000Z`` as CalDAV time-range attributes want it."""
    return value.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def same_kind(template: Temporal, value: Temporal) -> Temporal:
    """``value`` expressed like ``template`` (date / floating / same zone), as RFC 5545 wants for
    EXDATE, RECURRENCE-ID and RRULE UNTIL relative to DTSTART."""
    if not isinstance(template, dt.datetime):
        return value.date() if isinstance(value, dt.datetime) else value
    if not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, template.time() if template.tzinfo is None else template.timetz())
    if template.tzinfo is None:
        return value.replace(tzinfo=None) if value.tzinfo is not None else value
    if value.tzinfo is None:
        return value.replace(tzinfo=template.tzinfo)
    return value.astimezone(template.tzinfo)


def wall_delta(old: Temporal, new: Temporal) -> dt.timedelta:
    """The wall-clock shift from ``old`` to ``new`` (so a series moved from 09:00 to 10:00 moves
    every exception by one hour of local time, whatever DST does)."""
    def naive(v: Temporal) -> dt.datetime:
        return v.replace(tzinfo=None) if isinstance(v, dt.datetime) else dt.datetime.combine(v, dt.time())
    return naive(new) - naive(old)


def shift_wall(value: Temporal, delta: dt.timedelta, template: Temporal) -> Temporal:
    """Move ``value`` by a wall-clock ``delta`` and express it like ``template``."""
    if isinstance(value, dt.datetime):
        moved: Temporal = (value.replace(tzinfo=None) + delta).replace(tzinfo=value.tzinfo)
    else:
        moved = dt.datetime.combine(value, dt.time()) + delta
        if not isinstance(template, dt.datetime):
            moved = moved.date()
    if isinstance(template, dt.datetime) and isinstance(moved, dt.datetime) and moved.tzinfo is not None \
            and template.tzinfo is not None:
        # Keep the wall time when the zone changes too (a series moved to another zone).
        moved = moved.replace(tzinfo=template.tzinfo)
    return same_kind(template, moved)


def parse_clock(text: str, *, field: str) -> dt.time:
    try:
        return dt.time.fromisoformat(text)
    except ValueError as exc:
        raise InvalidArgument(f"{field}: {text!r} is not a time of day like '09:00'") from exc


def now() -> dt.datetime:
    return dt.datetime.now(UTC)
