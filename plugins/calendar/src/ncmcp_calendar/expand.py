"""Client-side recurrence expansion (never the server's ``<C:expand>``, which rewrites floating and
zoned times into UTC): each occurrence keeps the zone its series was written in, and EXDATE, RDATE
and RECURRENCE-ID overrides are applied by ``recurring-ical-events``, DST included."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import recurring_ical_events
import structlog
from icalendar import Component

from ncmcp_calendar import ical, timeutil
from ncmcp_calendar.caldav import CalObject

log = structlog.get_logger("ncmcp.plugin.calendar")


@dataclass(slots=True)
class Occurrence:
    obj: CalObject
    component: Component  # the occurrence as it happens (override applied)
    series: Component | None  # the master when the object recurs
    sort_key: dt.datetime

    def as_event(self) -> dict[str, Any]:
        out = ical.event_dict(self.component, self.series)
        if self.series is None:
            out["recurrence_id"] = None  # the library stamps one on single events too
        return {**object_fields(self.obj), **out}


def object_fields(obj: CalObject) -> dict[str, Any]:
    cal = obj.calendar
    return {"href": obj.href, "etag": obj.etag, "calendar": cal.name if cal else obj.href.rstrip("/").rsplit("/", 2)[-2]}


def expand(objects: list[CalObject], kind: str, start: dt.datetime, end: dt.datetime,
           local: dt.tzinfo) -> tuple[list[Occurrence], int]:
    """Occurrences of ``kind`` overlapping ``[start, end)``; returns them sorted, and how many objects
    could not be read (skipped rather than failing the whole listing)."""
    found: list[Occurrence] = []
    skipped = 0
    for obj in objects:
        try:
            cal = ical.load(obj.data)
            series = ical.master(cal, kind)
            recurring = series is not None and "RECURRENCE-ID" not in series and ical.is_recurring(series)
            for occ in recurring_ical_events.of(cal, components=[kind]).between(start, end):
                begin = ical.value_of(occ, "DTSTART") or ical.value_of(occ, "DUE")
                key = timeutil.as_instant(begin, local) if begin is not None else start
                found.append(Occurrence(obj, occ, series if recurring else None, key))
        except Exception as exc:  # noqa: BLE001 - one broken object must not hide the others
            skipped += 1
            log.warning("calendar_object_unreadable", href=obj.href, error=type(exc).__name__)
    found.sort(key=lambda o: (o.sort_key, ical.text(o.component, "SUMMARY") or ""))
    return found, skipped


def occurrence_at(cal: Any, kind: str, series: Component, when: timeutil.Temporal) -> Component | None:
    """The occurrence of ``series`` whose original start (RECURRENCE-ID) is ``when``, if the series
    has one there (taking EXDATEs into account)."""
    if isinstance(when, dt.datetime):
        probe = when if when.tzinfo is not None else when
        window = (probe - dt.timedelta(days=1), probe + dt.timedelta(days=1))
    else:
        window = (when - dt.timedelta(days=1), when + dt.timedelta(days=2))
    for occ in recurring_ical_events.of(cal, components=[kind]).between(*window):
        rid = ical.value_of(occ, "RECURRENCE-ID") or ical.value_of(occ, "DTSTART")
        if ical.same_moment(rid, timeutil.same_kind(rid, when) if rid is not None else when):
            return occ
    return None
