"""The sandbox's Notes API and OCS follow the published API (raw HTTP, no ncmcp code in between)."""

from __future__ import annotations

import httpx
import pytest

API = "/index.php/apps/notes/api/v1"


@pytest.fixture
def nc(sandbox, sandbox_user):  # noqa: ANN001, ANN201
    user, password = sandbox_user
    with httpx.Client(base_url=sandbox.url, auth=(user, password), headers={"OCS-APIRequest": "true"}) as client:
        yield client


def test_quoted_etags_412_with_current_note_and_304(nc: httpx.Client) -> None:
    created = nc.post(f"{API}/notes", json={"title": "A", "content": "x"})
    assert created.status_code == 200  # the Notes API answers 200, not 201
    note = created.json()
    got = nc.get(f"{API}/notes/{note['id']}")
    assert got.headers["ETag"] == f'"{note["etag"]}"' and got.headers["X-Notes-API-Versions"]
    assert nc.get(f"{API}/notes/{note['id']}", headers={"If-None-Match": got.headers["ETag"]}).status_code == 304
    ok = nc.put(f"{API}/notes/{note['id']}", json={"content": "y"}, headers={"If-Match": f'"{note["etag"]}"'})
    assert ok.status_code == 200 and ok.json()["etag"] != note["etag"]
    stale = nc.put(f"{API}/notes/{note['id']}", json={"content": "z"}, headers={"If-Match": f'"{note["etag"]}"'})
    assert stale.status_code == 412 and stale.json()["content"] == "y" and stale.json()["etag"] == ok.json()["etag"]
    unquoted = nc.put(f"{API}/notes/{note['id']}", json={"content": "z"}, headers={"If-Match": ok.json()["etag"]})
    assert unquoted.status_code == 412  # the value must be the quoted etag
    assert nc.delete(f"{API}/notes/{note['id']}").json() == []
    missing = nc.get(f"{API}/notes/{note['id']}")
    assert missing.status_code == 404 and missing.json() == {"errorType": "Exception"}


def test_chunked_listing_with_cursor_and_stubs_only_on_the_last_chunk(nc: httpx.Client) -> None:
    ids = [nc.post(f"{API}/notes", json={"title": f"T{i}", "content": "c", "modified": 1000 + i}).json()["id"] for i in range(5)]
    first = nc.get(f"{API}/notes", params={"chunkSize": 2, "exclude": "content", "pruneBefore": 1002})
    assert [n["id"] for n in first.json()] == ids[2:4] and "content" not in first.json()[0]
    assert first.headers["X-Notes-Chunk-Pending"] == "1"
    last = nc.get(f"{API}/notes", params={"chunkSize": 2, "pruneBefore": 1002, "chunkCursor": first.headers["X-Notes-Chunk-Cursor"]})
    body = last.json()
    assert [n["id"] for n in body] == [ids[4], ids[0], ids[1]] and body[1] == {"id": ids[0]}
    assert "X-Notes-Chunk-Cursor" not in last.headers
    etag = last.headers["ETag"]
    again = nc.get(f"{API}/notes", params={"chunkSize": 2, "pruneBefore": 1002, "chunkCursor": first.headers["X-Notes-Chunk-Cursor"]},
                   headers={"If-None-Match": etag})
    assert again.status_code == 304


def test_category_filter_title_clash_and_settings(nc: httpx.Client) -> None:
    a = nc.post(f"{API}/notes", json={"title": "Same", "category": "Work/Plans"}).json()
    b = nc.post(f"{API}/notes", json={"title": "Same", "category": "Work/Plans"}).json()
    assert a["title"] == "Same" and b["title"] != "Same"
    assert {n["id"] for n in nc.get(f"{API}/notes", params={"category": "Work/Plans"}).json()} == {a["id"], b["id"]}
    assert nc.get(f"{API}/settings").json()["notesPath"] == "Notes"
    assert nc.put(f"{API}/settings", json={"fileSuffix": ".md"}).json()["fileSuffix"] == ".md"
    assert nc.get(f"{API}/unknown-route").status_code == 400


def test_csrf_and_cors_rules(sandbox, sandbox_user, idp=None) -> None:  # noqa: ANN001
    user, password = sandbox_user
    no_header = httpx.get(f"{sandbox.url}{API}/notes", auth=(user, password))
    assert no_header.status_code == 412 and no_header.json()["message"] == "CSRF check failed"
    assert httpx.get(f"{sandbox.url}{API}/notes", auth=(user, "wrong"), headers={"OCS-APIRequest": "true"}).status_code == 401


def test_ocs_envelope_capabilities_and_status(nc: httpx.Client, sandbox_user) -> None:  # noqa: ANN001
    me = nc.get("/ocs/v2.php/cloud/user", params={"format": "json"}).json()["ocs"]
    assert me["meta"]["statuscode"] == 200 and me["data"]["id"] == sandbox_user[0]
    caps = httpx.get(f"{nc.base_url}/ocs/v2.php/cloud/capabilities").json()["ocs"]["data"]  # anonymous
    assert caps["capabilities"]["notes"]["api_version"] and caps["version"]["major"] >= 30
    assert httpx.get(f"{nc.base_url}/status.php").json()["installed"] is True


def test_unified_search_provider(nc: httpx.Client) -> None:
    note = nc.post(f"{API}/notes", json={"title": "Find me", "content": "a unique-word here"}).json()
    data = nc.get("/ocs/v2.php/search/providers/notes/search", params={"term": "unique-word", "format": "json"}).json()["ocs"]["data"]
    assert data["isPaginated"] is False
    assert [e["resourceUrl"].rsplit("/", 1)[-1] for e in data["entries"]] == [str(note["id"])]


def test_faults_and_counters(sandbox, nc: httpx.Client) -> None:  # noqa: ANN001
    sandbox.reset_stats()
    sandbox.add_fault(path=f"{API}/notes", status=429, retry_after="3", times=1)
    try:
        limited = nc.get(f"{API}/notes")
        assert limited.status_code == 429 and limited.headers["Retry-After"] == "3"
        assert nc.get(f"{API}/notes").status_code == 200  # times=1
        sandbox.add_fault(path="/", status=503, maintenance=True)
        down = nc.get(f"{API}/notes")
        assert down.status_code == 503 and down.headers["X-Nextcloud-Maintenance-Mode"] == "1"
        assert httpx.get(f"{nc.base_url}/status.php").json()["maintenance"] is True
    finally:
        sandbox.clear_faults()
    assert nc.get(f"{API}/notes").status_code == 200
    assert sandbox.stats()["requests"][f"GET {API}/notes"] >= 4


def test_attachments(nc: httpx.Client) -> None:
    note = nc.post(f"{API}/notes", json={"title": "With picture"}).json()
    up = nc.post(f"/index.php/apps/notes/api/v1.4/attachment/{note['id']}", files={"file": ("p.png", b"\x89PNG..", "image/png")})
    name = up.json()["filename"]
    got = nc.get(f"/index.php/apps/notes/api/v1.4/attachment/{note['id']}", params={"path": f".attachments.{note['id']}/{name}"})
    assert got.content == b"\x89PNG.." and got.headers["content-type"] == "image/png"
