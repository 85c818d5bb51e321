"""Large content: chunked upload v2 inside one call, uploads in pieces (one call each), and a 50 MB
file written in pieces and read back by ranges through the MCP client over HTTP."""

from __future__ import annotations

import hashlib
import random

import bigfile
import ncmcp_files.plugin as files_plugin
import pytest
from files_helpers import b64, blob_of, fails, ok

pytestmark = pytest.mark.anyio
WRITE = "nc_files_write_file"


def uploads(stats: dict, method: str) -> int:
    return sum(n for key, n in stats["requests"].items() if key.startswith(f"{method} /remote.php/dav/uploads/"))


async def test_content_above_the_chunk_size_goes_through_chunked_upload(http_host, sandbox, monkeypatch) -> None:
    monkeypatch.setenv("NEXTCLOUD_MCP_FILES_CHUNK_SIZE", str(64 * 1024))
    data = random.Random(1).randbytes(200_000)
    async with http_host(plugins=[files_plugin]) as host:
        sandbox.reset_stats()
        written = await ok(host, WRITE, {"path": "big/blob.bin", "content": b64(data), "encoding": "base64",
                                                         "create_parents": True})
        assert written["chunked"] and written["created"] and written["entry"]["size"] == 200_000
        stats = sandbox.stats()
        assert uploads(stats, "PUT") == 4 and uploads(stats, "MOVE") == 1 and uploads(stats, "MKCOL") == 1
        got = await host.call("nc_files_read_file", {"path": "big/blob.bin"})
        assert blob_of(got)[0] == data

        # Create-only refuses before sending a byte; the etag replaces exactly that version.
        sandbox.reset_stats()
        _, details = await fails(host, WRITE, {"path": "big/blob.bin", "content": b64(data), "encoding": "base64"},
                                 "conflict")
        assert details["current_etag"] == written["entry"]["etag"] and uploads(sandbox.stats(), "PUT") == 0
        text = "Zeile " * 40_000  # text is chunked on its UTF-8 bytes
        replaced = await ok(host, WRITE, {"path": "big/blob.bin", "content": text, "etag": written["entry"]["etag"]})
        assert replaced["chunked"] and replaced["created"] is False and replaced["entry"]["size"] == len(text)
        _, details = await fails(host, WRITE, {"path": "big/blob.bin", "content": text, "etag": written["entry"]["etag"]},
                                 "conflict")
        assert details["current_etag"] == replaced["entry"]["etag"]


async def test_upload_in_pieces_checks_offsets_and_preconditions(http_host, monkeypatch) -> None:
    monkeypatch.setenv("NEXTCLOUD_MCP_FILES_MAX_WRITE_BYTES", "100000")
    pieces = [random.Random(i).randbytes(60_000) for i in range(3)]
    async with http_host(plugins=[files_plugin]) as host:
        whole = b"".join(pieces)
        text, _ = await fails(host, WRITE, {"path": "p.bin", "content": b64(whole), "encoding": "base64"},
                              "invalid_argument")
        assert "at most 100000" in text and "final=false" in text

        first = await ok(host, WRITE, {"path": "p.bin", "content": b64(pieces[0]), "encoding": "base64", "final": False})
        assert first["status"] == "uploading" and first["bytes"] == 60_000 and first["entry"] is None
        upload_id = first["upload_id"]  # the upload folder and the progress: "ncmcp-<hex>:<chunks>:<bytes>"
        assert upload_id.endswith(":1:60000")
        await fails(host, "nc_files_get_file_info", {"path": "p.bin"}, "not_found")  # nothing visible until the end

        repeated = {"path": "p.bin", "content": b64(pieces[1]), "encoding": "base64", "final": False, "upload_id": upload_id,
                    "offset": 0}
        text, details = await fails(host, WRITE, repeated, "invalid_argument")
        assert details["bytes_received"] == 60_000 and "offset 60000" in text  # a repeated piece is refused
        second = await ok(host, WRITE, {"path": "p.bin", "content": b64(pieces[1]), "encoding": "base64",
                                        "final": False, "upload_id": upload_id, "offset": 60_000})
        assert second["bytes"] == 120_000 and second["upload_id"] == upload_id.replace(":1:60000", ":2:120000")
        upload_id = second["upload_id"]

        # Someone creates the file meanwhile: the create-only upload must not replace it.
        other = (await ok(host, WRITE, {"path": "p.bin", "content": "theirs"}))["entry"]
        _, details = await fails(host, WRITE, {"path": "p.bin", "content": b64(pieces[2]), "encoding": "base64",
                                               "upload_id": upload_id, "offset": 120_000, "total_size": 180_000}, "conflict")
        assert details["current_etag"] == other["etag"] and details["upload_id"].endswith(":3:180000")
        upload_id = details["upload_id"]
        assert (await ok(host, "nc_files_read_file", {"path": "p.bin", "mode": "text"}))["text"] == "theirs"

        # The pieces are kept: finish with the version we accept to replace (the last piece landed already).
        await fails(host, WRITE, {"path": "p.bin", "upload_id": upload_id, "total_size": 1, "etag": other["etag"]},
                    "invalid_argument")
        done = await ok(host, WRITE, {"path": "p.bin", "upload_id": upload_id, "etag": other["etag"], "total_size": 180_000})
        assert done["status"] == "written" and done["entry"]["size"] == 180_000 and done["created"] is False
        got = await host.call("nc_files_read_file", {"path": "p.bin"})
        assert blob_of(got)[0] == whole
        await fails(host, WRITE, {"path": "p.bin", "content": "", "upload_id": upload_id, "final": False}, "not_found")

        # An upload started empty: the folder lists no chunk, the id carries the progress.
        empty = await ok(host, WRITE, {"path": "e.txt", "content": "", "final": False})
        assert empty["upload_id"].endswith(":0:0")
        part = await ok(host, WRITE, {"path": "e.txt", "content": "abc", "final": False, "upload_id": empty["upload_id"],
                                      "offset": 0})
        end = await ok(host, WRITE, {"path": "e.txt", "content": "def", "upload_id": part["upload_id"], "offset": 3})
        assert end["entry"]["size"] == 6
        assert (await ok(host, "nc_files_read_file", {"path": "e.txt"}))["text"] == "abcdef"
        await fails(host, WRITE, {"path": "e2.txt", "content": "x", "final": False, "offset": 5}, "invalid_argument")

        started = await ok(host, WRITE, {"path": "q.bin", "content": "abc", "final": False})
        cancelled = await ok(host, WRITE, {"path": "q.bin", "upload_id": started["upload_id"], "cancel": True})
        assert cancelled["status"] == "cancelled"
        again = await ok(host, WRITE, {"path": "q.bin", "upload_id": started["upload_id"], "cancel": True})
        assert again["status"] == "not_found"
        await fails(host, WRITE, {"path": "q.bin", "upload_id": "../../files/x", "final": False}, "invalid_argument")
        await fails(host, WRITE, {"path": "q.bin", "content": "@@not base64@@", "encoding": "base64"}, "invalid_argument")


@pytest.mark.slow
async def test_50_mb_written_in_pieces_and_read_by_ranges(http_host) -> None:
    size = 50 * bigfile.MB
    async with http_host(plugins=[files_plugin]) as host:
        written = await bigfile.write_in_pieces(host.call, "Videos/big.bin", size, extra={"create_parents": True})
        assert written.calls == 17 and written.last["status"] == "written" and written.last["entry"]["size"] == size
        read = await bigfile.read_by_ranges(host.call, "Videos/big.bin")
        assert read.calls == 12 and read.sha256 == written.sha256 == bigfile.expected_sha256(size)
        # A range in the middle is exactly those bytes.
        middle = await host.call("nc_files_read_file", {"path": "Videos/big.bin", "offset": 31_000_000, "length": 1000})
        piece = next(p for i, p in enumerate(bigfile.pieces(size)) if i == 31_000_000 // bigfile.PIECE)
        start = 31_000_000 % bigfile.PIECE
        assert hashlib.sha256(blob_of(middle)[0]).digest() == hashlib.sha256(piece[start:start + 1000]).digest()
