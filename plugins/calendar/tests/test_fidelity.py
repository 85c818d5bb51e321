"""Read-modify-write fidelity on real-world objects (tests/corpus: exports in the styles of Apple
Calendar, Google, Outlook/Exchange, Thunderbird, Nextcloud web and a sync tool with vendor components).

Each object is stored by "another client", then changed one field at a time through the tools
(every field of every object over the two backends together).
After every step the stored object is fetched and compared with the previous state as parsed
components (never bytes): only the field asked for (and the change stamps DTSTAMP, LAST-MODIFIED,
SEQUENCE) may differ; VALARMs, attendee parameters, X-properties, VTIMEZONEs, overridden occurrences
and unknown components must come back unchanged. In process, against Radicale and Xandikos."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import pytest
from calendar_testkit import PLUGINS, calendars, dav_client, ok, put_raw
from icalendar import Calendar, Component

pytestmark = pytest.mark.anyio

CORPUS = Path(__file__).parent / "corpus"
VOLATILE = {"DTSTAMP", "LAST-MODIFIED", "SEQUENCE"}
INHERITED = {"summary": "SUMMARY", "location": "LOCATION", "description": "DESCRIPTION", "categories": "CATEGORIES",
             "status": "STATUS", "priority": "PRIORITY", "url": "URL", "classification": "CLASS", "color": "COLOR",
             "transparency": "TRANSP"}
Key = tuple[str, str, int]


def entries(comp: Component) -> dict[str, list[Any]]:
    """Properties (value as re-serialized by the parser, parameters) and subcomponents, order-free."""
    found: dict[str, list[Any]] = defaultdict(list)
    for name, value in comp.items():
        for item in value if isinstance(value, list) else [value]:
            params = tuple(sorted((k, str(v)) for k, v in (getattr(item, "params", None) or {}).items()))
            found[name].append((item.to_ical() if hasattr(item, "to_ical") else str(item), params))
    for sub in comp.subcomponents:
        found[f"<{sub.name}>"].append(repr(sorted(entries(sub).items())))
    return {name: sorted(values, key=repr) for name, values in found.items()}


def canon(data: bytes) -> dict[Key, dict[str, list[Any]]]:
    """Top-level components keyed by (name, UID or TZID, position among equals)."""
    seen: dict[tuple[str, str], int] = defaultdict(int)
    out = {}
    for comp in Calendar.from_ical(data).subcomponents:
        ident = (comp.name, str(comp.get("UID") or comp.get("TZID") or ""))
        out[(*ident, seen[ident])] = entries(comp)
        seen[ident] += 1
    return out


def changes(before: dict, after: dict) -> set[tuple[Key, str]]:
    found = set()
    for key in before.keys() | after.keys():
        b, a = before.get(key, {}), after.get(key, {})
        found |= {(key, name) for name in b.keys() | a.keys() if b.get(name) != a.get(name)}
    return found


def master_key(state: dict, kind: str) -> Key:
    return next(k for k, v in state.items() if k[0] == kind and "RECURRENCE-ID" not in v)


def inheriting(state: dict, kind: str, prop: str) -> list[Key]:
    """The master and the overrides that still have the master's value of ``prop``."""
    main = master_key(state, kind)
    return [main] + [k for k, v in state.items() if k[0] == kind and k != main and v.get(prop) == state[main].get(prop)]


EVENT_STEPS: list[tuple[str, Any]] = [
    ("summary", lambda e: e["summary"] + " (edited)"),
    ("location", lambda e: "Room 7, second floor"),
    ("description", lambda e: "New notes\nwith two lines; and a comma, too"),
    ("categories", lambda e: [*e["categories"], "Edited"]),
    ("status", lambda e: "TENTATIVE"),
    ("priority", lambda e: 3),
    ("url", lambda e: "https://example.org/new?a=1&b=2"),
    ("classification", lambda e: "CONFIDENTIAL"),
    ("color", lambda e: "tomato"),
    ("transparency", lambda e: "OPAQUE" if e["transparency"] == "TRANSPARENT" else "TRANSPARENT"),
    ("alarms", lambda e: [*e["alarms"], {"minutes_before": 42}]),
    ("attendees", lambda e: [*e["attendees"], "new.person@example.com"]),
]
TODO_STEPS: list[tuple[str, Any]] = [
    ("summary", lambda t: t["summary"] + " (edited)"),
    ("description", lambda t: "Other folder now"),
    ("priority", lambda t: 2),
    ("percent_complete", lambda t: 75),
    ("categories", lambda t: [*t["categories"], "Urgent"]),
    ("alarms", lambda t: [*t["alarms"], {"minutes_before": 60, "related": "end"}]),
    ("due", lambda t: "2030-04-02T18:00"),
    ("parent_uid", lambda t: ""),
]
ICAL_NAME = {**INHERITED, "alarms": "<VALARM>", "attendees": "ATTENDEE", "percent_complete": "PERCENT-COMPLETE",
             "due": "DUE", "parent_uid": "RELATED-TO"}


async def walk_corpus_file(host: Any, dav: Any, path: Path, cals: dict[str, dict], parity: int) -> None:
    data = await anyio.Path(path).read_bytes()
    kind = "VTODO" if b"BEGIN:VTODO" in data else "VEVENT"
    target = cals["tasks" if kind == "VTODO" else "personal"]
    href = f"{target['href']}{path.stem} (from another client).ics"  # not the UID, needs encoding
    assert (await put_raw(dav, href, data)).status_code == 201, path.name

    async def stored() -> dict:
        response = await dav.get(quote(href))
        assert response.status_code == 200
        return canon(response.content)

    state = await stored()
    prefix = "nc_calendar_" + ("update_todo" if kind == "VTODO" else "update_event")
    getter = "nc_calendar_get_event" if kind == "VEVENT" else "nc_calendar_list_todos"
    if kind == "VEVENT":
        current = ok(await host.call(getter, {"href": href}))
    else:
        current = next(t for t in ok(await host.call(getter, {"calendar": "tasks", "include_completed": True}))["todos"]
                       if t["href"] == href)
    steps = TODO_STEPS if kind == "VTODO" else EVENT_STEPS
    for field, make in [step for index, step in enumerate(steps) if (index + parity) % 2 == 0]:
        value = make(current)
        result = ok(await host.call(prefix, {"href": href, "etag": current["etag"], field: value}))
        after = await stored()
        prop = ICAL_NAME[field]
        touched = inheriting(state, kind, prop) if field in INHERITED else [master_key(state, kind)]
        allowed = {(k, p) for k in touched for p in {prop, *VOLATILE}}
        if field == "attendees":
            allowed.add((master_key(state, kind), "ORGANIZER"))  # a meeting gets its organizer
        if field == "percent_complete":
            allowed.add((master_key(state, kind), "STATUS"))
        unexpected = changes(state, after) - allowed
        assert not unexpected, f"{path.name}: changing {field} also changed {sorted(unexpected)}"
        assert (master_key(state, kind), prop) in changes(state, after), f"{path.name}: {field} did not change"
        if field in ("alarms", "attendees"):
            main = master_key(state, kind)
            kept = state[main].get(prop, [])
            assert all(item in after[main][prop] for item in kept), f"{path.name}: existing {prop} were altered"
        if field not in ("alarms", "attendees", "due", "parent_uid"):
            assert result[{"classification": "class"}.get(field, field)] == value, (path.name, field)
        state, current = after, result  # the update answers with the new etag and fields

    if kind == "VEVENT":
        await move_and_override(host, path, href, stored, state)


async def move_and_override(host: Any, path: Path, href: str, stored: Any, state: dict) -> None:
    """Move the series an hour (a day for all-day events) in its own zone; then change one occurrence.
    Exceptions follow the series; nothing else changes."""
    event = ok(await host.call("nc_calendar_get_event", {"href": href}))
    start = dt.date.fromisoformat(event["start"]["value"]) if event["all_day"] else \
        dt.datetime.fromisoformat(event["start"]["value"].replace("Z", "+00:00"))
    new_start = (start + dt.timedelta(days=1)).isoformat() if event["all_day"] else \
        (start + dt.timedelta(hours=1)).replace(tzinfo=None).isoformat()
    moved = ok(await host.call("nc_calendar_update_event", {"href": href, "etag": event["etag"], "start": new_start}))
    assert moved["start"]["timezone"] == event["start"]["timezone"] and moved["start"]["kind"] == event["start"]["kind"]
    after = await stored()
    time_props = {"DTSTART", "DTEND", "EXDATE", "RDATE", "RECURRENCE-ID", "DURATION", "RRULE", *VOLATILE}
    unexpected = {(k, p) for k, p in changes(state, after) if p not in time_props or k[0] != "VEVENT"}
    assert not unexpected, f"{path.name}: moving the series changed {sorted(unexpected)}"
    details = ok(await host.call("nc_calendar_get_event", {"href": href}))
    assert len(details["overrides"]) == len(event["overrides"])
    state = after
    if not details["is_recurring"]:
        return
    window_end = dt.date.fromisoformat(details["start"]["value"][:10]) + dt.timedelta(days=800)
    occurrences = ok(await host.call("nc_calendar_list_events", {
        "start": details["start"]["value"][:10], "end": window_end.isoformat(), "text": details["summary"][:6],
        "limit": 50}))["events"]
    overridden = {x["recurrence_id"]["value"] for x in details["overrides"]}
    plain = [o for o in occurrences if o["href"] == href and o["summary"] == details["summary"]
             and o["recurrence_id"] and o["recurrence_id"]["value"] not in overridden]
    assert len(plain) >= 2, path.name
    pick = plain[1]
    changed = ok(await host.call("nc_calendar_update_event", {"href": href, "occurrence": pick["recurrence_id"]["value"],
                                                               "summary": "Just this once"}))
    assert changed["recurrence_id"] == pick["recurrence_id"] and changed["start"] == pick["start"]
    after = await stored()
    new_keys = after.keys() - state.keys()
    assert len(new_keys) == 1 and next(iter(new_keys))[0] == "VEVENT", path.name
    assert not {(k, p) for k, p in changes(state, after) if k not in new_keys and p not in VOLATILE}, path.name
    new = after[next(iter(new_keys))]
    main = master_key(state, "VEVENT")
    for name in ("<VALARM>", "ATTENDEE", "ORGANIZER", "CATEGORIES", "LOCATION"):
        assert new.get(name) == state[main].get(name), (path.name, name)  # the override copies the series


async def test_corpus_round_trips_field_by_field(make_host, sandbox, sandbox_user) -> None:
    files = sorted(CORPUS.glob("*.ics"))
    assert len(files) >= 6
    async with make_host(plugins=PLUGINS) as host, dav_client(sandbox, sandbox_user) as dav:
        cals = await calendars(host)
        # Each backend changes every other field of each object, the other backend the rest (and the
        # halves alternate between objects): together every field of every object, in half the time.
        backend = 0 if sandbox.dav_backend == "radicale" else 1
        async with anyio.create_task_group() as tg:
            for index, path in enumerate(files):
                tg.start_soon(walk_corpus_file, host, dav, path, cals, (index + backend) % 2)


async def test_reading_the_corpus(make_host, sandbox, sandbox_user) -> None:
    """What the tools report for foreign objects: zones as written, attendee details, alarms."""
    async with make_host(plugins=PLUGINS) as host, dav_client(sandbox, sandbox_user) as dav:
        personal = (await calendars(host))["personal"]["href"]
        for name in ("outlook-exchange", "apple-recurring-overrides", "floating-vendor-components"):
            await put_raw(dav, f"{personal}{name}.ics", (CORPUS / f"{name}.ics").read_bytes())
        outlook = ok(await host.call("nc_calendar_get_event", {"href": f"{personal}outlook-exchange.ics"}))
        assert outlook["start"] == {"value": "2030-03-29T14:30:00+01:00", "kind": "zoned", "timezone": "W. Europe Standard Time"}
        assert [(a["email"], a["cutype"], a["role"]) for a in outlook["attendees"]] == [
            ("chris@contoso.example", "INDIVIDUAL", "REQ-PARTICIPANT"), ("rhein@contoso.example", "RESOURCE", "NON-PARTICIPANT")]
        apple = ok(await host.call("nc_calendar_get_event", {"href": f"{personal}apple-recurring-overrides.ics"}))
        assert apple["recurrence_rule"].startswith("FREQ=WEEKLY")
        assert [x["value"] for x in apple["exdates"]] == ["2030-04-01T09:30:00+02:00"]
        assert [o["summary"] for o in apple["overrides"]] == ["Planning (long session)", "Planning"]
        assert apple["alarms"][0]["action"] == "AUDIO" and apple["organizer"]["name"] == "Anna Apple"
        yoga = ok(await host.call("nc_calendar_list_events", {"start": "2030-03-12", "end": "2030-03-13",
                                                                "timezone": "Asia/Tokyo"}))
        assert [(e["summary"], e["start"]) for e in yoga["events"]] == [
            ("Morning yoga", {"value": "2030-03-12T07:00:00", "kind": "floating", "timezone": None}),
            ("Morning yoga", {"value": "2030-03-13T07:00:00", "kind": "floating", "timezone": None})]
        assert yoga["events"][0]["end"]["value"] == "2030-03-12T07:45:00"  # from DURATION
