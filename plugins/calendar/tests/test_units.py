"""Fast cases without a DAV server: the contract, time parsing, iCalendar patching, recurrence
expansion, free-time arithmetic, and the CalDAV layer's reactions to server answers the sandbox
cannot produce (a REPORT without ETags, a 403 for a task, a 412 that is not a conflict)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import ncmcp_calendar.plugin as calendar_plugin
import pytest
import structlog
from icalendar import Calendar
from ncmcp import Conflict, InvalidArgument, UpstreamError
from ncmcp.nextcloud.client import NextcloudPool
from ncmcp.testing import assert_plugin_contract
from ncmcp_calendar import availability, caldav, ical, patch, timeutil, tools_events, tools_todos
from ncmcp_calendar.caldav import CalendarInfo, CalObject
from ncmcp_calendar.expand import expand

BERLIN = ZoneInfo("Europe/Berlin")


def test_contract() -> None:
    registry = assert_plugin_contract(calendar_plugin)
    tools = {t.spec.name: t.spec for t in registry.loaded[0].tools}
    assert len(tools) == 17
    for spec in tools.values():
        assert spec.title and spec.description and spec.output_schema and spec.hints is not None
        assert spec.input_schema.get("additionalProperties") is False
    assert tools["nc_calendar_list_events"].effective_hints.read_only
    assert tools["nc_calendar_delete_event"].effective_hints.destructive
    assert registry.loaded[0].manifest.requires is None


# --- time --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "zone", "expected"), [
    ("2030-03-30", None, dt.date(2030, 3, 30)),
    ("2030-03-30T09:00", None, dt.datetime(2030, 3, 30, 9)),
    ("2030-03-30T09:00", "Europe/Berlin", dt.datetime(2030, 3, 30, 9, tzinfo=BERLIN)),
    ("2030-03-30T09:00Z", None, dt.datetime(2030, 3, 30, 9, tzinfo=dt.UTC)),
    ("2030-03-30T09:00+02:00", None, dt.datetime(2030, 3, 30, 7, tzinfo=dt.UTC)),
    ("2030-03-30T09:00+02:00", "Europe/Berlin", dt.datetime(2030, 3, 30, 8, tzinfo=BERLIN)),
    ("2030-03-30T09:00[America/New_York]", "Europe/Berlin", dt.datetime(2030, 3, 30, 9, tzinfo=ZoneInfo("America/New_York"))),
])
def test_parse_times(text: str, zone: str | None, expected: Any) -> None:
    value = timeutil.parse(text, zone)
    assert value == expected and type(value) is type(expected)
    if isinstance(expected, dt.datetime):
        assert (value.tzinfo is None) == (expected.tzinfo is None)
        if expected.tzinfo is not None:
            assert value.utcoffset() == expected.utcoffset()


def test_describe_says_which_zone() -> None:
    assert timeutil.describe(dt.date(2030, 1, 2)) == {"value": "2030-01-02", "kind": "date", "timezone": None}
    assert timeutil.describe(dt.datetime(2030, 1, 2, 8)) == {"value": "2030-01-02T08:00:00", "kind": "floating", "timezone": None}
    assert timeutil.describe(dt.datetime(2030, 1, 2, 8, tzinfo=ZoneInfo("UTC")))["kind"] == "utc"
    assert timeutil.describe(dt.datetime(2030, 7, 2, 8, tzinfo=BERLIN)) == {
        "value": "2030-07-02T08:00:00+02:00", "kind": "zoned", "timezone": "Europe/Berlin"}
    with pytest.raises(InvalidArgument, match="Unknown time zone"):
        timeutil.zone("Mars/Olympus")


# --- iCalendar patching ------------------------------------------------------------------------------

def test_rrule_until_follows_dtstart_kind() -> None:
    zoned = ical.parse_rrule("FREQ=DAILY;UNTIL=20300404", dt.datetime(2030, 3, 28, 9, tzinfo=BERLIN))
    assert zoned["UNTIL"][0] == dt.datetime(2030, 4, 4, 21, 59, 59, tzinfo=dt.UTC)  # through the day, in UTC
    assert ical.parse_rrule("FREQ=DAILY;UNTIL=20300404T100000Z", dt.date(2030, 3, 28))["UNTIL"][0] == dt.date(2030, 4, 4)
    assert ical.parse_rrule("RRULE:FREQ=WEEKLY;UNTIL=20300404", dt.datetime(2030, 3, 28, 9))["UNTIL"][0] == \
        dt.datetime(2030, 4, 4, 23, 59, 59)
    with pytest.raises(InvalidArgument, match="not a valid RRULE"):
        ical.parse_rrule("FREQ=DAILY;BYDAY=XX", dt.date(2030, 1, 1))


OUTLOOK = b"""BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//Microsoft Corporation//Outlook 16.0 MIMEDIR//EN\r
BEGIN:VTIMEZONE\r
TZID:W. Europe Standard Time\r
BEGIN:STANDARD\r
DTSTART:16011028T030000\r
RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10\r
TZOFFSETFROM:+0200\r
TZOFFSETTO:+0100\r
END:STANDARD\r
BEGIN:DAYLIGHT\r
DTSTART:16010325T020000\r
RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3\r
TZOFFSETFROM:+0100\r
TZOFFSETTO:+0200\r
END:DAYLIGHT\r
END:VTIMEZONE\r
BEGIN:VEVENT\r
UID:series-1\r
DTSTAMP:20300101T000000Z\r
DTSTART;TZID=W. Europe Standard Time:20300327T090000\r
DTEND;TZID=W. Europe Standard Time:20300327T093000\r
RRULE:FREQ=DAILY;COUNT=6\r
EXDATE;TZID=W. Europe Standard Time:20300329T090000\r
RDATE;TZID=W. Europe Standard Time:20300405T120000\r
SUMMARY:Sync\r
ATTENDEE;CN=Bob;PARTSTAT=ACCEPTED;X-NUM-GUESTS=0:mailto:bob@example.com\r
BEGIN:VALARM\r
ACTION:DISPLAY\r
TRIGGER:-PT10M\r
DESCRIPTION:Sync\r
X-WR-ALARMUID:keep-me\r
END:VALARM\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:series-1\r
DTSTAMP:20300101T000000Z\r
RECURRENCE-ID;TZID=W. Europe Standard Time:20300331T090000\r
DTSTART;TZID=W. Europe Standard Time:20300331T140000\r
DTEND;TZID=W. Europe Standard Time:20300331T143000\r
SUMMARY:Sync (afternoon)\r
END:VEVENT\r
END:VCALENDAR\r
"""


def _object(data: bytes) -> CalObject:
    return CalObject(href="/remote.php/dav/calendars/u/personal/x.ics", etag='"1"', data=data)


def test_expansion_keeps_custom_zone_across_dst_with_exceptions() -> None:
    occs, skipped = expand([_object(OUTLOOK)], "VEVENT", dt.datetime(2030, 3, 26, tzinfo=BERLIN),
                           dt.datetime(2030, 4, 10, tzinfo=BERLIN), BERLIN)
    events = [o.as_event() for o in occs]
    assert skipped == 0
    assert [(e["summary"], e["start"]["value"]) for e in events] == [
        ("Sync", "2030-03-27T09:00:00+01:00"), ("Sync", "2030-03-28T09:00:00+01:00"),
        ("Sync", "2030-03-30T09:00:00+01:00"),  # 29th excluded
        ("Sync (afternoon)", "2030-03-31T14:00:00+02:00"),  # override, after the DST switch
        ("Sync", "2030-04-01T09:00:00+02:00"), ("Sync", "2030-04-05T12:00:00+02:00")]  # RDATE
    assert {e["start"]["timezone"] for e in events} == {"W. Europe Standard Time"}
    assert events[3]["recurrence_id"]["value"] == "2030-03-31T09:00:00+02:00"


def test_patch_keeps_alarm_and_attendee_details() -> None:
    cal = ical.load(OUTLOOK)
    series = ical.master(cal, "VEVENT")
    patch.apply_common(series, {
        "alarms": [*ical.alarms(series), {"minutes_before": 60, "action": "EMAIL"}],
        "attendees": [*ical.attendees(series), "carol@example.com"]})
    alarms = [a for a in series.subcomponents if a.name == "VALARM"]
    assert alarms[0]["X-WR-ALARMUID"] == "keep-me" and len(alarms) == 2
    bob = series["ATTENDEE"][0]
    assert bob.params["X-NUM-GUESTS"] == "0" and bob.params["PARTSTAT"] == "ACCEPTED" and "ROLE" not in bob.params
    assert str(series["ATTENDEE"][1]) == "mailto:carol@example.com"


def test_moving_a_series_moves_its_exceptions() -> None:
    cal = ical.load(OUTLOOK)
    series = ical.master(cal, "VEVENT")
    old, new = patch.apply_times(series, start="2030-03-27T10:15", end=None, all_day=None, timezone=None, default_tz=None)
    patch.move_exceptions(cal, series, "VEVENT", old, new)
    assert ical.tzid_of(series, "DTSTART") == "W. Europe Standard Time"  # the object's own zone is kept
    assert ical.value_of(series, "DTEND").strftime("%H:%M") == "10:45"
    assert [d["value"][:16] for d in ical.date_list(series, "EXDATE")] == ["2030-03-29T10:15"]
    assert [d["value"][:16] for d in ical.date_list(series, "RDATE")] == ["2030-04-05T13:15"]
    override = ical.overrides(cal, "VEVENT")[0]
    assert ical.value_of(override, "RECURRENCE-ID").strftime("%d %H:%M") == "31 10:15"
    assert ical.value_of(override, "DTSTART").strftime("%d %H:%M") == "31 14:00"  # moved on purpose: stays


def test_occurrence_override_keeps_the_custom_tzid() -> None:
    from ncmcp_calendar.expand import occurrence_at

    cal = ical.load(OUTLOOK)
    series = ical.master(cal, "VEVENT")
    when = timeutil.same_kind(ical.value_of(series, "DTSTART"), timeutil.parse("2030-04-01T07:00:00Z"))
    occ = occurrence_at(cal, "VEVENT", series, when)
    assert occ is not None and ical.find_override(cal, "VEVENT", when) is None
    cal.add_component(ical.occurrence_template(series, when, ical.value_of(occ, "DTSTART"), ical.value_of(occ, "DTEND")))
    again = ical.load(ical.dump(cal))
    override = ical.find_override(again, "VEVENT", when)
    assert override is not None and "RRULE" not in override and "EXDATE" not in override
    assert ical.tzid_of(override, "RECURRENCE-ID") == ical.tzid_of(override, "DTSTART") == "W. Europe Standard Time"
    assert timeutil.describe(ical.value_of(override, "DTSTART"))["value"] == "2030-04-01T09:00:00+02:00"
    assert [t.get("TZID") for t in again.timezones] == ["W. Europe Standard Time"]  # none added
    assert occurrence_at(again, "VEVENT", series, timeutil.parse("2030-03-29T08:00:00Z")) is None  # the EXDATE


def test_floating_and_all_day_toggle() -> None:
    cal = Calendar.from_ical(b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:f\r\nDTSTART:20300101T080000\r\n"
                             b"DTEND:20300101T083000\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
    event = cal.walk("VEVENT")[0]
    patch.apply_times(event, start=None, end=None, all_day=True, timezone=None, default_tz=None)
    assert ical.value_of(event, "DTSTART") == dt.date(2030, 1, 1) and ical.value_of(event, "DTEND") == dt.date(2030, 1, 2)
    with pytest.raises(InvalidArgument, match="time of day"):
        patch.apply_times(event, start=None, end=None, all_day=False, timezone=None, default_tz=None)


# --- free time ---------------------------------------------------------------------------------------

def test_free_windows_respect_working_hours_across_dst() -> None:
    busy = availability.merge([
        (dt.datetime(2030, 3, 29, 9, 30, tzinfo=BERLIN), dt.datetime(2030, 3, 29, 10, tzinfo=BERLIN)),
        (dt.datetime(2030, 3, 29, 9, 45, tzinfo=BERLIN), dt.datetime(2030, 3, 29, 11, tzinfo=BERLIN)),
        (dt.datetime(2030, 4, 1, 7, tzinfo=dt.UTC), dt.datetime(2030, 4, 1, 8, tzinfo=dt.UTC))])
    windows = availability.free_windows(dt.date(2030, 3, 29), dt.date(2030, 4, 1), BERLIN, dt.time(9), dt.time(12),
                                        {1, 2, 3, 4, 5}, busy, dt.datetime(2000, 1, 1, tzinfo=dt.UTC),
                                        dt.timedelta(minutes=30))
    assert [(s.astimezone(BERLIN).isoformat(), e.astimezone(BERLIN).isoformat()) for s, e in windows] == [
        ("2030-03-29T09:00:00+01:00", "2030-03-29T09:30:00+01:00"),  # exactly long enough
        ("2030-03-29T11:00:00+01:00", "2030-03-29T12:00:00+01:00"),  # the overlapping busy times merged
        # Monday after the switch: 07:00-08:00 UTC is 09:00-10:00 local; working hours stay 09-12 local.
        ("2030-04-01T10:00:00+02:00", "2030-04-01T12:00:00+02:00")]
    assert availability.parse_free_busy(
        b"BEGIN:VCALENDAR\r\nBEGIN:VFREEBUSY\r\nFREEBUSY;FBTYPE=BUSY:20300101T090000Z/PT1H,20300101T120000Z/20300101T130000Z\r\n"
        b"FREEBUSY;FBTYPE=FREE:20300101T140000Z/PT1H\r\nEND:VFREEBUSY\r\nEND:VCALENDAR\r\n") == [
        (dt.datetime(2030, 1, 1, 9, tzinfo=dt.UTC), dt.datetime(2030, 1, 1, 10, tzinfo=dt.UTC)),
        (dt.datetime(2030, 1, 1, 12, tzinfo=dt.UTC), dt.datetime(2030, 1, 1, 13, tzinfo=dt.UTC))]


# --- handlers and the CalDAV layer against scripted answers ------------------------------------------

@dataclass
class StubContext:
    http: Any
    user_id: str = "alice"
    settings: dict[str, str] = field(default_factory=dict)
    log: Any = field(default_factory=lambda: structlog.get_logger("test"))

    async def report_progress(self, *args: Any) -> None:
        return None


def scripted(handler: Any) -> Any:
    pool = NextcloudPool("http://nc.test", transport=httpx.MockTransport(handler))
    return pool.bind("Basic eDp5")


def no_requests(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"no request expected, got {request.method} {request.url}")


@pytest.mark.anyio
@pytest.mark.parametrize(("args", "needle"), [
    ({"summary": "x", "start": "tomorrow"}, "ISO 8601"),
    ({"summary": "x", "start": "2030-01-01T10:00", "timezone": "Mars/Olympus"}, "Unknown time zone"),
    ({"summary": "x", "start": "2030-01-01T10:00", "end": "2030-01-01T09:00"}, "end must be after start"),
    ({"summary": "x", "start": "2030-01-01", "end": "2030-01-01"}, "end date is exclusive"),
    ({"summary": "x", "start": "2030-01-01", "recurrence_rule": "FREQ=SOMETIMES"}, "not a valid RRULE"),
    ({"summary": "x", "start": "2030-01-01T10:00", "attendees": ["not an email"]}, "not an email"),
    ({"summary": "x", "start": "2030-01-01T10:00", "alarms": [{"action": "DISPLAY"}]}, "minutes_before"),
])
async def test_bad_input_is_refused_before_any_request(args: dict[str, Any], needle: str) -> None:
    ctx = StubContext(http=scripted(no_requests))
    with pytest.raises(InvalidArgument, match=needle):
        await tools_events.create_event(ctx, **args)


HOME = "/remote.php/dav/calendars/alice/"
PERSONAL = CalendarInfo(href=HOME + "personal/", name="personal", display_name="Personal", color=None,
                        components=("VEVENT",), read_only=False)


def multistatus(*responses: str) -> httpx.Response:
    body = ('<?xml version="1.0"?><d:multistatus xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav">'
            + "".join(responses) + "</d:multistatus>")
    return httpx.Response(207, content=body.encode(), headers={"Content-Type": "application/xml"})


def response(href: str, props: str) -> str:
    return f"<d:response><d:href>{href}</d:href><d:propstat><d:prop>{props}</d:prop>" \
           "<d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>"


EVENT = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:a\r\nDTSTART:20300101T100000Z\r\n"
         "DTEND:20300101T110000Z\r\nSUMMARY:A\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")


@pytest.mark.anyio
async def test_report_without_etags_is_completed_by_a_multiget() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = request.content.decode()
        seen.append(request.method + (" multiget" if "calendar-multiget" in body else ""))
        if "calendar-query" in body:  # a server that leaves getetag out of the REPORT
            return multistatus(response(PERSONAL.href + "a%20b.ics", f"<c:calendar-data>{EVENT}</c:calendar-data>"))
        assert "<d:href>/remote.php/dav/calendars/alice/personal/a%20b.ics</d:href>" in body
        return multistatus(response(PERSONAL.href + "a%20b.ics", '<d:getetag>"e-1"</d:getetag>'))

    ctx = StubContext(http=scripted(handler))
    found = await caldav.query(ctx, PERSONAL, "VEVENT", start="20300101T000000Z", end="20300102T000000Z")
    assert seen == ["REPORT", "REPORT multiget"]
    assert [(o.href, o.etag) for o in found] == [(PERSONAL.href + "a b.ics", '"e-1"')]


@pytest.mark.anyio
async def test_task_refused_by_a_vevent_only_calendar_is_explained() -> None:
    tasks = response(HOME + "tasks/", "<d:resourcetype><d:collection/><c:calendar/></d:resourcetype>"
                     "<d:displayname>Tasks</d:displayname><c:supported-calendar-component-set><c:comp name=\"VTODO\"/>"
                     "</c:supported-calendar-component-set>")
    # This server does not advertise the component set of 'personal', so only its 403 tells.
    personal = response(HOME + "personal/", "<d:resourcetype><d:collection/><c:calendar/></d:resourcetype>"
                        "<d:displayname>Personal</d:displayname>")

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "PROPFIND" and request.url.path == HOME:
            return multistatus(personal, tasks)
        if request.method == "PUT":
            return httpx.Response(403, content=b'<d:error xmlns:d="DAV:" xmlns:s="http://sabredav.org/ns">'
                                  b'<s:exception>Sabre\\CalDAV\\Exception\\InvalidComponentType</s:exception>'
                                  b'<s:message>iCalendar objects must at least have a component of type VEVENT'
                                  b'</s:message></d:error>', headers={"Content-Type": "application/xml"})
        raise AssertionError(f"unexpected {request.method} {request.url}")

    caldav._homes[("http://nc.test", "alice")] = (float("inf"), HOME)
    ctx = StubContext(http=scripted(handler))
    with pytest.raises(InvalidArgument) as refused:
        await tools_todos.create_todo(ctx, summary="Buy milk", calendar="personal")
    assert "'tasks' (Tasks)" in refused.value.message and refused.value.details["calendar"] == "personal"


@pytest.mark.anyio
async def test_412_is_a_conflict_with_the_current_etag_unless_the_content_was_refused() -> None:
    state = {"etag": '"now"'}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "PUT":
            return httpx.Response(412)  # Sabre sends no ETag with it
        return multistatus(response(request.url.path, f"<d:getetag>{state['etag']}</d:getetag>"))

    ctx = StubContext(http=scripted(handler))
    with pytest.raises(Conflict) as conflict:
        await caldav.replace(ctx, PERSONAL.href + "x.ics", b"data", '"then"')
    assert conflict.value.current_etag == '"now"'
    state["etag"] = '"then"'  # the ETag still matches: the server refused the data (Xandikos does that)
    with pytest.raises(UpstreamError, match="refused the calendar data"):
        await caldav.replace(ctx, PERSONAL.href + "x.ics", b"data", '"then"')


def test_hrefs_outside_the_calendar_home_are_refused() -> None:
    assert caldav.object_path(HOME, HOME + "personal/a b.ics") == HOME + "personal/a b.ics"
    assert caldav.object_path(HOME, "https://cloud.example.com" + HOME + "personal/a%20b.ics") == HOME + "personal/a b.ics"
    for bad in ("/remote.php/dav/files/alice/x.ics", HOME + "personal/", HOME + "personal/../../x.ics",
                HOME + "x.ics", HOME + "personal/sub/x.ics"):
        with pytest.raises(InvalidArgument):
            caldav.object_path(HOME, bad)


@pytest.mark.anyio
async def test_nextcloud_under_a_sub_path_is_addressed_by_origin_not_doubled() -> None:
    """Nextcloud at https://host/nextcloud answers absolute hrefs (/nextcloud/remote.php/...); they are
    requested on the origin, never appended to the base URL (the peer's doubled /nextcloud/ bug)."""
    base = "/nextcloud/remote.php/dav/"
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        seen.append(f"{request.method} {path}")
        if path == "/nextcloud/.well-known/caldav":
            return httpx.Response(301, headers={"Location": "http://nc.test/nextcloud/remote.php/dav/"})
        if path == base:
            return multistatus(response(base, f"<d:current-user-principal><d:href>{base}principals/users/bob/</d:href>"
                                              "</d:current-user-principal>"))
        if path == base + "principals/users/bob/":
            return multistatus(response(path, f"<c:calendar-home-set><d:href>http://nc.test{base}calendars/bob/</d:href>"
                                              "</c:calendar-home-set>"))
        if path == base + "calendars/bob/":
            return multistatus(response(base + "calendars/bob/Work%20%26%20Play/",
                                        "<d:resourcetype><d:collection/><c:calendar/></d:resourcetype>"
                                        "<d:displayname>Work &amp; Play</d:displayname>"))
        raise AssertionError(f"unexpected {request.method} {request.url}")

    pool = NextcloudPool("http://nc.test/nextcloud", transport=httpx.MockTransport(handler))
    ctx = StubContext(http=pool.bind("Basic eDp5"), user_id="bob")
    found = await caldav.list_calendars(ctx)
    assert [(c.href, c.name, c.display_name) for c in found] == [
        (base + "calendars/bob/Work & Play/", "Work & Play", "Work & Play")]
    assert not any("/nextcloud/nextcloud" in s for s in seen)
    assert seen[-1] == "PROPFIND /nextcloud/remote.php/dav/calendars/bob/"
