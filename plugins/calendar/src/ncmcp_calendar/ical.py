"""iCalendar in and out, through the ``icalendar`` library only (never by string handling).

Objects are patched in place: a tool parses the stored object, changes the properties it was asked
to change and writes the whole object back, so everything else — VALARMs, attendee parameters,
X-properties, VTIMEZONEs, overridden occurrences, unknown components — survives untouched.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from dateutil.rrule import rrulestr
from icalendar import Alarm, Calendar, Component, Event, Todo, vCalAddress, vDuration, vRecur, vText
from ncmcp import InvalidArgument, UpstreamError

from ncmcp_calendar import timeutil
from ncmcp_calendar.timeutil import Temporal

PRODID = "-//ncmcp//Nextcloud MCP calendar//EN"
KINDS = {"VEVENT": Event, "VTODO": Todo}


# --- parsing and writing -------------------------------------------------------------------------------

def load(data: bytes | str) -> Calendar:
    try:
        cal = Calendar.from_ical(data)
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise UpstreamError(f"The server returned calendar data that cannot be parsed ({type(exc).__name__})") from exc
    if isinstance(cal, list):  # several VCALENDARs in one resource: not valid CalDAV, keep the first
        cal = cal[0]
    return cal


TIME_PROPS = ("DTSTART", "DTEND", "DUE", "RECURRENCE-ID", "EXDATE", "RDATE")


def dump(cal: Calendar) -> bytes:
    """Serialize; every TZID in use gets its VTIMEZONE (existing ones, Outlook's or Apple's, are kept
    exactly as they are)."""
    missing = cal.get_missing_tzids()
    if missing:
        first, last = _date_span(cal)
        cal.add_missing_timezones(first_date=first, last_date=last)
        for tz in cal.timezones:
            if str(tz.get("TZID")) in missing:
                _one_rdate_per_line(tz)
    return cal.to_ical()


def _date_span(cal: Calendar) -> tuple[dt.date, dt.date]:
    """The years the object's times fall in, widened a little: the generated VTIMEZONE lists each
    transition, so it covers this span rather than 1970-2037 (a far smaller object)."""
    years = []
    for comp in cal.walk():
        for name in TIME_PROPS:
            props = comp.get(name)
            for prop in props if isinstance(props, list) else [props] if props is not None else []:
                values = [d.dt for d in getattr(prop, "dts", [])] or [getattr(prop, "dt", None)]
                years += [v.year for v in values if isinstance(v, dt.date)]
    if not years:
        return dt.date(1970, 1, 1), dt.date(2038, 1, 1)
    return dt.date(max(1970, min(years) - 1), 1, 1), dt.date(max(years) + 11, 1, 1)


def _one_rdate_per_line(tz: Component) -> None:
    """vobject (and so Radicale) reads only the first value of a multi-valued RDATE in a VTIMEZONE and
    then gets every later offset wrong; one RDATE property per transition is read correctly by all."""
    for part in tz.subcomponents:
        props = part.get("RDATE")
        if props is None:
            continue
        values = [d.dt for prop in (props if isinstance(props, list) else [props]) for d in prop.dts]
        part.pop("RDATE")
        for value in values:
            part.add("RDATE", value)


def new_calendar() -> Calendar:
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    return cal


def new_uid() -> str:
    return str(uuid.uuid4())


def components(cal: Calendar, kind: str) -> list[Component]:
    return [c for c in cal.subcomponents if c.name == kind]


def master(cal: Calendar, kind: str) -> Component | None:
    """The series (or single) component: the one without RECURRENCE-ID."""
    found = components(cal, kind)
    return next((c for c in found if "RECURRENCE-ID" not in c), found[0] if found else None)


def primary_kind(cal: Calendar) -> str | None:
    for c in cal.subcomponents:
        if c.name in KINDS:
            return c.name
    return None


def overrides(cal: Calendar, kind: str) -> list[Component]:
    return [c for c in components(cal, kind) if "RECURRENCE-ID" in c]


def is_recurring(comp: Component) -> bool:
    return "RRULE" in comp or "RDATE" in comp


# --- reading -------------------------------------------------------------------------------------------

def value_of(comp: Component, name: str) -> Temporal | None:
    prop = comp.get(name)
    if prop is None:
        return None
    value = getattr(prop, "dt", None)
    return value if isinstance(value, (dt.date, dt.datetime)) else None


def tzid_of(comp: Component, name: str) -> str | None:
    prop = comp.get(name)
    params = getattr(prop, "params", None) or {}
    return params.get("TZID")


def time_out(comp: Component, name: str, tzid: str | None = None) -> dict[str, Any] | None:
    value = value_of(comp, name)
    if value is None:
        return None
    return timeutil.describe(value, tzid_of(comp, name) or tzid)


def end_of(comp: Component) -> Temporal | None:
    """DTEND (DUE for tasks), else DTSTART + DURATION, else the RFC 5545 default (one day for a date)."""
    for name in ("DTEND", "DUE"):
        value = value_of(comp, name)
        if value is not None:
            return value
    start = value_of(comp, "DTSTART")
    if start is None:
        return None
    duration = comp.get("DURATION")
    if duration is not None and isinstance(getattr(duration, "dt", None), dt.timedelta):
        return start + duration.dt
    if comp.name == "VEVENT" and not isinstance(start, dt.datetime):
        return start + dt.timedelta(days=1)
    return start if comp.name == "VEVENT" else None


def text(comp: Component, name: str) -> str | None:
    value = comp.get(name)
    if value is None:
        return None
    if isinstance(value, list):
        value = value[0]
    return str(value)


def categories(comp: Component) -> list[str]:
    found: list[str] = []
    props = comp.get("CATEGORIES")
    for prop in props if isinstance(props, list) else [props] if props is not None else []:
        for cat in getattr(prop, "cats", [prop]):
            if str(cat) and str(cat) not in found:
                found.append(str(cat))
    return found


def _address(value: Any) -> str:
    return str(value).removeprefix("mailto:").removeprefix("MAILTO:")


def attendees(comp: Component) -> list[dict[str, Any]]:
    props = comp.get("ATTENDEE")
    out = []
    for prop in props if isinstance(props, list) else [props] if props is not None else []:
        params = getattr(prop, "params", {})
        out.append({"email": _address(prop), "name": params.get("CN"), "role": params.get("ROLE", "REQ-PARTICIPANT"),
                    "partstat": params.get("PARTSTAT", "NEEDS-ACTION"),
                    "rsvp": str(params.get("RSVP", "FALSE")).upper() == "TRUE", "cutype": params.get("CUTYPE", "INDIVIDUAL")})
    return out


def organizer(comp: Component) -> dict[str, Any] | None:
    prop = comp.get("ORGANIZER")
    if prop is None:
        return None
    return {"email": _address(prop), "name": getattr(prop, "params", {}).get("CN")}


def alarms(comp: Component) -> list[dict[str, Any]]:
    out = []
    for alarm in comp.subcomponents:
        if alarm.name != "VALARM":
            continue
        trigger = alarm.get("TRIGGER")
        value = getattr(trigger, "dt", None)
        params = getattr(trigger, "params", {}) or {}
        item: dict[str, Any] = {"action": str(alarm.get("ACTION", "DISPLAY")), "description": text(alarm, "DESCRIPTION")}
        if isinstance(value, dt.timedelta):
            item["minutes_before"] = int(-value.total_seconds() // 60)
            item["related"] = "end" if str(params.get("RELATED", "START")).upper() == "END" else "start"
            item["trigger"] = trigger.to_ical().decode()
        elif isinstance(value, dt.datetime):
            item["at"] = timeutil.describe(value)["value"]
            item["trigger"] = item["at"]
        out.append(item)
    return out


def rrule_text(comp: Component) -> str | None:
    rule = comp.get("RRULE")
    if rule is None:
        return None
    rules = rule if isinstance(rule, list) else [rule]
    return ";".join(r.to_ical().decode() for r in rules[:1])


def date_list(comp: Component, name: str) -> list[dict[str, Any]]:
    props = comp.get(name)
    out = []
    for prop in props if isinstance(props, list) else [props] if props is not None else []:
        tzid = (getattr(prop, "params", {}) or {}).get("TZID")
        for item in getattr(prop, "dts", []):
            if isinstance(item.dt, (dt.date, dt.datetime)):
                out.append(timeutil.describe(item.dt, tzid))
    return out


def related_to(comp: Component) -> list[dict[str, Any]]:
    props = comp.get("RELATED-TO")
    out = []
    for prop in props if isinstance(props, list) else [props] if props is not None else []:
        out.append({"uid": str(prop), "reltype": (getattr(prop, "params", {}) or {}).get("RELTYPE", "PARENT")})
    return out


def int_of(comp: Component, name: str) -> int | None:
    value = comp.get(name)
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def common_dict(comp: Component) -> dict[str, Any]:
    return {
        "uid": text(comp, "UID") or "",
        "summary": text(comp, "SUMMARY") or "",
        "description": text(comp, "DESCRIPTION"),
        "location": text(comp, "LOCATION"),
        "status": text(comp, "STATUS"),
        "priority": int_of(comp, "PRIORITY"),
        "class": text(comp, "CLASS"),
        "url": text(comp, "URL"),
        "color": text(comp, "COLOR"),
        "categories": categories(comp),
        "alarms": alarms(comp),
        "sequence": int_of(comp, "SEQUENCE") or 0,
        "last_modified": time_out(comp, "LAST-MODIFIED"),
    }


def event_dict(comp: Component, series: Component | None = None) -> dict[str, Any]:
    """An event (or one occurrence of it) for output. ``series`` is the master when ``comp`` is an
    expanded occurrence, so the recurrence and the original TZID are reported."""
    base = series if series is not None else comp
    start = value_of(comp, "DTSTART")
    end = end_of(comp)
    tzid = tzid_of(comp, "DTSTART") or tzid_of(base, "DTSTART")
    rid = value_of(comp, "RECURRENCE-ID")
    out = {
        **common_dict(comp),
        "start": timeutil.describe(start, tzid) if start is not None else None,
        "end": timeutil.describe(end, tzid_of(comp, "DTEND") or tzid) if end is not None else None,
        "all_day": start is not None and not isinstance(start, dt.datetime),
        "transparency": text(comp, "TRANSP") or "OPAQUE",
        "attendees": attendees(comp),
        "organizer": organizer(comp),
        "recurrence_rule": rrule_text(base),
        "is_recurring": is_recurring(base),
        "recurrence_id": timeutil.describe(rid, tzid_of(comp, "RECURRENCE-ID") or tzid) if rid is not None else None,
    }
    return out


def todo_dict(comp: Component) -> dict[str, Any]:
    related = related_to(comp)
    return {
        **common_dict(comp),
        "start": time_out(comp, "DTSTART"),
        "due": time_out(comp, "DUE"),
        "completed": time_out(comp, "COMPLETED"),
        "percent_complete": int_of(comp, "PERCENT-COMPLETE") or (100 if text(comp, "STATUS") == "COMPLETED" else 0),
        "related_to": related,
        "parent_uid": next((r["uid"] for r in related if str(r["reltype"]).upper() == "PARENT"), None),
        "recurrence_rule": rrule_text(comp),
    }


# --- writing -------------------------------------------------------------------------------------------

def set_text(comp: Component, name: str, value: str | None) -> None:
    """Set a text property; an empty string removes it. A value icalendar refuses (e.g. a URL with a
    line break) is the caller's mistake, reported as such rather than as a crash."""
    comp.pop(name, None)
    if value:
        try:
            comp.add(name, value)
        except ValueError as exc:
            raise InvalidArgument(f"{name.lower()}: {exc}") from exc


def set_time(comp: Component, name: str, value: Temporal | None) -> None:
    comp.pop(name, None)
    if value is not None:
        comp.add(name, value)


def set_int(comp: Component, name: str, value: int | None) -> None:
    comp.pop(name, None)
    if value is not None:
        comp.add(name, value)


def set_categories(comp: Component, values: Sequence[str]) -> None:
    comp.pop("CATEGORIES", None)
    cleaned = [v.strip() for v in values if v.strip()]
    if cleaned:
        comp.add("CATEGORIES", cleaned)


def set_attendees(comp: Component, wanted: Sequence[Mapping[str, Any]]) -> None:
    """Replace the attendee list, keeping every parameter of attendees that stay (PARTSTAT, CN,
    X-NUM-GUESTS, ...) and changing only the parameters the caller gave."""
    props = comp.get("ATTENDEE")
    existing = {_address(p).casefold(): p for p in (props if isinstance(props, list) else [props] if props is not None else [])}
    comp.pop("ATTENDEE", None)
    for item in wanted:
        email = str(item["email"]).strip()
        prop = existing.get(email.casefold())
        if prop is None:
            prop = vCalAddress(f"mailto:{email}")
            prop.params["CUTYPE"] = "INDIVIDUAL"
            prop.params["ROLE"] = "REQ-PARTICIPANT"
            prop.params["PARTSTAT"] = "NEEDS-ACTION"
            prop.params["RSVP"] = "TRUE"
        # Only parameters whose (effective) value changes are written, so passing back an attendee
        # as it was read leaves the stored property exactly as it was.
        for key, param, default in (("name", "CN", None), ("role", "ROLE", "REQ-PARTICIPANT"),
                                    ("partstat", "PARTSTAT", "NEEDS-ACTION"), ("cutype", "CUTYPE", "INDIVIDUAL"),
                                    ("rsvp", "RSVP", "FALSE")):
            value = item.get(key)
            if value is None or value == "":
                continue
            value = ("TRUE" if value else "FALSE") if key == "rsvp" else str(value)
            if str(prop.params.get(param, default) or "").upper() != value.upper() or \
                    (key == "name" and prop.params.get(param) != value):
                prop.params[param] = value
        comp.add("ATTENDEE", prop, encode=False)


def set_organizer(comp: Component, address: str, name: str | None = None) -> None:
    prop = vCalAddress(address if ":" in address else f"mailto:{address}")
    if name:
        prop.params["CN"] = name
    comp.pop("ORGANIZER", None)
    comp.add("ORGANIZER", prop, encode=False)


AlarmKey = tuple[str, Any, str]


def alarm_key(item: Mapping[str, Any], default_related: str = "start") -> AlarmKey:
    """What identifies a wanted reminder: its action and when it fires (an offset from the start or
    end, or an absolute time). ``trigger`` (as output by the tools) is accepted too."""
    action = str(item.get("action") or "DISPLAY").upper()
    related = str(item.get("related") or default_related).lower()
    if item.get("minutes_before") is not None:
        return action, dt.timedelta(minutes=-int(item["minutes_before"])), related
    raw = item.get("at") or item.get("trigger")
    if not raw:
        raise InvalidArgument("Each alarm needs minutes_before (or an absolute `at` time)")
    raw = str(raw).strip()
    if raw.lstrip("+-").startswith("P"):
        try:
            return action, vDuration.from_ical(raw), related
        except ValueError as exc:
            raise InvalidArgument(f"alarm trigger {raw!r} is not an ISO 8601 duration like -PT15M") from exc
    moment = timeutil.parse(raw, None, field="alarm at")
    if not isinstance(moment, dt.datetime) or moment.tzinfo is None:
        raise InvalidArgument("alarm `at` must be an instant with its offset, e.g. 2025-06-10T08:45:00Z")
    return action, moment.astimezone(timeutil.UTC), "start"


def _existing_alarm_key(alarm: Component) -> AlarmKey | None:
    trigger = alarm.get("TRIGGER")
    value = getattr(trigger, "dt", None)
    action = str(alarm.get("ACTION", "DISPLAY")).upper()
    if isinstance(value, dt.timedelta):
        params = getattr(trigger, "params", {}) or {}
        return action, value, "end" if str(params.get("RELATED", "START")).upper() == "END" else "start"
    if isinstance(value, dt.datetime):
        return action, timeutil.as_instant(value, timeutil.UTC).astimezone(timeutil.UTC), "start"
    return None


def set_alarms(comp: Component, wanted: Sequence[Mapping[str, Any]], *, default_related: str = "start") -> None:
    """Replace the reminders. An existing VALARM equal to a wanted one (same action and firing time)
    is kept exactly as it is, with its own X-properties and acknowledgement state."""
    kept: dict[AlarmKey, Component] = {}
    for alarm in comp.subcomponents:
        if alarm.name == "VALARM":
            key = _existing_alarm_key(alarm)
            if key is not None:
                kept.setdefault(key, alarm)
    new_alarms: list[Component] = []
    for item in wanted:
        key = alarm_key(item, default_related)
        if key in kept:
            new_alarms.append(kept.pop(key))
            continue
        action, when, related = key
        alarm = Alarm()
        alarm.add("ACTION", action)
        alarm.add("TRIGGER", when, parameters={"RELATED": "END"} if related == "end" else None)
        alarm.add("DESCRIPTION", item.get("description") or text(comp, "SUMMARY") or "Reminder")
        if action == "EMAIL":
            alarm.add("SUMMARY", text(comp, "SUMMARY") or "Reminder")
        new_alarms.append(alarm)
    others = [c for c in comp.subcomponents if c.name != "VALARM"]
    comp.subcomponents[:] = others + new_alarms


def parse_rrule(rule: str, start: Temporal) -> vRecur:
    """Validate an RRULE against its DTSTART and make UNTIL match DTSTART's kind (RFC 5545 §3.3.10)."""
    body = rule.strip().removeprefix("RRULE:").strip()
    try:
        value = fix_until(vRecur(vRecur.from_ical(body)), start)
        anchor = start if isinstance(start, dt.datetime) else dt.datetime.combine(start, dt.time())
        rrulestr(value.to_ical().decode(), dtstart=anchor)
    except (ValueError, TypeError) as exc:
        raise InvalidArgument(f"recurrence_rule {rule!r} is not a valid RRULE (e.g. 'FREQ=WEEKLY;BYDAY=MO,WE' "
                              f"or 'FREQ=DAILY;COUNT=5'): {exc}") from exc
    return value


def fix_until(recur: vRecur, start: Temporal) -> vRecur:
    until = recur.get("UNTIL")
    if not until:
        return recur
    value = until[0]
    if not isinstance(start, dt.datetime):
        recur["UNTIL"] = [value.date() if isinstance(value, dt.datetime) else value]
    elif start.tzinfo is None:
        if isinstance(value, dt.datetime):
            recur["UNTIL"] = [value.replace(tzinfo=None) if value.tzinfo is None else value.astimezone(start.tzinfo or
                              timeutil.UTC).replace(tzinfo=None)]
        else:
            recur["UNTIL"] = [dt.datetime.combine(value, dt.time(23, 59, 59))]
    else:
        if not isinstance(value, dt.datetime):
            # A date UNTIL on a timed series means "through that day" in the series' zone.
            value = dt.datetime.combine(value, dt.time(23, 59, 59), tzinfo=start.tzinfo)
        elif value.tzinfo is None:
            value = value.replace(tzinfo=start.tzinfo)
        recur["UNTIL"] = [value.astimezone(timeutil.UTC)]
    return recur


def set_rrule(comp: Component, rule: str | None) -> None:
    start = value_of(comp, "DTSTART") or value_of(comp, "DUE")
    comp.pop("RRULE", None)
    if rule:
        if start is None:
            raise InvalidArgument("A recurring item needs a start")
        comp.add("RRULE", parse_rrule(rule, start))


def renormalize_recurrence(comp: Component) -> None:
    """After DTSTART changed kind (all-day ↔ timed, zone), make UNTIL match again."""
    start = value_of(comp, "DTSTART")
    rule = comp.get("RRULE")
    if start is None or rule is None:
        return
    rules = rule if isinstance(rule, list) else [rule]
    comp.pop("RRULE")
    for r in rules:
        comp.add("RRULE", fix_until(vRecur(r), start))


def map_dates(comp: Component, name: str, mapper: Any) -> None:
    """Rewrite EXDATE/RDATE values through ``mapper`` (keeping one property per value list)."""
    props = comp.get(name)
    if props is None:
        return
    values = []
    for prop in props if isinstance(props, list) else [props]:
        values += [mapper(item.dt) for item in getattr(prop, "dts", []) if isinstance(item.dt, (dt.date, dt.datetime))]
    comp.pop(name)
    for value in values:
        comp.add(name, value)


def add_exdate(comp: Component, value: Temporal) -> None:
    comp.add("EXDATE", value)


def touch(comp: Component, *, significant: bool) -> None:
    """Stamp a change; a significant one (time, recurrence, status) bumps SEQUENCE as RFC 5546 asks,
    so attendees' clients take the new version."""
    now = timeutil.now().replace(microsecond=0)
    set_time(comp, "DTSTAMP", now)
    set_time(comp, "LAST-MODIFIED", now)
    if significant:
        set_int(comp, "SEQUENCE", (int_of(comp, "SEQUENCE") or 0) + 1)


def copy_component(comp: Component) -> Component:
    """A deep copy through the serializer (keeps parameters and subcomponents)."""
    return Component.from_ical(comp.to_ical())


def occurrence_template(series: Component, rid: Temporal, start: Temporal, end: Temporal | None) -> Component:
    """A new override of ``series`` for the occurrence originally at ``rid``: a copy of the series
    without its recurrence, pinned to that occurrence."""
    comp = copy_component(series)
    for name in ("RRULE", "RDATE", "EXDATE", "RECURRENCE-ID", "DURATION", "DTEND"):
        comp.pop(name, None)
    set_time(comp, "DTSTART", start)
    if end is not None:
        set_time(comp, "DTEND", end)
    comp.add("RECURRENCE-ID", rid)
    return comp


def find_override(cal: Calendar, kind: str, rid: Temporal) -> Component | None:
    for comp in overrides(cal, kind):
        if same_moment(value_of(comp, "RECURRENCE-ID"), rid):
            return comp
    return None


def same_moment(a: Temporal | None, b: Temporal | None) -> bool:
    if a is None or b is None:
        return False
    if isinstance(a, dt.datetime) != isinstance(b, dt.datetime):
        return False
    if isinstance(a, dt.datetime) and isinstance(b, dt.datetime):
        if (a.tzinfo is None) != (b.tzinfo is None):
            return a.replace(tzinfo=None) == b.replace(tzinfo=None)
    return a == b


def remove_components(cal: Calendar, doomed: Iterable[Component]) -> None:
    ids = {id(c) for c in doomed}
    cal.subcomponents[:] = [c for c in cal.subcomponents if id(c) not in ids]


def vtext(value: str) -> vText:
    return vText(value)
