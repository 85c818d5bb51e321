"""The Notes tools against the sandbox's Notes API, in process (fast), through the official client."""

from __future__ import annotations

import json

import anyio
import pytest

import ncmcp_notes.plugin as notes_plugin
from ncmcp.testing import assert_plugin_contract

pytestmark = pytest.mark.anyio


def test_contract() -> None:
    assert_plugin_contract(notes_plugin)


async def test_create_get_update_with_conflict(make_host) -> None:
    async with make_host(plugins=[notes_plugin]) as host:
        created = (await host.call("nc_notes_create_note", {"title": "Plan", "content": "one", "category": "Work"})).structured_content
        assert created["title"] == "Plan" and created["category"] == "Work" and created["etag"]
        got = (await host.call("nc_notes_get_note", {"note_id": created["id"]})).structured_content
        assert got["content"] == "one" and got["etag"] == created["etag"]

        updated = await host.call("nc_notes_update_note", {"note_id": got["id"], "etag": got["etag"], "content": ""})
        assert not updated.is_error and updated.structured_content["content"] == ""  # empty content is valid

        stale = await host.call("nc_notes_update_note", {"note_id": got["id"], "etag": got["etag"], "content": "lost?"})
        assert stale.is_error
        text = stale.content[0].text
        assert "changed since it was read" in text
        assert json.loads(text.splitlines()[-1])["current_etag"] == updated.structured_content["etag"]
        still = (await host.call("nc_notes_get_note", {"note_id": got["id"]})).structured_content
        assert still["content"] == ""  # the stale write did not land


async def test_concurrent_appends_are_never_lost(make_host) -> None:
    async with make_host(plugins=[notes_plugin]) as host:
        note = (await host.call("nc_notes_create_note", {"title": "Log", "content": "start"})).structured_content
        async with anyio.create_task_group() as tg:
            for i in range(8):
                tg.start_soon(host.call, "nc_notes_append_content", {"note_id": note["id"], "content": f"line {i}"})
        final = (await host.call("nc_notes_get_note", {"note_id": note["id"]})).structured_content["content"]
        assert sorted(final.splitlines()) == sorted(["start", *(f"line {i}" for i in range(8))])


async def test_list_paging_search_categories_delete(make_host) -> None:
    async with make_host(plugins=[notes_plugin]) as host:
        ids = []
        for i in range(7):
            n = await host.call("nc_notes_create_note", {"title": f"N{i}", "content": f"body {i} {'kiwi' if i % 2 else ''}",
                                                          "category": "A" if i < 4 else "B"})
            ids.append(n.structured_content["id"])
        seen, cursor = [], None
        while True:
            page = (await host.call("nc_notes_list_notes", {"limit": 3, **({"cursor": cursor} if cursor else {})})).structured_content
            assert len(page["notes"]) <= 3 and all("content" not in n for n in page["notes"])
            seen += [n["id"] for n in page["notes"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert sorted(seen) == sorted(ids)
        only_b = (await host.call("nc_notes_list_notes", {"category": "B"})).structured_content["notes"]
        assert {n["title"] for n in only_b} == {"N4", "N5", "N6"}

        found = (await host.call("nc_notes_search_notes", {"query": "kiwi"})).structured_content
        assert found["method"] == "unified_search"
        assert {r["id"] for r in found["results"]} == {ids[1], ids[3], ids[5]}

        cats = (await host.call("nc_notes_list_categories")).structured_content["categories"]
        assert cats == [{"name": "A", "notes": 4}, {"name": "B", "notes": 3}]

        note = (await host.call("nc_notes_get_note", {"note_id": ids[0]})).structured_content
        refused = await host.call("nc_notes_delete_note", {"note_id": ids[0], "etag": "stale"})
        assert refused.is_error and "changed" in refused.content[0].text
        assert not (await host.call("nc_notes_delete_note", {"note_id": ids[0], "etag": note["etag"]})).is_error
        missing = await host.call("nc_notes_get_note", {"note_id": ids[0]})
        assert missing.is_error and "does not exist" in missing.content[0].text


async def test_invalid_arguments_are_refused_before_nextcloud(make_host, sandbox) -> None:
    async with make_host(plugins=[notes_plugin]) as host:
        sandbox.reset_stats()
        bad = await host.call("nc_notes_get_note", {"note_id": "12; DROP"})
        assert bad.is_error and "Invalid arguments" in bad.content[0].text
        extra = await host.call("nc_notes_create_note", {"title": "x", "unexpected": 1})
        assert extra.is_error
        assert sandbox.stats()["total"] == 0


async def test_scan_search_when_unified_search_is_missing(make_host, sandbox) -> None:
    async with make_host(plugins=[notes_plugin]) as host:
        await host.call("nc_notes_create_note", {"title": "Recipe", "content": "add saffron"})
        # A server without the notes search provider answers 404 there.
        sandbox.add_fault(path="/ocs/v2.php/search/providers/notes", status=404, times=1)
        try:
            found = (await host.call("nc_notes_search_notes", {"query": "saffron"})).structured_content
        finally:
            sandbox.clear_faults()
        assert found["method"] == "scan" and [r["title"] for r in found["results"]] == ["Recipe"]
        assert "saffron" in found["results"][0]["snippet"]


async def test_tools_hidden_and_refused_without_the_notes_app(make_host, sandbox) -> None:
    sandbox.set_apps({})
    try:
        async with make_host(plugins=[notes_plugin]) as host:
            assert await host.list_tools() == []
            refused = await host.call("nc_notes_get_note", {"note_id": 1})
            assert refused.is_error and "'notes' is not installed" in refused.content[0].text
    finally:
        sandbox.set_apps({"notes": {"api_version": ["0.2", "1.3", "1.4"], "version": "4.11.0", "notes_path": "Notes"}})


async def test_resource_template(make_host) -> None:
    async with make_host(plugins=[notes_plugin]) as host:
        note = (await host.call("nc_notes_create_note", {"title": "R", "content": "# Hello"})).structured_content
        assert host.client is not None
        templates = (await host.client.list_resource_templates()).resource_templates
        assert [t.uri_template for t in templates] == ["nc://notes/{note_id}"]
        read = await host.client.read_resource(f"nc://notes/{note['id']}")
        assert read.contents[0].text == "# Hello"


async def test_over_real_http(http_host) -> None:
    async with http_host(plugins=[notes_plugin]) as host:
        assert "nc_notes_create_note" in await host.list_tools()
        note = (await host.call("nc_notes_create_note", {"title": "Over HTTP", "content": "x"})).structured_content
        assert (await host.call("nc_notes_get_note", {"note_id": note["id"]})).structured_content["content"] == "x"
