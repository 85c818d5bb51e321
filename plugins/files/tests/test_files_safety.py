"""Safety: paths cannot leave the user's root, user values cannot break the XML, concurrent writers
never lose data, and the server's refusals (423, 507, 412, 409) are clear tool errors."""

from __future__ import annotations

import json
from urllib.parse import quote

import anyio
import httpx
import ncmcp_files.plugin as files_plugin
import pytest
from files_helpers import fails, ok

pytestmark = pytest.mark.anyio
WRITE = "nc_files_write_file"

ESCAPES = [
    "..", "../etc/passwd", "a/../../b", "a/..", "/..", "./../x", "Docs/../../other-user/secret",
    "a\\..\\b", "..\\windows", "a\x00b", "a\r\nX-Injected: 1", "name\nwith newline", "tab\there", "del\x7f", "c1\x85nel",
    # encoded on purpose: a proxy that decodes twice must not see a traversal or a separator
    "%2e%2e/etc", "a/%2E%2E", "%252e%252e/x", "..%2f..%2fadmin", "a%2Fb", "a%5cb", "x%00y", "%0d%0aX-Injected:%201",
]
# Names that must round-trip exactly (encoded on the way out, hrefs decoded on the way in).
ODD_NAMES = [" spaced  name ", "#hash", "50% off", "100%_done", "%41%42", "what?", "a+b=c", "semi;colon,comma", "ünï©ødé",
             "emoji 🎉", "quote\"d 'single'", "<tag>&amp;", "日本語.txt", "...", ".hidden"]


def conflict_of(result: object) -> tuple[str, dict]:
    text = result.content[0].text  # type: ignore[attr-defined]
    details = json.loads(text.splitlines()[-1])
    assert result.is_error and details["error"] == "conflict", text  # type: ignore[attr-defined]
    return text, details


def allowed_paths(user: str) -> tuple[str, ...]:
    return (f"/remote.php/dav/files/{user}/", f"/remote.php/dav/files/{user}", f"/remote.php/dav/uploads/{user}/",
            f"/remote.php/dav/trashbin/{user}/", f"/remote.php/dav/versions/{user}/", "/remote.php/dav/",
            "/remote.php/dav", "/ocs/", "/status.php")


async def test_escape_attempts_are_refused_before_any_request(http_host, sandbox, sandbox_user) -> None:
    calls = [(tool, args) for bad in ESCAPES for tool, args in [
        ("nc_files_read_file", {"path": bad}), (WRITE, {"path": bad, "content": "x"}),
        ("nc_files_move", {"source": "x.txt", "destination": bad}), ("nc_files_copy", {"source": bad, "destination": "y.txt"}),
        ("nc_files_search", {"name": "x", "folder": bad}), ("nc_files_delete", {"path": bad}),
        ("nc_files_list_versions", {"path": bad}), ("nc_files_set_favorite", {"path": bad})]]
    async with http_host(plugins=[files_plugin]) as host:
        await ok(host, "nc_files_list_directory", {})  # the host has resolved the user: later calls only touch files
        sandbox.reset_stats()

        async def refused(tool: str, args: dict) -> None:
            text, _ = await fails(host, tool, args, "invalid_argument")
            assert any(why in text for why in ("'..'", "control character", "backslash", "percent-encoded")), (tool, args, text)

        async def refused_resource(bad: str) -> None:
            with pytest.raises(Exception, match="'..'|control character|backslash|percent-encoded"):
                await host.client.read_resource("nc://files/" + quote(bad, safe=""))

        async with anyio.create_task_group() as tg:  # independent calls: run them side by side
            for tool, args in calls:
                tg.start_soon(refused, tool, args)
            for bad in ESCAPES:
                tg.start_soon(refused_resource, bad)
        assert sandbox.stats()["by_user"].get(sandbox_user[0], 0) == 0


async def test_odd_names_round_trip_and_no_request_leaves_the_root(http_host, sandbox, sandbox_user) -> None:
    user = sandbox_user[0]
    async with http_host(plugins=[files_plugin]) as host:
        sandbox.reset_stats()
        await ok(host, "nc_files_create_directory", {"path": "odd"})

        async def write_and_read(name: str) -> None:
            written = await ok(host, WRITE, {"path": f"odd/{name}", "content": name})
            assert written["entry"]["name"] == name and written["entry"]["path"] == f"odd/{name}"
            assert (await ok(host, "nc_files_read_file", {"path": f"odd/{name}", "mode": "text"}))["text"] == name

        async def look_up(name: str) -> None:
            assert (await ok(host, "nc_files_get_file_info", {"path": f"odd/{name}"}))["name"] == name
            found = await ok(host, "nc_files_find_by_name", {"pattern": name.strip(), "folder": "odd"})
            assert name in [e["name"] for e in found["results"]], name

        async with anyio.create_task_group() as tg:
            for name in ODD_NAMES:
                tg.start_soon(write_and_read, name)
        listing = await ok(host, "nc_files_list_directory", {"path": "odd", "limit": 100})
        assert sorted(e["name"] for e in listing["entries"]) == sorted(ODD_NAMES)
        async with anyio.create_task_group() as tg:
            for name in ODD_NAMES:
                tg.start_soon(look_up, name)
        moved = await ok(host, "nc_files_move", {"source": "odd/#hash", "destination": "odd/50% off ?#.txt"})
        assert moved["entry"]["name"] == "50% off ?#.txt"
        # URL-looking and absolute paths stay inside the root.
        inside = await ok(host, WRITE, {"path": "http://evil.example/x", "content": "x", "create_parents": True})
        assert inside["entry"]["path"] == "http:/evil.example/x"
        rooted = await ok(host, WRITE, {"path": "/etc/passwd", "content": "x", "create_parents": True})
        assert rooted["entry"]["path"] == "etc/passwd"
        for key in sandbox.stats()["requests"]:
            method, _, path = key.partition(" ")
            assert path.startswith(allowed_paths(user)), key
            assert "\r" not in path and "\n" not in path


async def test_search_values_are_escaped_in_one_place(http_host) -> None:
    names = ["a&b", "x<y>z", "]]>", "&amp;", "<!ENTITY e SYSTEM 'passwd'>&e;", "' or ''='",
             "\" and \"", "tab-free “quotes” ‘too’", "ж & Ж", "😀<&>😀"]
    async with http_host(plugins=[files_plugin]) as host:
        await ok(host, WRITE, {"path": "s/plain.txt", "content": "x", "create_parents": True})

        async def write(name: str) -> None:
            await ok(host, WRITE, {"path": f"s/{name}.txt", "content": "x"})

        async def search(name: str) -> None:
            found = await ok(host, "nc_files_search", {"name": f"{name}.txt", "folder": "s"})
            assert [e["name"] for e in found["results"]] == [f"{name}.txt"], name
            found = await ok(host, "nc_files_search", {"name": name, "mime_type": "text/plain", "type": "file"})
            assert f"{name}.txt" in [e["name"] for e in found["results"]], name

        for step in (write, search):
            async with anyio.create_task_group() as tg:
                for name in names:
                    tg.start_soon(step, name)


async def test_concurrent_writers_one_wins_the_others_get_the_current_etag(http_host) -> None:
    async with http_host(plugins=[files_plugin]) as host:
        results: dict[int, object] = {}

        async def create(i: int) -> None:
            results[i] = await host.call(WRITE, {"path": "race.txt", "content": f"writer {i}"})

        async with anyio.create_task_group() as tg:
            for i in range(8):
                tg.start_soon(create, i)
        winners = [i for i, r in results.items() if not r.is_error]
        assert len(winners) == 1, [r.content[0].text for r in results.values()]
        winner_etag = results[winners[0]].structured_content["entry"]["etag"]
        for i, result in results.items():
            if i not in winners:
                text, details = conflict_of(result)
                assert "already exists" in text and details["current_etag"] == winner_etag
        assert (await ok(host, "nc_files_read_file", {"path": "race.txt"}))["text"] == f"writer {winners[0]}"

        # Everyone read the same version; each tries to replace it.
        updates: dict[int, object] = {}

        async def update(i: int) -> None:
            updates[i] = await host.call(WRITE, {"path": "race.txt", "content": f"update {i}", "etag": winner_etag})

        async with anyio.create_task_group() as tg:
            for i in range(6):
                tg.start_soon(update, i)
        won = [i for i, r in updates.items() if not r.is_error]
        assert len(won) == 1
        current = await ok(host, "nc_files_read_file", {"path": "race.txt"})
        assert current["text"] == f"update {won[0]}"
        for i, result in updates.items():
            if i not in won:
                text, details = conflict_of(result)
                assert "changed since you read it" in text
                assert details["current_etag"] == current["entry"]["etag"]  # the conflict names the current version


async def test_locked_quota_and_missing_parent_are_clear_errors(http_host, sandbox, sandbox_user) -> None:
    user, password = sandbox_user
    async with http_host(plugins=[files_plugin]) as host:
        entry = (await ok(host, WRITE, {"path": "held.txt", "content": "v1"}))["entry"]
        # A real WebDAV lock taken by another client (e.g. an office editor).
        lock_body = ('<?xml version="1.0"?><d:lockinfo xmlns:d="DAV:"><d:lockscope><d:exclusive/></d:lockscope>'
                     '<d:locktype><d:write/></d:locktype><d:owner>editor</d:owner></d:lockinfo>')
        async with httpx.AsyncClient(base_url=sandbox.url, auth=(user, password)) as other:
            locked = await other.request("LOCK", f"/remote.php/dav/files/{user}/held.txt", content=lock_body,
                                         headers={"Depth": "0", "Timeout": "Second-60"})
            assert locked.status_code == 200
            text, details = await fails(host, WRITE, {"path": "held.txt", "content": "v2", "etag": entry["etag"]}, "locked")
            assert "locked" in text.lower()
            await fails(host, "nc_files_delete", {"path": "held.txt"}, "locked")
            token = locked.headers["Lock-Token"]
            unlocked = await other.request("UNLOCK", f"/remote.php/dav/files/{user}/held.txt", headers={"Lock-Token": token})
            assert unlocked.is_success
        await ok(host, WRITE, {"path": "held.txt", "content": "v2", "etag": entry["etag"]})

        sandbox.add_fault(path=f"/remote.php/dav/files/{user}/full.bin", status=507, method="PUT", times=1)
        try:
            text, _ = await fails(host, WRITE, {"path": "full.bin", "content": "x"}, "quota_exceeded")
            assert "quota" in text.lower()
        finally:
            sandbox.clear_faults()
        await fails(host, "nc_files_get_file_info", {"path": "full.bin"}, "not_found")  # nothing half-written

        text, _ = await fails(host, "nc_files_copy", {"source": "held.txt", "destination": "missing/dir/c.txt"}, "not_found")
        assert "'missing/dir' does not exist" in text
