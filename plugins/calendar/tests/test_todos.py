"""Tasks (VTODO) over real HTTP against Radicale and Xandikos."""

from __future__ import annotations

import pytest
from calendar_testkit import PLUGINS, calendars, error, ok

pytestmark = pytest.mark.anyio


async def test_tasks_lifecycle_subtasks_and_the_vevent_only_calendar(http_host) -> None:
    async with http_host(plugins=PLUGINS) as host:
        # Nextcloud's personal calendar is VEVENT-only: the tool explains and names one that accepts tasks.
        text, details = error(await host.call("nc_calendar_create_todo", {"summary": "Milk", "calendar": "personal"}))
        assert details["error"] == "invalid_argument" and "'tasks' (Tasks)" in text and "accepts only VEVENT" in text
        text, _ = error(await host.call("nc_calendar_list_todos", {"calendar": "personal"}))
        assert "'tasks' (Tasks)" in text

        parent = ok(await host.call("nc_calendar_create_todo", {
            "summary": "Move flat", "due": "2030-05-31", "priority": 1, "categories": ["Home"],
            "description": "Everything by the end of May", "alarms": [{"minutes_before": 1440}]}))
        assert parent["calendar"] == "tasks" and parent["status"] == "NEEDS-ACTION" and parent["etag"]
        assert parent["due"] == {"value": "2030-05-31", "kind": "date", "timezone": None}
        assert parent["alarms"][0]["related"] == "end"  # no start: the reminder hangs on the due date
        child = ok(await host.call("nc_calendar_create_todo", {
            "summary": "Book van", "parent_uid": parent["uid"], "due": "2030-05-20T12:00", "timezone": "Europe/Berlin",
            "start": "2030-05-10T09:00", "priority": 5}))
        assert child["parent_uid"] == parent["uid"] and child["due"]["value"] == "2030-05-20T12:00:00+02:00"
        other = ok(await host.call("nc_calendar_manage_calendar", {"action": "create", "display_name": "Work tasks",
                                                                    "components": ["VTODO"]}))["calendar"]
        assert other["components"] == ["VTODO"] and other["name"] == "work-tasks"
        work = ok(await host.call("nc_calendar_create_todo", {"summary": "Report", "calendar": "Work tasks", "priority": 3,
                                                               "status": "IN-PROCESS", "percent_complete": 40}))

        listed = ok(await host.call("nc_calendar_list_todos", {}))
        assert [t["summary"] for t in listed["todos"]] == ["Book van", "Move flat"] and listed["calendars"] == ["tasks"]
        subtasks = ok(await host.call("nc_calendar_list_todos", {"parent_uid": parent["uid"]}))["todos"]
        assert [t["uid"] for t in subtasks] == [child["uid"]]

        done = ok(await host.call("nc_calendar_complete_todo", {"href": child["href"], "etag": child["etag"]}))
        assert done["status"] == "COMPLETED" and done["percent_complete"] == 100 and done["completed"]["kind"] == "utc"
        assert [t["summary"] for t in ok(await host.call("nc_calendar_list_todos", {}))["todos"]] == ["Move flat"]
        everything = ok(await host.call("nc_calendar_search_todos", {"include_completed": True}))
        assert {t["summary"] for t in everything["todos"]} == {"Book van", "Move flat", "Report"}
        assert set(everything["calendars"]) == {"tasks", "work-tasks"}
        found = ok(await host.call("nc_calendar_search_todos", {"text": "REPORT", "priority_at_least": 3}))["todos"]
        assert [(t["summary"], t["calendar"], t["percent_complete"]) for t in found] == [("Report", "work-tasks", 40)]
        assert ok(await host.call("nc_calendar_search_todos", {"due_before": "2030-06-01", "category": "home"}))["count"] == 1

        # Field-wise update keeps the rest; a stale etag is refused with the current one.
        changed = ok(await host.call("nc_calendar_update_todo", {"href": parent["href"], "etag": parent["etag"],
                                                                  "percent_complete": 50, "categories": ["Home", "Urgent"]}))
        assert changed["description"] == "Everything by the end of May" and changed["priority"] == 1
        assert changed["alarms"] == parent["alarms"] and changed["categories"] == ["Home", "Urgent"]
        text, details = error(await host.call("nc_calendar_update_todo", {"href": parent["href"], "etag": parent["etag"],
                                                                           "summary": "Stale"}))
        assert details["error"] == "conflict" and details["current_etag"] == changed["etag"]
        reopened = ok(await host.call("nc_calendar_complete_todo", {"href": child["href"], "completed": False}))
        assert reopened["status"] == "NEEDS-ACTION" and reopened["completed"] is None and reopened["percent_complete"] == 0
        detached = ok(await host.call("nc_calendar_update_todo", {"href": child["href"], "parent_uid": "", "due": ""}))
        assert detached["parent_uid"] is None and detached["due"] is None and detached["start"] is not None

        # An event is not a task (and the other way round).
        event = ok(await host.call("nc_calendar_create_event", {"summary": "Party", "start": "2030-06-01"}))
        text, details = error(await host.call("nc_calendar_complete_todo", {"href": event["href"]}))
        assert "is not a task but an event" in text
        text, details = error(await host.call("nc_calendar_delete_event", {"href": work["href"]}))
        assert "is not an event but a task" in text and "nc_calendar_*_todo" in text

        assert ok(await host.call("nc_calendar_delete_todo", {"href": work["href"], "etag": work["etag"]}))["deleted"]
        assert ok(await host.call("nc_calendar_manage_calendar", {"action": "delete", "calendar": "work-tasks"}))["deleted"]
        assert set(await calendars(host)) == {"personal", "tasks"}
