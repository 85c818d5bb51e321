"""Applying a tool's requested changes to one VEVENT or VTODO, field by field.

Only the fields present in ``changes`` are touched. Text fields take ``""`` to remove them, lists
take ``[]``; everything the caller did not name stays exactly as stored.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from icalendar import Calendar, Component
from ncmcp import InvalidArgument

from ncmcp_calendar import ical, timeutil
from ncmcp_calendar.timeutil import Temporal

TEXT_FIELDS = {"summary": "SUMMARY", "description": "DESCRIPTION", "location": "LOCATION", "url": "URL",
               "color": "COLOR", "status": "STATUS", "classification": "CLASS", "transparency": "TRANSP"}


def attendee_items(values: list[Any]) -> list[dict[str, Any]]:
    items = []
    for value in values:
        item = {"email": value} if isinstance(value, str) else dict(value)
        email = str(item["email"]).strip().removeprefix("mailto:")
        if "@" not in email or any(ch.isspace() for ch in email):
            raise InvalidArgument(f"attendee {item['email']!r} is not an email address")
        items.append({**item, "email": email})
    return items


def apply_common(comp: Component, changes: Mapping[str, Any], *, default_related: str = "start") -> bool:
    """Text, categories, priority, alarms, attendees, recurrence. Returns True when a change is
    significant for scheduling (status or recurrence)."""
    significant = False
    for key, prop in TEXT_FIELDS.items():
        if key in changes and changes[key] is not None:
            value = str(changes[key])
            if key in ("status", "classification", "transparency"):
                value = value.upper()
            if key == "summary" and not value.strip():
                raise InvalidArgument("summary cannot be empty")
            significant |= key == "status" and (ical.text(comp, prop) or "") != value
            ical.set_text(comp, prop, value)
    if changes.get("categories") is not None:
        ical.set_categories(comp, changes["categories"])
    if changes.get("priority") is not None:
        ical.set_int(comp, "PRIORITY", int(changes["priority"]) or None)
    if changes.get("alarms") is not None:
        ical.set_alarms(comp, changes["alarms"], default_related=default_related)
    if changes.get("attendees") is not None:
        ical.set_attendees(comp, attendee_items(changes["attendees"]))
    if changes.get("recurrence_rule") is not None:
        before = ical.rrule_text(comp)
        ical.set_rrule(comp, changes["recurrence_rule"] or None)
        significant |= before != ical.rrule_text(comp)
    return significant


INHERITED = ("summary", "description", "location", "categories", "status", "priority", "classification", "url",
             "color", "transparency")


def _snapshot(comp: Component) -> dict[str, Any]:
    values: dict[str, Any] = {key: ical.text(comp, prop) for key, prop in TEXT_FIELDS.items()}
    values["categories"] = ical.categories(comp)
    values["priority"] = ical.int_of(comp, "PRIORITY")
    return values


def apply_to_series(cal: Calendar, series: Component, kind: str, changes: Mapping[str, Any]) -> bool:
    """Apply ``changes`` to a series and carry them into its overridden occurrences wherever the
    occurrence still had the series' value (an occurrence edited on purpose keeps its own)."""
    before = _snapshot(series)
    significant = apply_common(series, changes)
    carried = {k: v for k, v in changes.items() if k in INHERITED}
    uid = ical.text(series, "UID")
    for override in ical.overrides(cal, kind):
        if override is series or ical.text(override, "UID") != uid or not carried:
            continue
        mine = _snapshot(override)
        inherited = {k: v for k, v in carried.items() if mine[k] == before[k]}
        if inherited:
            apply_common(override, inherited)
            ical.touch(override, significant="status" in inherited)
    return significant


def _local_zone(timezone: str | None, current: Temporal | None, default_tz: str | None) -> str | dt.tzinfo | None:
    """Which zone a time given without one is read in: the caller's ``timezone``, else the zone the
    object already uses (even a custom Outlook TZID), else the configured default (else floating)."""
    if timezone:
        return timezone
    if isinstance(current, dt.datetime) and current.tzinfo is not None:
        return current.tzinfo
    return default_tz


def read_time(text: str, zone: str | dt.tzinfo | None, *, field: str) -> Temporal:
    if isinstance(zone, dt.tzinfo):
        value = timeutil.parse(text, None, field=field)
        if isinstance(value, dt.datetime):
            has_zone = "[" in text or value.tzinfo is not None
            if not has_zone:
                return value.replace(tzinfo=zone)
            if not timeutil.is_utc(zone):
                return value.astimezone(zone) if "[" not in text else value
        return value
    return timeutil.parse(text, zone, field=field)


def _kind_fix(value: Temporal, all_day: bool | None, *, field: str) -> Temporal:
    if all_day is True and isinstance(value, dt.datetime):
        return value.date()
    if all_day is False and not isinstance(value, dt.datetime):
        raise InvalidArgument(f"{field}: give a date and time (e.g. {value.isoformat()}T09:00) for an event that is not all-day")
    return value


def apply_times(comp: Component, *, start: str | None, end: str | None, all_day: bool | None,
                timezone: str | None, default_tz: str | None, end_prop: str = "DTEND",
                duration_minutes: int | None = None) -> tuple[Temporal | None, Temporal | None]:
    """Change DTSTART/DTEND (DUE for tasks). Returns (old start, new start) so a series can move its
    exceptions; (x, x) when the start did not change."""
    old_start = ical.value_of(comp, "DTSTART")
    old_end = ical.value_of(comp, end_prop)
    duration_prop = comp.get("DURATION")
    old_duration = getattr(duration_prop, "dt", None) if duration_prop is not None else None
    if old_duration is None and old_start is not None and old_end is not None:
        old_duration = timeutil.wall_delta(old_start, old_end)
    nothing = start is None and end is None and all_day is None and timezone is None and duration_minutes is None
    if nothing:
        return old_start, old_start

    new_start = old_start
    if start is not None:
        new_start = _kind_fix(read_time(start, _local_zone(timezone, old_start, default_tz), field="start"), all_day,
                              field="start")
    elif old_start is not None and all_day is True and isinstance(old_start, dt.datetime):
        new_start = old_start.date()
    elif old_start is not None and all_day is False and not isinstance(old_start, dt.datetime):
        raise InvalidArgument("Give `start` with a time of day to turn an all-day item into a timed one")
    elif timezone and isinstance(old_start, dt.datetime):
        # Only the zone given: keep the wall-clock time, now read in that zone.
        new_start = old_start.replace(tzinfo=timeutil.zone(timezone))

    new_end: Temporal | None = None
    if end is not None:
        new_end = read_time(end, _local_zone(timezone, old_end or new_start, default_tz), field="end")
        if new_start is not None and not isinstance(new_start, dt.datetime):
            new_end = _kind_fix(new_end, True, field="end")
        elif isinstance(new_start, dt.datetime) and not isinstance(new_end, dt.datetime):
            raise InvalidArgument("end must have a time of day when start has one")
    elif duration_minutes is not None and new_start is not None:
        if not isinstance(new_start, dt.datetime):
            raise InvalidArgument("duration_minutes applies to timed items; give an end date for all-day ones")
        new_end = new_start + dt.timedelta(minutes=duration_minutes)
    elif end_prop == "DTEND" and new_start is not None and new_start is not old_start:
        if isinstance(new_start, dt.datetime) != isinstance(old_start, dt.datetime) or old_duration is None:
            new_end = new_start + (dt.timedelta(hours=1) if isinstance(new_start, dt.datetime) else dt.timedelta(days=1))
        elif old_end is not None or duration_prop is None:
            new_end = new_start + old_duration
            if not isinstance(new_start, dt.datetime) and isinstance(new_end, dt.datetime):
                new_end = new_end.date()
    elif timezone and isinstance(old_end, dt.datetime) and end_prop == "DTEND":
        new_end = old_end.replace(tzinfo=timeutil.zone(timezone))

    if new_start is not None and new_end is not None and end_prop == "DTEND":
        if timeutil.as_instant(new_end, timeutil.UTC) <= timeutil.as_instant(new_start, timeutil.UTC):
            raise InvalidArgument("end must be after start (for all-day events the end date is exclusive: "
                                  "the day after the last day)")
    if new_start is not old_start:
        ical.set_time(comp, "DTSTART", new_start)
    if new_end is not None:
        comp.pop("DURATION", None)
        ical.set_time(comp, end_prop, new_end)
    elif end_prop == "DTEND" and duration_prop is not None and new_start is not None \
            and not isinstance(new_start, dt.datetime) and isinstance(old_duration, dt.timedelta) \
            and old_duration.seconds:
        comp.pop("DURATION")
        comp.add("DURATION", dt.timedelta(days=max(1, old_duration.days)))
    ical.renormalize_recurrence(comp)
    return old_start, new_start


def move_exceptions(cal: Calendar, series: Component, kind: str, old: Temporal, new: Temporal) -> None:
    """The series start moved from ``old`` to ``new``: move EXDATE/RDATE and the overrides'
    RECURRENCE-IDs by the same wall-clock shift, so every exception still points at an occurrence.
    Overrides that had not been moved themselves move along."""
    delta = timeutil.wall_delta(old, new)

    def mapper(value: Temporal) -> Temporal:
        return timeutil.shift_wall(value, delta, new)

    ical.map_dates(series, "EXDATE", mapper)
    ical.map_dates(series, "RDATE", mapper)
    uid = ical.text(series, "UID")
    for override in ical.overrides(cal, kind):
        if ical.text(override, "UID") != uid:
            continue
        rid = ical.value_of(override, "RECURRENCE-ID")
        if rid is None:
            continue
        params = override["RECURRENCE-ID"].params
        extra = {k: v for k, v in params.items() if k not in ("TZID", "VALUE")}
        start = ical.value_of(override, "DTSTART")
        new_rid = mapper(rid)
        override.pop("RECURRENCE-ID")
        override.add("RECURRENCE-ID", new_rid, parameters=extra or None)
        if start is not None and ical.same_moment(timeutil.same_kind(rid, start), rid):
            end = ical.value_of(override, "DTEND")
            ical.set_time(override, "DTSTART", new_rid)
            if end is not None:
                ical.set_time(override, "DTEND", timeutil.shift_wall(end, delta, new))


def set_organizer_if_needed(comp: Component, organizer: str | None, addresses: list[str]) -> None:
    """Meetings need an ORGANIZER (Nextcloud schedules invitations from it)."""
    if "ATTENDEE" not in comp or ("ORGANIZER" in comp and not organizer):
        return
    address = organizer or next(iter(addresses), None)
    if address:
        ical.set_organizer(comp, address)
