"""Every Files tool through the official MCP client over HTTP, against the sandbox's WebDAV
(WsgiDAV with Nextcloud's properties, SEARCH, favourites, trash bin, versions and chunked upload)."""

from __future__ import annotations

import base64
import json

import ncmcp_files.plugin as files_plugin
import pytest
from files_helpers import b64, blob_of, fails, ok
from ncmcp.testing import assert_plugin_contract

pytestmark = pytest.mark.anyio
WRITE = "nc_files_write_file"

ALL_TOOLS = {
    "nc_files_list_directory", "nc_files_get_file_info", "nc_files_read_file", WRITE,
    "nc_files_create_directory", "nc_files_delete", "nc_files_move", "nc_files_copy", "nc_files_search",
    "nc_files_find_by_name", "nc_files_find_by_type", "nc_files_list_favorites", "nc_files_set_favorite",
    "nc_files_list_trash", "nc_files_restore_from_trash", "nc_files_list_versions", "nc_files_restore_version",
}
ENTRY_KEYS = {"path", "name", "type", "size", "modified", "mime_type", "etag", "file_id", "favorite", "permissions"}


def test_contract() -> None:
    registry = assert_plugin_contract(files_plugin)
    (record,) = registry.loaded
    assert record.manifest.requires is None
    assert {t.spec.name for t in record.tools} == ALL_TOOLS


async def test_tools_are_listed_with_annotations_and_schemas(http_host) -> None:
    async with http_host(plugins=[files_plugin]) as host:
        tools = {t.name: t for t in (await host.client.list_tools()).tools}
        assert set(tools) == ALL_TOOLS
        for tool in tools.values():
            assert tool.output_schema and tool.annotations and tool.title
            assert tool.input_schema.get("additionalProperties") is False
        assert tools["nc_files_read_file"].annotations.read_only_hint is True
        assert tools[WRITE].annotations.destructive_hint is True
        assert tools["nc_files_set_favorite"].annotations.idempotent_hint is True
        templates = (await host.client.list_resource_templates()).resource_templates
        assert [t.uri_template for t in templates] == ["nc://files/{path}"]


async def test_write_read_info_list(http_host) -> None:
    async with http_host(plugins=[files_plugin]) as host:
        made = await ok(host, "nc_files_create_directory", {"path": "Docs"})
        assert made["created"] and made["entry"]["type"] == "directory" and made["entry"]["path"] == "Docs"
        for name, text in [("b.md", "# B"), ("a.txt", "alpha"), ("C.txt", "gamma!")]:
            written = await ok(host, WRITE, {"path": f"Docs/{name}", "content": text})
            assert written["status"] == "written" and written["created"] is True and not written["chunked"]
            assert written["entry"]["size"] == len(text.encode()) and written["entry"]["etag"]
        await ok(host, "nc_files_create_directory", {"path": "Docs/sub"})

        info = await ok(host, "nc_files_get_file_info", {"path": "/Docs/a.txt"})
        assert ENTRY_KEYS <= set(info)
        assert info["path"] == "Docs/a.txt" and info["mime_type"] == "text/plain" and info["size"] == 5
        assert isinstance(info["file_id"], int) and info["permissions"] and info["favorite"] is False
        assert info["modified"].endswith("Z") and info["uri"] == "nc://files/Docs/a.txt"

        read = await ok(host, "nc_files_read_file", {"path": "Docs/a.txt"})
        assert read["encoding"] == "text" and read["text"] == "alpha" and read["charset"] == "utf-8"
        assert read["entry"]["etag"] == info["etag"] and read["next_offset"] is None

        listing = await ok(host, "nc_files_list_directory", {"path": "Docs"})
        assert [e["name"] for e in listing["entries"]] == ["sub", "a.txt", "b.md", "C.txt"]  # folders first, then by name
        assert listing["directory"]["path"] == "Docs" and listing["total"] == 4
        assert all(ENTRY_KEYS <= set(e) for e in listing["entries"])
        by_size = await ok(host, "nc_files_list_directory", {"path": "Docs", "sort_by": "size", "descending": True,
                                                            "folders_first": False, "limit": 2})
        assert [e["name"] for e in by_size["entries"]] == ["C.txt", "a.txt"] and by_size["next_offset"] == 2
        rest = await ok(host, "nc_files_list_directory", {"path": "Docs", "sort_by": "size", "descending": True,
                                                         "folders_first": False, "limit": 2, "offset": 2})
        assert [e["name"] for e in rest["entries"]] == ["b.md", "sub"] and rest["next_offset"] is None

        root = await ok(host, "nc_files_list_directory", {})
        assert root["directory"]["path"] == "" and [e["path"] for e in root["entries"]] == ["Docs"]

        _, details = await fails(host, "nc_files_list_directory", {"path": "Docs/a.txt"}, "invalid_argument")
        text, _ = await fails(host, "nc_files_get_file_info", {"path": "Docs/missing.txt"}, "not_found")
        assert "'Docs/missing.txt' does not exist" in text
        text, _ = await fails(host, "nc_files_read_file", {"path": "Docs"}, "invalid_argument")
        assert "folder" in text


async def test_write_never_overwrites_silently(http_host) -> None:
    async with http_host(plugins=[files_plugin]) as host:
        first = await ok(host, WRITE, {"path": "plan.txt", "content": "v1"})
        etag1 = first["entry"]["etag"]

        text, details = await fails(host, WRITE, {"path": "plan.txt", "content": "oops"}, "conflict")
        assert "already exists" in text and details["current_etag"] == etag1

        second = await ok(host, WRITE, {"path": "plan.txt", "content": "v2", "etag": etag1})
        etag2 = second["entry"]["etag"]
        assert second["created"] is False and etag2 != etag1

        text, details = await fails(host, WRITE, {"path": "plan.txt", "content": "lost?", "etag": etag1}, "conflict")
        assert "changed since you read it" in text and details["current_etag"] == etag2
        assert (await ok(host, "nc_files_read_file", {"path": "plan.txt"}))["text"] == "v2"

        # An unquoted etag is accepted too; overwrite=true replaces whatever is there.
        third = await ok(host, WRITE, {"path": "plan.txt", "content": "v3", "etag": etag2.strip('"')})
        forced = await ok(host, WRITE, {"path": "plan.txt", "content": "v4", "overwrite": True})
        assert forced["entry"]["etag"] != third["entry"]["etag"]
        assert (await ok(host, "nc_files_read_file", {"path": "plan.txt"}))["text"] == "v4"

        await ok(host, "nc_files_delete", {"path": "plan.txt"})
        text, details = await fails(host, WRITE, {"path": "plan.txt", "content": "v5", "etag": etag2}, "conflict")
        assert "no longer exists" in text and details["exists"] is False

        text, _ = await fails(host, WRITE, {"path": "no/such/dir/f.txt", "content": "x"}, "not_found")
        assert "'no/such/dir' does not exist" in text and "create_parents" in text
        deep = await ok(host, WRITE, {"path": "no/such/dir/f.txt", "content": "x", "create_parents": True})
        assert deep["entry"]["path"] == "no/such/dir/f.txt"
        text, _ = await fails(host, WRITE, {"path": "no/such/dir/f.txt/inside.txt", "content": "x"}, "invalid_argument")
        assert "is a file" in text
        text, _ = await fails(host, WRITE, {"path": "no", "content": "x", "overwrite": True}, "invalid_argument")
        assert "folder" in text


async def test_binary_blob_ranges_and_read_limit(http_host, monkeypatch) -> None:
    monkeypatch.setenv("NEXTCLOUD_MCP_FILES_MAX_READ_BYTES", "4096")
    data = bytes(range(256)) * 40  # 10240 bytes, not UTF-8
    async with http_host(plugins=[files_plugin]) as host:
        await ok(host, WRITE, {"path": "pic.png", "content": b64(data), "encoding": "base64"})

        text, _ = await fails(host, "nc_files_read_file", {"path": "pic.png"}, "invalid_argument")
        assert "10240 bytes" in text and "above the read limit of 4096" in text and "offset=0 and length=4096" in text

        got = await host.call("nc_files_read_file", {"path": "pic.png", "offset": 0, "length": 4096})
        assert not got.is_error
        body, mime, uri = blob_of(got)
        assert body == data[:4096] and mime == "image/png" and uri == "nc://files/pic.png"
        meta = got.structured_content
        assert meta["encoding"] == "binary" and meta["text"] is None and meta["next_offset"] == 4096 and meta["size"] == 10240

        middle = await host.call("nc_files_read_file", {"path": "pic.png", "offset": 5000, "length": 100})
        assert blob_of(middle)[0] == data[5000:5100]
        tail = await host.call("nc_files_read_file", {"path": "pic.png", "offset": 10000})  # up to the limit or the end
        assert blob_of(tail)[0] == data[10000:] and tail.structured_content["next_offset"] is None
        end = await ok(host, "nc_files_read_file", {"path": "pic.png", "offset": 10240})
        assert end["length"] == 0 and end["next_offset"] is None
        await fails(host, "nc_files_read_file", {"path": "pic.png", "offset": 10241}, "invalid_argument")
        text, _ = await fails(host, "nc_files_read_file", {"path": "pic.png", "offset": 0, "length": 5000}, "invalid_argument")
        assert "at most 4096" in text

        # mode=text insists; a text file can be fetched as bytes.
        text, _ = await fails(host, "nc_files_read_file", {"path": "pic.png", "offset": 0, "length": 4096, "mode": "text"},
                              "invalid_argument")
        assert "mode='binary'" in text
        await ok(host, WRITE, {"path": "n.txt", "content": "plain"})
        raw = await host.call("nc_files_read_file", {"path": "n.txt", "mode": "binary"})
        assert blob_of(raw)[0] == b"plain" and raw.structured_content["encoding"] == "binary"


async def test_text_charsets_and_ranges_cutting_characters(http_host) -> None:
    async with http_host(plugins=[files_plugin]) as host:
        await ok(host, WRITE, {"path": "utf16.txt", "content": b64("Grüße, 世界".encode("utf-16")), "encoding": "base64"})
        got = await ok(host, "nc_files_read_file", {"path": "utf16.txt"})
        assert got["text"] == "Grüße, 世界" and got["charset"].startswith("utf-16")

        latin = "Ça coûte très cher, déjà élevé à Noël. " * 20
        await ok(host, WRITE, {"path": "latin.txt", "content": b64(latin.encode("latin-1")), "encoding": "base64"})
        got = await ok(host, "nc_files_read_file", {"path": "latin.txt"})
        assert got["encoding"] == "text" and got["text"] == latin and got["charset"] == "cp1252"

        await ok(host, WRITE, {"path": "u.md", "content": "aé世b"})  # bytes: a, c3 a9, e4 b8 96, b
        cut = await ok(host, "nc_files_read_file", {"path": "u.md", "offset": 2, "length": 3})  # a9 e4 b8
        assert cut["encoding"] == "text" and cut["text"].startswith("\ufffd") and cut["length"] == 3


async def test_create_directory_delete_trash_restore(http_host) -> None:
    async with http_host(plugins=[files_plugin]) as host:
        made = await ok(host, "nc_files_create_directory", {"path": "a/b/c", "create_parents": True})
        assert made["created"] and made["entry"]["path"] == "a/b/c"
        again = await ok(host, "nc_files_create_directory", {"path": "a/b/c", "create_parents": True})
        assert again["created"] is False  # mkdir -p semantics
        _, details = await fails(host, "nc_files_create_directory", {"path": "a/b/c"}, "conflict")
        assert details["current_etag"] == again["entry"]["etag"]
        await fails(host, "nc_files_create_directory", {"path": "x/y"}, "not_found")

        note = await ok(host, WRITE, {"path": "a/b/c/note.txt", "content": "keep me"})
        text, details = await fails(host, "nc_files_delete", {"path": "a/b/c/note.txt", "etag": '"stale"'}, "conflict")
        assert details["current_etag"] == note["entry"]["etag"] and "nothing was deleted" in text
        gone = await ok(host, "nc_files_delete", {"path": "a/b/c/note.txt", "etag": note["entry"]["etag"]})
        assert gone == {"deleted": True, "path": "a/b/c/note.txt", "type": "file", "file_id": note["entry"]["file_id"],
                        "etag": note["entry"]["etag"]}
        await fails(host, "nc_files_get_file_info", {"path": "a/b/c/note.txt"}, "not_found")
        await fails(host, "nc_files_delete", {"path": "a/b/c/note.txt"}, "not_found")
        await ok(host, "nc_files_delete", {"path": "a/b"})  # a folder with everything inside

        trash = await ok(host, "nc_files_list_trash", {})
        assert trash["total"] == 2
        names = {i["name"]: i for i in trash["items"]}
        assert names["note.txt"]["original_location"] == "a/b/c/note.txt" and names["note.txt"]["type"] == "file"
        assert names["b"]["type"] == "directory" and names["b"]["deleted"].endswith("Z")

        restored = await ok(host, "nc_files_restore_from_trash", {"trash_name": names["b"]["trash_name"]})
        assert restored["entry"]["path"] == "a/b" and restored["entry"]["type"] == "directory"
        # Its original folder is back, so the note returns to where it was, with its file id.
        restored = await ok(host, "nc_files_restore_from_trash", {"trash_name": names["note.txt"]["trash_name"]})
        assert restored["entry"]["path"] == "a/b/c/note.txt" and restored["entry"]["file_id"] == note["entry"]["file_id"]
        assert (await ok(host, "nc_files_read_file", {"path": "a/b/c/note.txt"}))["text"] == "keep me"
        assert (await ok(host, "nc_files_list_trash", {}))["total"] == 0
        await fails(host, "nc_files_restore_from_trash", {"trash_name": names["b"]["trash_name"]}, "not_found")
        await fails(host, "nc_files_restore_from_trash", {"trash_name": "../x"}, "invalid_argument")
        await fails(host, "nc_files_delete", {"path": "/"}, "invalid_argument")


async def test_restore_lands_elsewhere_when_the_name_is_taken(http_host) -> None:
    async with http_host(plugins=[files_plugin]) as host:
        first = await ok(host, WRITE, {"path": "r.txt", "content": "old"})
        await ok(host, "nc_files_delete", {"path": "r.txt"})
        await ok(host, WRITE, {"path": "r.txt", "content": "new"})
        (item,) = (await ok(host, "nc_files_list_trash", {}))["items"]
        restored = await ok(host, "nc_files_restore_from_trash", {"trash_name": item["trash_name"]})
        assert restored["entry"]["path"] != "r.txt" and restored["entry"]["file_id"] == first["entry"]["file_id"]
        assert (await ok(host, "nc_files_read_file", {"path": restored["entry"]["path"]}))["text"] == "old"
        assert (await ok(host, "nc_files_read_file", {"path": "r.txt"}))["text"] == "new"


async def test_move_and_copy_respect_the_destination(http_host) -> None:
    async with http_host(plugins=[files_plugin]) as host:
        src = (await ok(host, WRITE, {"path": "src.txt", "content": "source"}))["entry"]
        dst = (await ok(host, WRITE, {"path": "dst.txt", "content": "dest"}))["entry"]

        text, details = await fails(host, "nc_files_move", {"source": "src.txt", "destination": "dst.txt"}, "conflict")
        assert "already exists" in text and details["current_etag"] == dst["etag"]
        text, details = await fails(host, "nc_files_copy", {"source": "src.txt", "destination": "dst.txt",
                                                             "destination_etag": '"not-the-etag"'}, "conflict")
        assert "changed since you read it" in text and details["current_etag"] == dst["etag"]
        assert (await ok(host, "nc_files_read_file", {"path": "dst.txt"}))["text"] == "dest"

        copied = await ok(host, "nc_files_copy", {"source": "src.txt", "destination": "dst.txt", "destination_etag": dst["etag"]})
        assert copied["overwritten"] is True and copied["entry"]["size"] == 6
        assert (await ok(host, "nc_files_read_file", {"path": "dst.txt"}))["text"] == "source"

        _, details = await fails(host, "nc_files_move", {"source": "src.txt", "destination": "moved.txt",
                                                         "source_etag": '"old-version"'}, "conflict")
        assert details["current_etag"] == src["etag"]
        await fails(host, "nc_files_move", {"source": "src.txt", "destination": "folder/moved.txt"}, "not_found")  # no parent
        await ok(host, "nc_files_create_directory", {"path": "folder"})
        moved = await ok(host, "nc_files_move", {"source": "src.txt", "destination": "folder/moved.txt",
                                                 "source_etag": src["etag"]})
        assert moved["overwritten"] is False and moved["entry"]["file_id"] == src["file_id"]  # a rename keeps the id
        await fails(host, "nc_files_get_file_info", {"path": "src.txt"}, "not_found")

        forced = await ok(host, "nc_files_move", {"source": "folder/moved.txt", "destination": "dst.txt", "overwrite": True})
        assert forced["overwritten"] is True

        tree = await ok(host, "nc_files_copy", {"source": "folder", "destination": "folder copy"})
        assert tree["entry"]["type"] == "directory"
        await fails(host, "nc_files_move", {"source": "folder", "destination": "folder/inner"}, "invalid_argument")
        await fails(host, "nc_files_copy", {"source": "dst.txt", "destination": "dst.txt"}, "invalid_argument")
        await fails(host, "nc_files_move", {"source": "", "destination": "x"}, "invalid_argument")
        await fails(host, "nc_files_move", {"source": "nothing.txt", "destination": "x.txt"}, "not_found")


async def test_search_find_and_favourites(http_host) -> None:
    async with http_host(plugins=[files_plugin]) as host:
        await ok(host, "nc_files_create_directory", {"path": "Work/Reports", "create_parents": True})
        files = {
            "Work/Reports/Q1 & Q2 <draft>.txt": "a" * 10,
            "Work/Reports/\"quoted\" 'single'.md": "b" * 2000,
            "Work/Größe 日本.pdf": "c" * 300,
            "Work/100%_done.txt": "d",
            "Work/1000_done.txt": "e",
            "photo.jpg": "f" * 50,
        }
        for path, content in files.items():
            await ok(host, WRITE, {"path": path, "content": content})

        async def names(tool: str, args: dict) -> list[str]:
            return sorted(e["name"] for e in (await ok(host, tool, args))["results"])

        assert await names("nc_files_search", {"name": "Q1 & Q2 <draft>"}) == ["Q1 & Q2 <draft>.txt"]
        assert await names("nc_files_search", {"name": '"quoted" \'single\''}) == ["\"quoted\" 'single'.md"]
        assert await names("nc_files_find_by_name", {"pattern": "größe 日本*"}) == ["Größe 日本.pdf"]  # case-insensitive
        assert await names("nc_files_find_by_name", {"pattern": "100%_*"}) == ["100%_done.txt"]  # % and _ are literal
        assert await names("nc_files_find_by_name", {"pattern": "*.TXT", "folder": "Work/Reports"}) == ["Q1 & Q2 <draft>.txt"]
        assert await names("nc_files_find_by_name", {"pattern": "Q?"}) == []  # a glob with wildcards matches whole names
        assert await names("nc_files_find_by_type", {"mime_type": "application/pdf"}) == ["Größe 日本.pdf"]
        assert await names("nc_files_find_by_type", {"mime_type": "image"}) == ["photo.jpg"]
        assert await names("nc_files_find_by_type", {"mime_type": "text/*", "folder": "Work"}) == \
            ["\"quoted\" 'single'.md", "100%_done.txt", "1000_done.txt", "Q1 & Q2 <draft>.txt"]
        assert await names("nc_files_search", {"min_size": 100, "max_size": 1000}) == ["Größe 日本.pdf"]
        assert await names("nc_files_search", {"type": "directory"}) == ["Reports", "Work"]
        assert "photo.jpg" in await names("nc_files_search", {"modified_after": "2000-01-01", "type": "file"})
        assert await names("nc_files_search", {"modified_before": "2000-01-01T00:00:00Z"}) == []
        limited = await ok(host, "nc_files_search", {"type": "file", "limit": 2, "order_by": "size"})
        assert [e["name"] for e in limited["results"]] == ["\"quoted\" 'single'.md", "Größe 日本.pdf"]
        assert limited["may_have_more"] is True and limited["count"] == 2
        await fails(host, "nc_files_search", {"modified_after": "last week"}, "invalid_argument")
        await fails(host, "nc_files_find_by_type", {"mime_type": "<x>"}, "invalid_argument")
        await fails(host, "nc_files_search", {"name": "x", "folder": "photo.jpg"}, "invalid_argument")
        await fails(host, "nc_files_search", {"name": "x", "folder": "nope"}, "not_found")

        fav = await ok(host, "nc_files_set_favorite", {"path": "Work/Größe 日本.pdf"})
        assert fav["favorite"] is True
        await ok(host, "nc_files_set_favorite", {"path": "Work/Reports", "favorite": True})
        favs = await ok(host, "nc_files_list_favorites", {})
        assert [e["path"] for e in favs["favorites"]] == ["Work/Größe 日本.pdf", "Work/Reports"] and favs["total"] == 2
        below = await ok(host, "nc_files_list_favorites", {"folder": "Work"})
        assert [e["path"] for e in below["favorites"]] == ["Work/Größe 日本.pdf", "Work/Reports"]
        assert (await ok(host, "nc_files_list_favorites", {"limit": 1, "offset": 1}))["favorites"][0]["path"] == "Work/Reports"
        assert await names("nc_files_search", {"favorites_only": True, "type": "file"}) == ["Größe 日本.pdf"]
        unfav = await ok(host, "nc_files_set_favorite", {"path": "Work/Größe 日本.pdf", "favorite": False})
        assert unfav["favorite"] is False
        assert (await ok(host, "nc_files_list_favorites", {}))["total"] == 1
        await fails(host, "nc_files_set_favorite", {"path": "missing"}, "not_found")


async def test_versions_list_and_restore(http_host) -> None:
    async with http_host(plugins=[files_plugin]) as host:
        v1 = (await ok(host, WRITE, {"path": "doc.txt", "content": "first"}))["entry"]
        v2 = (await ok(host, WRITE, {"path": "doc.txt", "content": "second", "etag": v1["etag"]}))["entry"]
        listed = await ok(host, "nc_files_list_versions", {"path": "doc.txt"})
        assert listed["entry"]["etag"] == v2["etag"] and listed["total"] == 1
        (old,) = listed["versions"]
        assert old["size"] == 5 and old["version_id"]

        _, details = await fails(host, "nc_files_restore_version", {"path": "doc.txt", "version_id": old["version_id"],
                                                                   "etag": v1["etag"]}, "conflict")
        assert details["current_etag"] == v2["etag"]
        restored = await ok(host, "nc_files_restore_version", {"path": "doc.txt", "version_id": old["version_id"],
                                                               "etag": v2["etag"]})
        assert restored["entry"]["file_id"] == v1["file_id"] and restored["entry"]["size"] == 5
        assert (await ok(host, "nc_files_read_file", {"path": "doc.txt"}))["text"] == "first"
        after = await ok(host, "nc_files_list_versions", {"path": "doc.txt"})
        assert [v["size"] for v in after["versions"]] == [6]  # the replaced content is kept as a version
        await fails(host, "nc_files_restore_version", {"path": "doc.txt", "version_id": "12345"}, "not_found")
        await fails(host, "nc_files_list_versions", {"path": ""}, "invalid_argument")


async def test_resource_template_reads_files_and_folders(http_host) -> None:
    async with http_host(plugins=[files_plugin]) as host:
        await ok(host, WRITE, {"path": "My Notes/ünïcode #1 & 50%?.md", "content": "# Hi", "create_parents": True})
        await ok(host, WRITE, {"path": "My Notes/raw.bin", "content": b64(b"\x00\x01\xff"), "encoding": "base64"})
        entry = await ok(host, "nc_files_get_file_info", {"path": "My Notes/ünïcode #1 & 50%?.md"})
        read = await host.client.read_resource(entry["uri"])
        (content,) = read.contents
        assert content.text == "# Hi" and content.mime_type == "text/markdown"
        raw = (await host.client.read_resource("nc://files/My%20Notes/raw.bin")).contents[0]
        assert base64.b64decode(raw.blob) == b"\x00\x01\xff"
        folder = (await host.client.read_resource("nc://files/My%20Notes")).contents[0]
        assert sorted(e["name"] for e in json.loads(folder.text)["entries"]) == ["raw.bin", "ünïcode #1 & 50%?.md"]
        with pytest.raises(Exception, match="does not exist"):
            await host.client.read_resource("nc://files/My%20Notes/none.txt")
        with pytest.raises(Exception, match=r"\.\."):
            await host.client.read_resource("nc://files/My%20Notes/%2E%2E/%2E%2E/etc/passwd")
