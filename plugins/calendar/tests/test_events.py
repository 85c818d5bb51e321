"""Events against the sandbox with Radicale and with Xandikos: the main flows over real HTTP
(uvicorn + the official MCP client), the finer cases in process."""

from __future__ import annotations

import datetime as dt
from urllib.parse import quote

import anyio
import pytest
from calendar_testkit import PLUGINS, calendars, dav_client, error, ok, put_raw, requests_under, wait_for_request
from ncmcp.testing.fixtures import InProcessHost
from ncmcp.testing.http import connect

pytestmark = pytest.mark.anyio


async def test_create_get_list_update_delete_in_zones(http_host, sandbox_user) -> None:
    async with http_host(plugins=PLUGINS) as host:
        cals = await calendars(host)
        assert cals["personal"]["components"] == ["VEVENT"] and not cals["personal"]["read_only"]
        assert "VTODO" in cals["tasks"]["components"]

        zoned = ok(await host.call("nc_calendar_create_event", {
            "summary": "Dentist", "start": "2030-06-10T09:30", "timezone": "Europe/Berlin", "duration_minutes": 45,
            "location": "Main St 1", "description": "Bring card", "categories": ["Health"], "priority": 2,
            "classification": "PRIVATE", "url": "https://example.com/x", "color": "tomato", "status": "CONFIRMED",
            "alarms": [{"minutes_before": 30}, {"minutes_before": 1440, "action": "EMAIL"}]}))
        assert zoned["start"] == {"value": "2030-06-10T09:30:00+02:00", "kind": "zoned", "timezone": "Europe/Berlin"}
        assert zoned["end"]["value"] == "2030-06-10T10:15:00+02:00"
        assert zoned["etag"] and zoned["uid"] and zoned["href"].startswith(cals["personal"]["href"])
        assert {a["minutes_before"] for a in zoned["alarms"]} == {30, 1440}
        assert zoned["class"] == "PRIVATE" and zoned["color"] == "tomato" and zoned["priority"] == 2

        utc = ok(await host.call("nc_calendar_create_event", {"summary": "Launch", "start": "2030-06-11T07:00:00Z",
                                                               "end": "2030-06-11T08:00:00Z"}))
        assert utc["start"] == {"value": "2030-06-11T07:00:00Z", "kind": "utc", "timezone": "UTC"}
        offset = ok(await host.call("nc_calendar_create_event", {"summary": "Call", "start": "2030-06-11T10:00+05:30"}))
        assert offset["start"]["value"] == "2030-06-11T04:30:00Z"  # a bare offset names no zone: kept as the instant
        floating = ok(await host.call("nc_calendar_create_event", {"summary": "Wake up", "start": "2030-06-12T07:00"}))
        assert floating["start"] == {"value": "2030-06-12T07:00:00", "kind": "floating", "timezone": None}
        allday = ok(await host.call("nc_calendar_create_event", {"summary": "Holiday", "start": "2030-06-13",
                                                                  "end": "2030-06-15"}))
        assert allday["all_day"] and allday["start"]["kind"] == "date" and allday["end"]["value"] == "2030-06-15"
        bracket = ok(await host.call("nc_calendar_create_event", {"summary": "NY",
                                                                  "start": "2030-06-12T09:00[America/New_York]"}))
        assert bracket["start"]["timezone"] == "America/New_York" and bracket["start"]["value"].endswith("-04:00")

        # Read back: every kind survives the round trip through the server.
        for made in (zoned, utc, floating, allday, bracket):
            got = ok(await host.call("nc_calendar_get_event", {"href": made["href"]}))
            assert got["start"] == made["start"] and got["end"] == made["end"] and got["etag"] == made["etag"]

        # Listing in Tokyo time: the floating event is read at 07:00 Tokyo, zoned ones keep their zone.
        listed = ok(await host.call("nc_calendar_list_events", {"start": "2030-06-10", "end": "2030-06-14",
                                                                 "timezone": "Asia/Tokyo"}))
        assert [e["summary"] for e in listed["events"]] == ["Dentist", "Call", "Launch", "Wake up", "NY", "Holiday"]
        assert listed["calendars"] == ["personal", "tasks"] and listed["timezone"] == "Asia/Tokyo"
        assert all(e["etag"] and e["href"] and e["uid"] for e in listed["events"])
        assert listed["range"]["start"]["value"] == "2030-06-10T00:00:00+09:00"
        filtered = ok(await host.call("nc_calendar_list_events", {"start": "2030-06-01", "end": "2030-06-30",
                                                                   "category": "health", "calendar": "personal"}))
        assert [e["summary"] for e in filtered["events"]] == ["Dentist"]
        assert [e["summary"] for e in ok(await host.call("nc_calendar_list_events", {
            "start": "2030-06-01", "end": "2030-06-30", "text": "card"}))["events"]] == ["Dentist"]

        updated = ok(await host.call("nc_calendar_update_event", {"href": zoned["href"], "etag": zoned["etag"],
                                                                   "start": "2030-06-10T11:00", "location": ""}))
        assert updated["start"]["value"] == "2030-06-10T11:00:00+02:00"
        assert updated["end"]["value"] == "2030-06-10T11:45:00+02:00"  # the duration is kept
        assert updated["location"] is None and updated["description"] == "Bring card"
        assert {a["minutes_before"] for a in updated["alarms"]} == {30, 1440}
        assert updated["etag"] != zoned["etag"] and updated["sequence"] == 1  # a time change is significant

        moved_zone = ok(await host.call("nc_calendar_update_event", {"href": zoned["href"], "timezone": "Europe/London"}))
        assert moved_zone["start"] == {"value": "2030-06-10T11:00:00+01:00", "kind": "zoned", "timezone": "Europe/London"}

        to_allday = ok(await host.call("nc_calendar_update_event", {"href": floating["href"], "all_day": True}))
        assert to_allday["all_day"] and to_allday["start"]["value"] == "2030-06-12" and to_allday["end"]["value"] == "2030-06-13"

        gone = ok(await host.call("nc_calendar_delete_event", {"href": utc["href"], "etag": utc["etag"]}))
        assert gone["deleted"] and gone["uid"] == utc["uid"]
        text, details = error(await host.call("nc_calendar_get_event", {"href": utc["href"]}))
        assert details["error"] == "not_found"

        by_uid = ok(await host.call("nc_calendar_get_event", {"uid": allday["uid"]}))
        assert by_uid["href"] == allday["href"]


async def test_recurrence_across_dst_with_exceptions(make_host) -> None:
    async with make_host(plugins=PLUGINS) as host:
        series = ok(await host.call("nc_calendar_create_event", {
            "summary": "Standup", "start": "2030-03-28T09:00", "timezone": "Europe/Berlin", "duration_minutes": 15,
            "recurrence_rule": "FREQ=DAILY;UNTIL=20300404"}))
        assert series["is_recurring"] and series["recurrence_rule"].startswith("FREQ=DAILY;UNTIL=20300404T")
        week = ok(await host.call("nc_calendar_list_events", {"start": "2030-03-29", "end": "2030-04-02",
                                                               "timezone": "Europe/Berlin"}))["events"]
        # 09:00 local on both sides of the switch to summer time (2030-03-31).
        assert [e["start"]["value"] for e in week] == ["2030-03-29T09:00:00+01:00", "2030-03-30T09:00:00+01:00",
                                                       "2030-03-31T09:00:00+02:00", "2030-04-01T09:00:00+02:00",
                                                       "2030-04-02T09:00:00+02:00"]
        assert all(e["recurrence_id"]["value"] == e["start"]["value"] for e in week)

        # One occurrence moved and renamed (becomes an override), another one deleted (EXDATE).
        moved = ok(await host.call("nc_calendar_update_event", {
            "href": series["href"], "occurrence": week[2]["recurrence_id"]["value"], "summary": "Late standup",
            "start": "2030-03-31T10:30"}))
        assert moved["recurrence_id"]["value"] == "2030-03-31T09:00:00+02:00"
        assert moved["start"]["value"] == "2030-03-31T10:30:00+02:00" and moved["summary"] == "Late standup"
        cut = ok(await host.call("nc_calendar_delete_event", {"href": series["href"], "occurrence": "2030-04-01T07:00:00Z"}))
        assert cut["occurrence"]["value"] == "2030-04-01T09:00:00+02:00" and cut["etag"]

        after = ok(await host.call("nc_calendar_list_events", {"start": "2030-03-29", "end": "2030-04-02",
                                                                "timezone": "Europe/Berlin"}))["events"]
        assert [(e["summary"], e["start"]["value"]) for e in after] == [
            ("Standup", "2030-03-29T09:00:00+01:00"), ("Standup", "2030-03-30T09:00:00+01:00"),
            ("Late standup", "2030-03-31T10:30:00+02:00"), ("Standup", "2030-04-02T09:00:00+02:00")]

        # Moving the whole series an hour later moves its exceptions along; the moved one keeps its time.
        whole = ok(await host.call("nc_calendar_get_event", {"href": series["href"]}))
        shifted = ok(await host.call("nc_calendar_update_event", {"href": series["href"], "etag": whole["etag"],
                                                                   "start": "2030-03-28T10:00", "summary": "Daily"}))
        assert shifted["summary"] == "Daily"
        details = ok(await host.call("nc_calendar_get_event", {"href": series["href"]}))
        assert [x["value"] for x in details["exdates"]] == ["2030-04-01T10:00:00+02:00"]
        assert [(o["recurrence_id"]["value"], o["start"]["value"], o["summary"]) for o in details["overrides"]] == [
            ("2030-03-31T10:00:00+02:00", "2030-03-31T10:30:00+02:00", "Late standup")]
        final = ok(await host.call("nc_calendar_list_events", {"start": "2030-03-30", "end": "2030-04-02",
                                                                "timezone": "Europe/Berlin"}))["events"]
        assert [(e["summary"], e["start"]["value"]) for e in final] == [
            ("Daily", "2030-03-30T10:00:00+01:00"), ("Late standup", "2030-03-31T10:30:00+02:00"),
            ("Daily", "2030-04-02T10:00:00+02:00")]

        one = ok(await host.call("nc_calendar_get_event", {"href": series["href"], "occurrence": "2030-04-02T10:00:00+02:00"}))
        assert one["recurrence_id"]["value"] == "2030-04-02T10:00:00+02:00" and one["etag"] == details["etag"]
        text, info = error(await host.call("nc_calendar_update_event", {"href": series["href"],
                                                                          "occurrence": "2030-04-02T11:00:00+02:00",
                                                                          "summary": "x"}))
        assert info["error"] == "not_found" and "no occurrence" in text

        # All-day series: occurrences are dates, an excluded one is an EXDATE;VALUE=DATE.
        yearly = ok(await host.call("nc_calendar_create_event", {"summary": "Anniversary", "start": "2030-02-14",
                                                                  "recurrence_rule": "FREQ=YEARLY;COUNT=3"}))
        got = ok(await host.call("nc_calendar_delete_event", {"href": yearly["href"], "occurrence": "2031-02-14"}))
        assert got["occurrence"] == {"value": "2031-02-14", "kind": "date", "timezone": None}
        listed = ok(await host.call("nc_calendar_list_events", {"start": "2030-01-01", "end": "2033-01-01",
                                                                 "text": "anniversary"}))["events"]
        assert [e["start"]["value"] for e in listed] == ["2030-02-14", "2032-02-14"]


async def test_objects_are_addressed_by_href_not_uid(make_host, sandbox, sandbox_user) -> None:
    """An object written by another client under a name unlike its UID, with characters that need
    percent-encoding, is found, updated and deleted through its href."""
    async with make_host(plugins=PLUGINS) as host, dav_client(sandbox, sandbox_user) as dav:
        personal = (await calendars(host))["personal"]
        # Xandikos in the sandbox mangles non-ASCII names and cuts names at '#' (reported), so the
        # harder name runs on Radicale only.
        name = "Team Lunch #1 ü 100% +2&co.ics" if sandbox.dav_backend == "radicale" else "Team Lunch 100% +2&co.ics"
        href = personal["href"] + name
        ics = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//other//EN\r\nBEGIN:VEVENT\r\nUID:lunch@other.example\r\n"
               "DTSTAMP:20300101T000000Z\r\nDTSTART:20300702T120000Z\r\nDTEND:20300702T130000Z\r\nSUMMARY:Lunch\r\n"
               "END:VEVENT\r\nEND:VCALENDAR\r\n")
        assert (await put_raw(dav, href, ics)).status_code == 201
        listed = ok(await host.call("nc_calendar_list_events", {"start": "2030-07-02"}))["events"]
        assert [e["href"] for e in listed] == [href] and listed[0]["uid"] == "lunch@other.example"
        changed = ok(await host.call("nc_calendar_update_event", {"href": href, "etag": listed[0]["etag"],
                                                                   "summary": "Team lunch"}))
        assert changed["href"] == href and changed["summary"] == "Team lunch"
        full_url = sandbox.url + quote(href)
        assert ok(await host.call("nc_calendar_get_event", {"href": full_url}))["summary"] == "Team lunch"
        assert (await dav.get(quote(href))).status_code == 200
        assert ok(await host.call("nc_calendar_delete_event", {"href": href}))["deleted"]
        assert (await dav.get(quote(href))).status_code == 404

        # hrefs outside the calendar home are refused before any request is made.
        for outside in ("/remote.php/dav/files/" + sandbox_user[0] + "/secret.txt", personal["href"] + "../../x.ics",
                        "/ocs/v2.php/cloud/user"):
            text, details = error(await host.call("nc_calendar_delete_event", {"href": outside}))
            assert details["error"] == "invalid_argument"


async def test_two_clients_conflict_and_nothing_is_lost(http_host, sandbox, sandbox_user) -> None:
    async with http_host(plugins=PLUGINS) as laptop, connect(laptop.url) as phone_client:
        phone = InProcessHost(laptop.host)  # a second MCP client of the same server
        phone.client = phone_client
        event = ok(await laptop.call("nc_calendar_create_event", {"summary": "Review", "start": "2030-05-05T10:00Z"}))
        seen_by_phone = ok(await phone.call("nc_calendar_get_event", {"href": event["href"]}))

        first = ok(await laptop.call("nc_calendar_update_event", {"href": event["href"], "etag": event["etag"],
                                                                   "location": "Room A"}))
        text, details = error(await phone.call("nc_calendar_update_event", {
            "href": event["href"], "etag": seen_by_phone["etag"], "description": "Agenda from the phone"}))
        assert details["error"] == "conflict" and details["current_etag"] == first["etag"]
        assert "changed" in text
        now = ok(await phone.call("nc_calendar_get_event", {"href": event["href"]}))
        assert now["location"] == "Room A" and now["description"] is None and now["etag"] == first["etag"]
        # Retrying with the fresh etag keeps both changes.
        both = ok(await phone.call("nc_calendar_update_event", {"href": event["href"], "etag": now["etag"],
                                                                 "description": "Agenda from the phone"}))
        assert both["location"] == "Room A" and both["description"] == "Agenda from the phone"
        text, details = error(await laptop.call("nc_calendar_delete_event", {"href": event["href"], "etag": first["etag"]}))
        assert details["error"] == "conflict" and details["current_etag"] == both["etag"]

        # Without a caller etag the tool still writes conditionally on what it read: another app
        # writes while the tool's PUT is held up; the tool reports a conflict, the other write survives.
        puts = requests_under(sandbox, "PUT", event["href"])
        sandbox.add_fault(path=event["href"], method="PUT", delay=0.3, times=1)
        outcome = {}

        async def tool_update() -> None:
            outcome["result"] = await laptop.call("nc_calendar_update_event", {"href": event["href"], "location": "Tool room"})

        try:
            async with dav_client(sandbox, sandbox_user) as dav, anyio.create_task_group() as tg:
                tg.start_soon(tool_update)
                await wait_for_request(sandbox, "PUT", event["href"], puts)  # read done, PUT held
                current = await dav.get(quote(event["href"]))
                text = current.text.replace("SUMMARY:Review", "SUMMARY:Review (edited elsewhere)")
                assert (await put_raw(dav, event["href"], text, etag=current.headers["ETag"])).status_code in (200, 204)
        finally:
            sandbox.clear_faults()
        message, details = error(outcome["result"])
        assert details["error"] == "conflict" and details["current_etag"]
        final = ok(await phone.call("nc_calendar_get_event", {"href": event["href"]}))
        assert final["summary"] == "Review (edited elsewhere)" and final["location"] == "Room A"
        assert final["description"] == "Agenda from the phone" and final["etag"] == details["current_etag"]


async def test_upcoming_and_meeting(make_host, sandbox_user) -> None:
    async with make_host(plugins=PLUGINS) as host:
        soon = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).replace(microsecond=0)
        meeting = ok(await host.call("nc_calendar_create_meeting", {
            "title": "Kick-off", "date": soon.date().isoformat(), "time": "15:00", "timezone": "Europe/Berlin",
            "duration_minutes": 30, "attendees": ["bob@example.com", {"email": "eve@example.com", "name": "Eve"}],
            "location": "Online"}))
        assert meeting["end"]["value"].startswith(soon.date().isoformat() + "T15:30")
        assert [a["email"] for a in meeting["attendees"]] == ["bob@example.com", "eve@example.com"]
        assert meeting["attendees"][1]["name"] == "Eve" and meeting["attendees"][0]["partstat"] == "NEEDS-ACTION"
        assert meeting["organizer"]["email"] == f"{sandbox_user[0]}@example.test"  # the account's address
        assert meeting["alarms"][0]["minutes_before"] == 15
        later = ok(await host.call("nc_calendar_create_event", {"summary": "Far away", "start": "2031-01-01T10:00Z"}))
        upcoming = ok(await host.call("nc_calendar_get_upcoming_events", {"days_ahead": 7}))
        assert [e["href"] for e in upcoming["events"]] == [meeting["href"]]
        assert later["href"] not in {e["href"] for e in upcoming["events"]}

        # Attendee replies survive an update that only adds someone.
        updated = ok(await host.call("nc_calendar_update_event", {
            "href": meeting["href"], "attendees": [*meeting["attendees"][:1], {**meeting["attendees"][1], "partstat": "ACCEPTED"},
                                                   "zoe@example.com"]}))
        assert [(a["email"], a["partstat"]) for a in updated["attendees"]] == [
            ("bob@example.com", "NEEDS-ACTION"), ("eve@example.com", "ACCEPTED"), ("zoe@example.com", "NEEDS-ACTION")]
        assert updated["sequence"] == 0  # attendee changes are not "significant" in RFC 5546's sense
