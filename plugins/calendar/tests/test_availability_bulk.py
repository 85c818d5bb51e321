"""Free time (server free-busy query, and the fallback computed from events) and bulk operations,
in process against Radicale and Xandikos."""

from __future__ import annotations

from urllib.parse import quote

import anyio
import pytest
from calendar_testkit import PLUGINS, calendars, dav_client, error, ok, put_raw, requests_under, wait_for_request

pytestmark = pytest.mark.anyio

# 2030-09-02 is a Monday.
WEEK = {"duration_minutes": 60, "start_date": "2030-09-02", "end_date": "2030-09-03", "timezone": "Europe/Berlin",
        "working_hours_start": "09:00", "working_hours_end": "17:00"}


def spans(result: dict) -> list[tuple[str, str]]:
    return [(s["start"]["value"], s["end"]["value"]) for s in result["slots"]]


async def test_find_availability_with_free_busy_and_fallback(make_host, sandbox) -> None:
    async with make_host(plugins=PLUGINS) as host:
        berlin = {"timezone": "Europe/Berlin"}
        await host.call("nc_calendar_create_event", {"summary": "Busy", "start": "2030-09-02T10:00",
                                                     "end": "2030-09-02T11:30", **berlin})
        await host.call("nc_calendar_create_event", {"summary": "Free to book over", "start": "2030-09-02T13:00",
                                                     "duration_minutes": 30, "transparency": "TRANSPARENT", **berlin})
        await host.call("nc_calendar_create_event", {"summary": "Focus", "start": "2030-09-02T15:00Z", "duration_minutes": 90})
        await host.call("nc_calendar_create_event", {"summary": "Workshop", "calendar": "tasks", "start": "2030-09-03T09:00",
                                                     "end": "2030-09-03T16:30", **berlin})
        expected = [("2030-09-02T09:00:00+02:00", "2030-09-02T10:00:00+02:00"),
                    ("2030-09-02T11:30:00+02:00", "2030-09-02T17:00:00+02:00")]
        found = ok(await host.call("nc_calendar_find_availability", WEEK))
        assert found["method"] == "free-busy-query" and found["methods"] == {"personal": "free-busy-query",
                                                                             "tasks": "free-busy-query"}
        # 15:00Z is 17:00 Berlin: after hours. The transparent event does not block. Tuesday is full
        # (the workshop leaves 30 minutes, less than asked).
        assert spans(found) == expected

        # A server that cannot answer the free-busy REPORT for one calendar: computed from its events.
        personal = (await calendars(host))["personal"]["href"]
        sandbox.add_fault(path=personal, method="REPORT", status=501, times=1)
        try:
            fallback = ok(await host.call("nc_calendar_find_availability", WEEK))
        finally:
            sandbox.clear_faults()
        assert fallback["method"] == "mixed"
        assert fallback["methods"] == {"personal": "events", "tasks": "free-busy-query"}
        assert spans(fallback) == expected
        short = ok(await host.call("nc_calendar_find_availability", {**WEEK, "duration_minutes": 30,
                                                                      "working_days": [2], "calendars": ["tasks"]}))
        assert spans(short) == [("2030-09-03T16:30:00+02:00", "2030-09-03T17:00:00+02:00")]


async def test_bulk_update_is_a_dry_run_first_and_conditional_per_event(make_host, sandbox, sandbox_user) -> None:
    async with make_host(plugins=PLUGINS) as host:
        made = []
        for day in (1, 2, 3):
            made.append(ok(await host.call("nc_calendar_create_event", {
                "summary": f"Offsite day {day}", "start": f"2030-10-0{day}T09:00Z", "categories": ["Offsite"],
                "alarms": [{"minutes_before": 15}]})))
        other = ok(await host.call("nc_calendar_create_event", {"summary": "Dentist", "start": "2030-10-02T15:00Z"}))

        text, _ = error(await host.call("nc_calendar_bulk_operations", {"operation": "update", "changes": {"location": "X"}}))
        assert "at least one filter" in text
        plan = ok(await host.call("nc_calendar_bulk_operations", {"operation": "update", "category": "offsite",
                                                                    "start": "2030-10-01", "end": "2030-10-31",
                                                                    "changes": {"location": "Lodge", "status": "TENTATIVE"}}))
        assert plan["dry_run"] and plan["matched"] == 3 and plan["changed"] == 0
        assert [(i["href"], i["etag"], i["result"]) for i in plan["items"]] == \
            [(m["href"], m["etag"], "would be updated") for m in made]
        assert ok(await host.call("nc_calendar_get_event", {"href": made[0]["href"]}))["etag"] == made[0]["etag"]

        # Another app edits day 2 while the bulk run is under way: that one is reported, not overwritten.
        puts = requests_under(sandbox, "PUT", made[1]["href"])
        sandbox.add_fault(path=made[1]["href"], method="PUT", delay=0.3, times=1)
        outcome = {}

        async def run() -> None:
            outcome["result"] = await host.call("nc_calendar_bulk_operations", {
                "operation": "update", "category": "Offsite", "start": "2030-10-01", "end": "2030-10-31",
                "changes": {"location": "Lodge", "status": "TENTATIVE"}, "dry_run": False})

        try:
            async with dav_client(sandbox, sandbox_user) as dav, anyio.create_task_group() as tg:
                tg.start_soon(run)
                await wait_for_request(sandbox, "PUT", made[1]["href"], puts)  # its PUT is held
                current = await dav.get(quote(made[1]["href"]))
                edited = current.text.replace("SUMMARY:Offsite day 2", "SUMMARY:Offsite day 2 (moved inside)")
                assert (await put_raw(dav, made[1]["href"], edited, etag=current.headers["ETag"])).status_code in (200, 204)
        finally:
            sandbox.clear_faults()
        result = ok(outcome["result"])
        assert [i["result"] for i in result["items"]] == ["updated", "conflict", "updated"]
        assert result["changed"] == 2 and result["conflicts"] == 1 and result["items"][1]["current_etag"]
        day1 = ok(await host.call("nc_calendar_get_event", {"href": made[0]["href"]}))
        assert (day1["location"], day1["status"], day1["etag"]) == ("Lodge", "TENTATIVE", result["items"][0]["new_etag"])
        assert day1["alarms"] == made[0]["alarms"] and day1["categories"] == ["Offsite"]
        day2 = ok(await host.call("nc_calendar_get_event", {"href": made[1]["href"]}))
        assert day2["summary"] == "Offsite day 2 (moved inside)" and day2["location"] is None

        removed = ok(await host.call("nc_calendar_bulk_operations", {"operation": "delete", "text": "offsite day",
                                                                      "dry_run": False}))
        assert removed["changed"] == 3
        left = ok(await host.call("nc_calendar_list_events", {"start": "2030-10-01", "end": "2030-10-31"}))["events"]
        assert [e["href"] for e in left] == [other["href"]]
