"""The sandbox's CalDAV/CardDAV service (Radicale and Xandikos + Nextcloud behaviours).

Every test runs against both backends, through a small ASGI shim standing in for the
sandbox front (it authenticates elsewhere and sets ``X-Remote-User``).  Each test uses
fresh users, so one sandbox per backend serves the whole module.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from urllib.parse import unquote, urlsplit
from xml.etree.ElementTree import Element

import httpx
import pytest
import uvicorn
from defusedxml.ElementTree import fromstring

from ncmcp.testing.sandbox.caldav import CalDavSandbox, build_caldav_app

pytestmark = pytest.mark.anyio

D = "{DAV:}"
C = "{urn:ietf:params:xml:ns:caldav}"
CARD = "{urn:ietf:params:xml:ns:carddav}"
S = "{http://sabredav.org/ns}"
XML = {"Content-Type": "application/xml; charset=utf-8"}
ICS = {"Content-Type": "text/calendar; charset=utf-8"}
VCF = {"Content-Type": "text/vcard; charset=utf-8"}
NS = 'xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav" xmlns:a="urn:ietf:params:xml:ns:carddav"'


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module", params=["radicale", "xandikos"])
def sandbox(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> CalDavSandbox:
    root = tmp_path_factory.mktemp(f"dav-{request.param}")
    started = time.perf_counter()
    sb = build_caldav_app(root, backend=request.param)
    assert time.perf_counter() - started < 2.0
    return sb


def as_user(app, user: str):
    """Stand-in for the sandbox front: well-known redirects; drop any client X-Remote-User, set the user's."""

    async def shim(scope, receive, send):
        if scope["type"] == "http" and scope["path"] in ("/.well-known/caldav", "/.well-known/carddav"):
            headers = [(b"location", b"/remote.php/dav/"), (b"content-length", b"0")]
            await send({"type": "http.response.start", "status": 301, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        if scope["type"] == "http":
            headers = [(k, v) for k, v in scope["headers"] if k.lower() not in (b"x-remote-user", b"authorization")]
            scope = {**scope, "headers": [*headers, (b"x-remote-user", user.encode())]}
        await app(scope, receive, send)

    return shim


def client(sandbox: CalDavSandbox, user: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(as_user(sandbox.app, user)), base_url="http://nc.test")


def new_user(sandbox: CalDavSandbox) -> str:
    user = f"u{uuid.uuid4().hex[:10]}"
    sandbox.provision_user(user)
    return user


def multistatus(response: httpx.Response) -> dict[str, dict[str, Element]]:
    """href path -> {property tag: element} for the 200 propstats of a 207 answer."""
    assert response.status_code == 207, (response.status_code, response.text)
    out: dict[str, dict[str, Element]] = {}
    for resp in fromstring(response.content).iter(f"{D}response"):
        href = unquote(urlsplit(resp.findtext(f"{D}href")).path)
        props = out.setdefault(href.rstrip("/") + "/" if not href.endswith((".ics", ".vcf")) else href, {})
        for propstat in resp.iter(f"{D}propstat"):
            if " 200 " in propstat.findtext(f"{D}status", "") + " ":
                for prop in propstat.find(f"{D}prop"):
                    props[prop.tag] = prop
    return out


def href_of(prop: Element) -> str:
    return unquote(prop.findtext(f"{D}href")).rstrip("/") + "/"


async def propfind(c: httpx.AsyncClient, path: str, props: str, depth: str = "0") -> dict[str, dict[str, Element]]:
    body = f'<?xml version="1.0" encoding="utf-8"?><d:propfind {NS}><d:prop>{props}</d:prop></d:propfind>'
    return multistatus(await c.request("PROPFIND", path, headers={**XML, "Depth": depth}, content=body))


def ics(uid: str, component: str = "VEVENT", start: str = "20250610T100000Z", end: str = "20250610T110000Z") -> str:
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//ncmcp tests//EN", f"BEGIN:{component}", f"UID:{uid}"]
    lines += ["DTSTAMP:20250101T000000Z", f"SUMMARY:{component} {uid}"]
    if component == "VEVENT":
        lines += [f"DTSTART:{start}", f"DTEND:{end}"]
    else:
        lines += [f"DUE:{end}"]
    return "\r\n".join([*lines, f"END:{component}", "END:VCALENDAR", ""])


def vcard(uid: str, fn: str) -> str:
    lines = ["BEGIN:VCARD", "VERSION:3.0", f"UID:{uid}", f"FN:{fn}", f"N:{fn};;;;", "END:VCARD", ""]
    return "\r\n".join(lines)


def sabre(response: httpx.Response) -> tuple[str, str, Element]:
    tree = fromstring(response.content)
    assert tree.tag == f"{D}error"
    return tree.findtext(f"{S}exception"), tree.findtext(f"{S}message"), tree


def mkcalendar_body(name: str, components: list[str]) -> str:
    comps = "".join(f'<c:comp name="{c}"/>' for c in components)
    return (
        f'<?xml version="1.0" encoding="utf-8"?><c:mkcalendar {NS}><d:set><d:prop>'
        f"<d:displayname>{name}</d:displayname>"
        f"<c:supported-calendar-component-set>{comps}</c:supported-calendar-component-set>"
        "</d:prop></d:set></c:mkcalendar>"
    )


# ------------------------------------------------------------------------------------


async def test_discovery_and_defaults(sandbox: CalDavSandbox) -> None:
    user = new_user(sandbox)
    layout = sandbox.layout(user)
    async with client(sandbox, user) as c:
        for well_known in ("/.well-known/caldav", "/.well-known/carddav"):
            body = f'<d:propfind {NS}><d:prop><d:current-user-principal/></d:prop></d:propfind>'
            r = await c.request("PROPFIND", well_known, headers={**XML, "Depth": "0"}, content=body)
            assert r.status_code == 301 and r.headers["Location"] == "/remote.php/dav/"
            r = await c.request("PROPFIND", r.headers["Location"], headers={**XML, "Depth": "0"}, content=body)
            root = multistatus(r)
            principal = href_of(root["/remote.php/dav/"][f"{D}current-user-principal"])
            assert principal == layout.principal

        props = await propfind(c, principal, "<c:calendar-home-set/><a:addressbook-home-set/>")
        (found,) = props.values()
        cal_home = href_of(found[f"{C}calendar-home-set"])
        card_home = href_of(found[f"{CARD}addressbook-home-set"])
        assert (cal_home, card_home) == (layout.calendar_home, layout.addressbook_home)

        listing = await propfind(
            c, cal_home, "<d:displayname/><d:resourcetype/><c:supported-calendar-component-set/>", depth="1"
        )
        calendars = {
            href: (p[f"{D}displayname"].text, [x.get("name") for x in p[f"{C}supported-calendar-component-set"]])
            for href, p in listing.items()
            if p.get(f"{D}resourcetype") is not None and p[f"{D}resourcetype"].find(f"{C}calendar") is not None
        }
        assert calendars == {
            layout.calendars["personal"]: ("Personal", ["VEVENT"]),
            layout.calendars["tasks"]: ("Tasks", ["VEVENT", "VTODO"]),
        }

        listing = await propfind(c, card_home, "<d:displayname/><d:resourcetype/>", depth="1")
        books = {
            href: p[f"{D}displayname"].text
            for href, p in listing.items()
            if p.get(f"{D}resourcetype") is not None and p[f"{D}resourcetype"].find(f"{CARD}addressbook") is not None
        }
        assert books == {
            layout.addressbooks["contacts"]: "Contacts",
            layout.addressbooks["z-server-generated--system"]: "Accounts",
        }


async def test_requests_without_user_or_outside_dav(sandbox: CalDavSandbox) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(sandbox.app), base_url="http://nc.test") as c:
        r = await c.request("PROPFIND", "/remote.php/dav/", headers={**XML, "Depth": "0"})
        assert r.status_code == 401
        assert sabre(r)[0] == "Sabre\\DAV\\Exception\\NotAuthenticated"
    async with client(sandbox, "someone") as c:
        assert (await c.get("/index.php/apps/notes/")).status_code == 404


async def test_provision_is_idempotent_and_fast(sandbox: CalDavSandbox) -> None:
    sandbox.provision_user(f"warm{uuid.uuid4().hex[:6]}")  # first one may build a template
    users = [f"p{uuid.uuid4().hex[:8]}" for _ in range(5)]
    started = time.perf_counter()
    for user in users:
        sandbox.provision_user(user)
    per_user = (time.perf_counter() - started) / len(users)
    assert per_user < 0.25, per_user

    user = users[0]
    contacts = sandbox.layout(user).addressbooks["contacts"]
    async with client(sandbox, user) as c:
        r = await c.put(contacts + "keep.vcf", content=vcard("keep", "Keep Me"), headers=VCF)
        assert r.status_code == 201
        sandbox.provision_user(user)
        sandbox.provision_user(user)
        assert (await c.get(contacts + "keep.vcf")).status_code == 200
        listing = await propfind(c, sandbox.layout(user).addressbooks["z-server-generated--system"], "<d:getetag/>", "1")
        assert len([h for h in listing if h.endswith(".vcf")]) == 3  # no duplicates


async def test_first_request_provisions_defaults(sandbox: CalDavSandbox) -> None:
    user = f"lazy{uuid.uuid4().hex[:8]}"  # never provisioned explicitly
    async with client(sandbox, user) as c:
        listing = await propfind(c, sandbox.layout(user).calendar_home, "<d:displayname/>", "1")
        assert sandbox.layout(user).calendars["personal"] in listing


async def test_put_preconditions_and_etags(sandbox: CalDavSandbox) -> None:
    user = new_user(sandbox)
    url = sandbox.layout(user).calendars["personal"] + "e1.ics"
    async with client(sandbox, user) as c:
        r = await c.put(url, content=ics("e1"), headers={**ICS, "If-None-Match": "*"})
        assert r.status_code == 201
        etag1 = r.headers["ETag"]
        assert etag1

        r = await c.put(url, content=ics("e1"), headers={**ICS, "If-None-Match": "*"})
        assert r.status_code == 412
        assert sabre(r)[0] == "Sabre\\DAV\\Exception\\PreconditionFailed"  # Nextcloud's error shape

        r = await c.get(url)
        assert r.status_code == 200 and r.headers["ETag"] == etag1
        assert "UID:e1" in r.text

        changed = ics("e1").replace("SUMMARY:VEVENT e1", "SUMMARY:changed")
        r = await c.put(url, content=changed, headers={**ICS, "If-Match": '"not-the-etag"'})
        assert r.status_code == 412
        assert "If-Match" in sabre(r)[1]
        r = await c.put(url, content=changed, headers={**ICS, "If-Match": etag1})
        assert r.status_code in (200, 204)
        etag2 = r.headers["ETag"]
        assert etag2 and etag2 != etag1
        r = await c.get(url)
        assert r.headers["ETag"] == etag2 and "SUMMARY:changed" in r.text

        r = await c.delete(url, headers={"If-Match": etag1})
        assert r.status_code == 412
        r = await c.delete(url, headers={"If-Match": etag2})
        assert r.status_code in (200, 204)
        r = await c.get(url)
        assert r.status_code == 404 and sabre(r)[0] == "Sabre\\DAV\\Exception\\NotFound"


async def test_vtodo_rejected_by_vevent_only_calendar(sandbox: CalDavSandbox) -> None:
    user = new_user(sandbox)
    layout = sandbox.layout(user)
    async with client(sandbox, user) as c:
        url = layout.calendars["personal"] + "t1.ics"
        r = await c.put(url, content=ics("t1", "VTODO"), headers={**ICS, "If-None-Match": "*"})
        assert r.status_code == 403
        assert r.headers["Content-Type"].startswith("application/xml")
        exception, message, tree = sabre(r)
        assert exception == "Sabre\\CalDAV\\Exception\\InvalidComponentType"  # a Sabre Forbidden
        assert message == "iCalendar objects must at least have a component of type VEVENT"
        assert tree.find(f"{C}supported-calendar-component") is not None
        assert (await c.get(url)).status_code == 404

        # without a Content-Type the body still decides
        r = await c.put(url, content=ics("t1", "VTODO").encode())
        assert r.status_code == 403

        r = await c.put(layout.calendars["tasks"] + "t1.ics", content=ics("t1", "VTODO"), headers=ICS)
        assert r.status_code == 201
        r = await c.put(layout.calendars["personal"] + "e1.ics", content=ics("e1"), headers=ICS)
        assert r.status_code == 201
        tz = "BEGIN:VTIMEZONE\r\nTZID:UTC\r\nBEGIN:STANDARD\r\nDTSTART:19700101T000000\r\nTZOFFSETFROM:+0000\r\n"
        tz += "TZOFFSETTO:+0000\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n"
        with_tz = ics("e2").replace("BEGIN:VEVENT", tz + "BEGIN:VEVENT", 1)
        r = await c.put(layout.calendars["personal"] + "e2.ics", content=with_tz, headers=ICS)
        assert r.status_code == 201  # VTIMEZONE does not count as a component type

        # a user's cached answer never applies to someone else's path
        other = new_user(sandbox)
        async with client(sandbox, other) as o:
            r = await o.put(layout.calendars["personal"] + "x.ics", content=ics("x", "VTODO"), headers=ICS)
            assert r.status_code == 403 and b"InvalidComponentType" not in r.content


async def test_mkcalendar_components_and_cache_invalidation(sandbox: CalDavSandbox) -> None:
    user = new_user(sandbox)
    team = sandbox.layout(user).calendar_home + "team/"
    async with client(sandbox, user) as c:
        r = await c.request("MKCALENDAR", team, headers=XML, content=mkcalendar_body("Team", ["VEVENT"]))
        assert r.status_code == 201
        props = await propfind(c, team, "<d:displayname/><c:supported-calendar-component-set/>")
        assert [x.get("name") for x in props[team][f"{C}supported-calendar-component-set"]] == ["VEVENT"]
        assert props[team][f"{D}displayname"].text == "Team"

        r = await c.put(team + "t.ics", content=ics("t", "VTODO"), headers=ICS)
        assert r.status_code == 403  # cached now: the calendar is VEVENT only

        assert (await c.delete(team)).status_code in (200, 204)
        r = await c.request("MKCALENDAR", team, headers=XML, content=mkcalendar_body("Team", ["VEVENT", "VTODO"]))
        assert r.status_code == 201
        r = await c.put(team + "t.ics", content=ics("t", "VTODO"), headers=ICS)
        assert r.status_code == 201  # the cache was dropped with the old calendar

        # MKCALENDAR without a body-less content-type: the layer adds it (Xandikos needs it)
        r = await c.request("MKCALENDAR", team.rstrip("/") + "2/", content=mkcalendar_body("Two", ["VTODO"]))
        assert r.status_code == 201
        r = await c.put(team.rstrip("/") + "2/e.ics", content=ics("e"), headers=ICS)
        assert r.status_code == 403
        assert sabre(r)[1] == "iCalendar objects must at least have a component of type VTODO"


async def test_component_set_is_read_once_per_collection(
    sandbox: CalDavSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = new_user(sandbox)
    personal = sandbox.layout(user).calendars["personal"]
    seen: list[str] = []
    real_wsgi = sandbox.backend.wsgi

    def counting(environ, start_response):
        seen.append(environ["REQUEST_METHOD"])
        return real_wsgi(environ, start_response)

    monkeypatch.setattr(sandbox.backend, "wsgi", counting)
    async with client(sandbox, user) as c:
        for name in ("a", "b"):
            assert (await c.put(personal + f"{name}.ics", content=ics(name, "VTODO"), headers=ICS)).status_code == 403
        assert seen == ["PROPFIND"]  # one internal read, then the cache; the 403s never reach the server
        body = f'<d:propertyupdate {NS}><d:set><d:prop><d:displayname>P</d:displayname></d:prop></d:set></d:propertyupdate>'
        assert (await c.request("PROPPATCH", personal, headers=XML, content=body)).status_code == 207
        assert (await c.put(personal + "c.ics", content=ics("c"), headers=ICS)).status_code == 201
        assert seen == ["PROPFIND", "PROPPATCH", "PROPFIND", "PUT"]  # PROPPATCH dropped the entry


async def test_proppatch_drops_cached_components(sandbox: CalDavSandbox) -> None:
    user = new_user(sandbox)
    personal = sandbox.layout(user).calendars["personal"]
    async with client(sandbox, user) as c:
        assert (await c.put(personal + "t.ics", content=ics("t", "VTODO"), headers=ICS)).status_code == 403
        body = (
            f'<?xml version="1.0" encoding="utf-8"?><d:propertyupdate {NS}><d:set><d:prop>'
            '<c:supported-calendar-component-set><c:comp name="VEVENT"/><c:comp name="VTODO"/>'
            "</c:supported-calendar-component-set></d:prop></d:set></d:propertyupdate>"
        )
        r = await c.request("PROPPATCH", personal, headers=XML, content=body)
        assert r.status_code == 207
        props = await propfind(c, personal, "<c:supported-calendar-component-set/>")
        now = [x.get("name") for x in props[personal][f"{C}supported-calendar-component-set"]]
        expected = 201 if "VTODO" in now else 403  # the layer follows whatever the server stored
        assert (await c.put(personal + "t.ics", content=ics("t", "VTODO"), headers=ICS)).status_code == expected


async def test_calendar_query_time_range(sandbox: CalDavSandbox) -> None:
    user = new_user(sandbox)
    personal = sandbox.layout(user).calendars["personal"]
    async with client(sandbox, user) as c:
        for uid, start, end in [("june10", "20250610T100000Z", "20250610T110000Z"), ("june20", "20250620T100000Z", "20250620T110000Z")]:
            r = await c.put(personal + f"{uid}.ics", content=ics(uid, start=start, end=end), headers=ICS)
            assert r.status_code == 201

        async def query(start: str, end: str) -> set[str]:
            body = (
                f'<?xml version="1.0" encoding="utf-8"?><c:calendar-query {NS}><d:prop><d:getetag/></d:prop>'
                '<c:filter><c:comp-filter name="VCALENDAR"><c:comp-filter name="VEVENT">'
                f'<c:time-range start="{start}" end="{end}"/></c:comp-filter></c:comp-filter></c:filter>'
                "</c:calendar-query>"
            )
            r = await c.request("REPORT", personal, headers={**XML, "Depth": "1"}, content=body)
            return {h.rsplit("/", 1)[1] for h in multistatus(r) if h.endswith(".ics")}

        assert await query("20250610T000000Z", "20250611T000000Z") == {"june10.ics"}
        assert await query("20250601T000000Z", "20250701T000000Z") == {"june10.ics", "june20.ics"}
        assert await query("20250701T000000Z", "20250801T000000Z") == set()


async def test_extended_mkcol_addressbook_and_query(sandbox: CalDavSandbox) -> None:
    user = new_user(sandbox)
    book = sandbox.layout(user).addressbook_home + "friends/"
    async with client(sandbox, user) as c:
        body = (
            f'<?xml version="1.0" encoding="utf-8"?><d:mkcol {NS}><d:set><d:prop>'
            "<d:resourcetype><d:collection/><a:addressbook/></d:resourcetype>"
            "<d:displayname>Friends</d:displayname></d:prop></d:set></d:mkcol>"
        )
        r = await c.request("MKCOL", book, headers=XML, content=body)
        assert r.status_code == 201
        props = await propfind(c, book, "<d:resourcetype/><d:displayname/>")
        assert props[book][f"{D}resourcetype"].find(f"{CARD}addressbook") is not None
        assert props[book][f"{D}displayname"].text == "Friends"

        r = await c.put(book + "ada.vcf", content=vcard("ada", "Ada Lovelace"), headers={**VCF, "If-None-Match": "*"})
        assert r.status_code == 201 and r.headers["ETag"]
        r = await c.put(book + "alan.vcf", content=vcard("alan", "Alan Turing"), headers=VCF)
        assert r.status_code == 201

        async def query(text: str) -> set[str]:
            body = (
                f'<?xml version="1.0" encoding="utf-8"?><a:addressbook-query {NS}>'
                "<d:prop><d:getetag/><a:address-data/></d:prop>"
                f'<a:filter><a:prop-filter name="FN"><a:text-match collation="i;unicode-casemap" '
                f'match-type="contains">{text}</a:text-match></a:prop-filter></a:filter></a:addressbook-query>'
            )
            r = await c.request("REPORT", book, headers={**XML, "Depth": "1"}, content=body)
            return {h.rsplit("/", 1)[1] for h in multistatus(r) if h.endswith(".vcf")}

        assert await query("lovelace") == {"ada.vcf"}
        assert await query("a") == {"ada.vcf", "alan.vcf"}
        assert await query("Hopper") == set()


async def test_system_addressbook_is_read_only(sandbox: CalDavSandbox) -> None:
    user = new_user(sandbox)
    layout = sandbox.layout(user)
    system = layout.addressbooks["z-server-generated--system"]
    async with client(sandbox, user) as c:
        listing = await propfind(c, system, "<d:getetag/>", "1")
        cards = sorted(h.rsplit("/", 1)[1] for h in listing if h.endswith(".vcf"))
        assert cards == sorted([f"{user}.vcf", "admin.vcf", "support.vcf"])
        r = await c.get(system + f"{user}.vcf")
        assert r.status_code == 200 and f"UID:{user}" in r.text
        etag = r.headers["ETag"]

        async def forbidden(response: httpx.Response) -> None:
            assert response.status_code == 403, (response.status_code, response.text)
            exception, message, _ = sabre(response)
            assert exception == "Sabre\\DAVACL\\Exception\\NeedPrivileges"
            assert "required privileges" in message

        await forbidden(await c.put(system + "new.vcf", content=vcard("new", "New"), headers=VCF))
        await forbidden(await c.put(system + f"{user}.vcf", content=vcard(user, "X"), headers={**VCF, "If-Match": etag}))
        await forbidden(await c.delete(system + "admin.vcf"))
        await forbidden(await c.delete(system))
        body = f'<d:propertyupdate {NS}><d:set><d:prop><d:displayname>Mine</d:displayname></d:prop></d:set></d:propertyupdate>'
        await forbidden(await c.request("PROPPATCH", system, headers=XML, content=body))
        await forbidden(await c.request("MKCOL", system + "sub/"))
        contacts = layout.addressbooks["contacts"]
        assert (await c.put(contacts + "m.vcf", content=vcard("m", "Mover"), headers=VCF)).status_code == 201
        await forbidden(
            await c.request("MOVE", contacts + "m.vcf", headers={"Destination": f"http://nc.test{system}m.vcf"})
        )
        listing = await propfind(c, system, "<d:getetag/>", "1")
        assert len([h for h in listing if h.endswith(".vcf")]) == 3
        assert (await c.get(system + "admin.vcf")).status_code == 200

        privileges = await propfind(c, layout.addressbook_home, "<d:current-user-privilege-set/>", "1")

        def names(href: str) -> set[str]:
            privset = privileges[href][f"{D}current-user-privilege-set"]
            return {child.tag for p in privset.iter(f"{D}privilege") for child in p}

        assert f"{D}read" in names(system)
        assert not names(system) & {f"{D}write", f"{D}all", f"{D}write-content", f"{D}bind"}
        assert names(contacts) & {f"{D}write", f"{D}all"}


async def test_users_cannot_reach_each_other(sandbox: CalDavSandbox) -> None:
    alice, bob = new_user(sandbox), new_user(sandbox)
    alice_layout = sandbox.layout(alice)
    event = alice_layout.calendars["personal"] + "secret.ics"
    async with client(sandbox, alice) as a, client(sandbox, bob) as b:
        assert (await a.put(event, content=ics("secret"), headers=ICS)).status_code == 201

        r = await b.get(event)
        assert r.status_code == 403
        assert sabre(r)[0] == "Sabre\\DAV\\Exception\\Forbidden"
        r = await b.request("PROPFIND", alice_layout.calendar_home, headers={**XML, "Depth": "1"})
        assert r.status_code == 403
        body = (
            f'<c:calendar-query {NS}><d:prop><d:getetag/></d:prop><c:filter>'
            '<c:comp-filter name="VCALENDAR"/></c:filter></c:calendar-query>'
        )
        r = await b.request("REPORT", alice_layout.calendars["personal"], headers={**XML, "Depth": "1"}, content=body)
        assert r.status_code == 403
        assert (await b.put(event, content=ics("secret", start="20300101T000000Z"), headers=ICS)).status_code == 403
        assert (await b.delete(event)).status_code == 403

        r = await a.get(event)
        assert r.status_code == 200 and "20250610T100000Z" in r.text
        # bob's own discovery never mentions alice
        root = await propfind(b, "/remote.php/dav/", "<d:current-user-principal/>", "1")
        assert all(alice not in href for href in root)


@pytest.fixture
def live_server(sandbox: CalDavSandbox) -> Iterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    user = "live"
    config = uvicorn.Config(as_user(sandbox.app, user), log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.started
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(5)
        sock.close()


async def test_over_real_http(sandbox: CalDavSandbox, live_server: str) -> None:
    async with httpx.AsyncClient(base_url=live_server) as c:
        root = await propfind(c, "/remote.php/dav/", "<d:current-user-principal/>")
        principal = href_of(root["/remote.php/dav/"][f"{D}current-user-principal"])
        (home,) = (await propfind(c, principal, "<c:calendar-home-set/>")).values()
        personal = href_of(home[f"{C}calendar-home-set"]) + "personal/"
        r = await c.put(personal + "live.ics", content=ics("live"), headers={**ICS, "If-None-Match": "*"})
        assert r.status_code == 201
        assert (await c.get(personal + "live.ics")).headers["ETag"] == r.headers["ETag"]
        assert (await c.put(personal + "todo.ics", content=ics("todo", "VTODO"), headers=ICS)).status_code == 403


async def test_object_names_with_special_characters_round_trip(sandbox: CalDavSandbox, live_server: str) -> None:
    """Over real HTTP (the ASGI path is decoded, the raw path is not): '#', '%', '+', '&', space and
    non-ASCII names are stored under their own name on both backends."""
    async with httpx.AsyncClient(base_url=live_server) as c:
        root = await propfind(c, "/remote.php/dav/", "<d:current-user-principal/>")
        principal = href_of(root["/remote.php/dav/"][f"{D}current-user-principal"])
        (home,) = (await propfind(c, principal, "<c:calendar-home-set/>")).values()
        personal = href_of(home[f"{C}calendar-home-set"]) + "personal/"
        names = ["%C3%BC.ics", "a%23b.ics", "c%20d.ics", "e%25f%2B1%26.ics"]
        for name in names:
            assert (await c.put(personal + name, content=ics(name), headers=ICS)).status_code == 201
            assert (await c.get(personal + name)).status_code == 200
        listed = await propfind(c, personal, "<d:getetag/>", depth="1")
        assert {h for h in listed if h.endswith(".ics")} >= {personal + unquote(n) for n in names}  # keys are decoded
