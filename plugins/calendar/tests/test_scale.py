"""A year with 500 events: listing one month is one calendar-query REPORT per calendar (counted by
the sandbox) and returns only that month. Over real HTTP, against Radicale and Xandikos."""

from __future__ import annotations

import datetime as dt

import pytest
from calendar_testkit import PLUGINS, calendars, dav_client, ok, put_raw, requests_under
from dateutil.rrule import rrulestr

pytestmark = pytest.mark.anyio

JUNE = (dt.datetime(2031, 6, 1, tzinfo=dt.UTC), dt.datetime(2031, 7, 1, tzinfo=dt.UTC))
# 505 occurrences in 2031 from a handful of series (cheap to store on every backend).
SERIES = [("Daily", "20310101T070000Z", "FREQ=DAILY;COUNT=365"),
          ("Mondays", "20310106T100000Z", "FREQ=WEEKLY;COUNT=52"),
          ("Thursdays", "20310102T150000Z", "FREQ=WEEKLY;COUNT=52"),
          ("Rent", "20310101T080000Z", "FREQ=MONTHLY;COUNT=12"),
          ("Review", "20310115T120000Z", "FREQ=MONTHLY;COUNT=12"),
          ("Backup", "20310128T200000Z", "FREQ=MONTHLY;COUNT=12")]


def vevent(uid: str, summary: str, start: str, rule: str | None = None) -> str:
    lines = ["BEGIN:VEVENT", f"UID:{uid}", "DTSTAMP:20300101T000000Z", f"DTSTART:{start}", "DURATION:PT30M",
             f"SUMMARY:{summary}", *([f"RRULE:{rule}"] if rule else []), "END:VEVENT"]
    return "\r\n".join(lines) + "\r\n"


def wrap(body: str) -> str:
    return f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//seed//EN\r\n{body}END:VCALENDAR\r\n"


def in_june(start: str, rule: str) -> int:
    first = dt.datetime.strptime(start, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    return len(rrulestr(rule, dtstart=first).between(*JUNE, inc=True))


async def test_a_month_of_a_busy_year_is_one_report_per_calendar(http_host, sandbox, sandbox_user) -> None:
    async with http_host(plugins=PLUGINS) as host, dav_client(sandbox, sandbox_user) as dav:
        cals = await calendars(host)
        for i, (summary, start, rule) in enumerate(SERIES):
            stored = await put_raw(dav, f"{cals['personal']['href']}series-{i}.ics", wrap(vevent(f"s{i}", summary, start, rule)))
            assert stored.status_code == 201
        expected = sum(in_june(start, rule) for _, start, rule in SERIES)
        total = sum(rrulestr(rule, dtstart=dt.datetime.strptime(start, "%Y%m%dT%H%M%SZ")).count() for _, start, rule in SERIES)
        assert total >= 500
        if sandbox.dav_backend == "radicale":
            # Radicale imports a whole calendar in one PUT: 500 separate objects in a second calendar.
            singles = [dt.datetime(2031, 1, 1, 9, tzinfo=dt.UTC) + dt.timedelta(days=i * 365 // 500, minutes=i)
                       for i in range(500)]
            body = "".join(vevent(f"one-{i}", f"Single {i}", t.strftime("%Y%m%dT%H%M%SZ")) for i, t in enumerate(singles))
            year_href = cals["personal"]["href"].rstrip("/").rsplit("/", 1)[0] + "/year/"
            assert (await dav.put(year_href, content=wrap(body), headers={"Content-Type": "text/calendar"})).status_code == 201
            expected += sum(1 for t in singles if JUNE[0] <= t < JUNE[1])
        names = sorted(await calendars(host))

        sandbox.reset_stats()
        june = ok(await host.call("nc_calendar_list_events", {"start": "2031-06-01", "end": "2031-06-30", "limit": 2000}))
        home = cals["personal"]["href"].rstrip("/").rsplit("/", 1)[0] + "/"
        for name in names:
            assert requests_under(sandbox, "REPORT", f"{home}{name}/") == 1, name
        assert requests_under(sandbox, "REPORT", home) == len(names)
        assert requests_under(sandbox, "GET", home) == 0
        assert june["count"] == expected and not june["truncated"] and sorted(june["calendars"]) == names
        starts = [dt.datetime.fromisoformat(e["start"]["value"].replace("Z", "+00:00")) for e in june["events"]]
        assert all(JUNE[0] <= s < JUNE[1] for s in starts) and starts == sorted(starts)
        assert all(e["etag"] and e["href"] and e["uid"] for e in june["events"])
