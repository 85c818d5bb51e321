"""A large file through the Files tools, written in pieces and read back by ranges.

For the integration test and for the memory benchmark: both sides stream. The content is made
piece by piece from a seed (never held whole here), each piece goes in one ``nc_files_write_file``
call, and the file is read back range by range into a running hash, so what this module holds at
once is one piece or one range, whatever the file size; the server's own memory should stay as
flat (it holds one call's argument and one chunk).

``call`` is any ``async (tool_name, arguments) -> CallToolResult``, e.g. ``host.call`` of the test
kit or ``Client.call_tool`` of the official MCP client.

Run against a server: ``python plugins/files/tests/bigfile.py --url http://127.0.0.1:8000 --size 50000000``
(Basic mode; add ``--token`` for OAuth mode).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

MB = 1_000_000
#: Bytes per write call: their base64 (4,000,000 characters) fits the host's 4 MiB request limit.
PIECE = 3_000_000
#: Bytes per read call (the plugin's default read limit).
RANGE = 4 * 1024 * 1024

Call = Callable[[str, dict[str, Any]], Awaitable[Any]]


@dataclass(slots=True)
class Transfer:
    sha256: str
    calls: int
    seconds: float
    last: dict[str, Any]


def pieces(size: int, piece: int = PIECE, seed: str = "ncmcp") -> Iterator[bytes]:
    """The file's content, deterministic from ``seed``, one piece at a time."""
    for index, start in enumerate(range(0, size, piece)):
        yield random.Random(f"{seed}:{index}").randbytes(min(piece, size - start))


def expected_sha256(size: int, piece: int = PIECE, seed: str = "ncmcp") -> str:
    digest = hashlib.sha256()
    for data in pieces(size, piece, seed):
        digest.update(data)
    return digest.hexdigest()


def _check(result: Any, what: str) -> dict[str, Any]:
    if result.is_error:
        raise AssertionError(f"{what} failed: {result.content[0].text}")
    return dict(result.structured_content)


def _blob(result: Any) -> bytes:
    for item in result.content:
        if getattr(item, "type", None) == "resource":
            return base64.b64decode(item.resource.blob)
    raise AssertionError("read_file returned no embedded blob")


async def write_in_pieces(call: Call, path: str, size: int, *, piece: int = PIECE, seed: str = "ncmcp",
                          extra: dict[str, Any] | None = None) -> Transfer:
    """Write ``size`` bytes to ``path``, one call per piece (an upload session of chunked upload v2)."""
    started = time.perf_counter()
    digest = hashlib.sha256()
    upload_id: str | None = None
    offset = calls = 0
    last: dict[str, Any] = {}
    for data in pieces(size, piece, seed):
        digest.update(data)
        final = offset + len(data) >= size
        args: dict[str, Any] = {"path": path, "content": base64.b64encode(data).decode(), "encoding": "base64",
                                "final": final, "offset": offset, **(extra or {})}
        if upload_id:
            args["upload_id"] = upload_id
        if final:
            args["total_size"] = size
        last = _check(await call("nc_files_write_file", args), f"piece at {offset}")
        calls += 1
        upload_id = last["upload_id"]
        offset += len(data)
    return Transfer(digest.hexdigest(), calls, time.perf_counter() - started, last)


async def read_by_ranges(call: Call, path: str, *, length: int = RANGE) -> Transfer:
    """Read ``path`` range by range (binary), hashing as it goes."""
    started = time.perf_counter()
    digest = hashlib.sha256()
    offset = calls = 0
    last: dict[str, Any] = {}
    while True:
        result = await call("nc_files_read_file", {"path": path, "offset": offset, "length": length, "mode": "binary"})
        last = _check(result, f"range at {offset}")
        data = _blob(result)
        if last["offset"] != offset or last["length"] != len(data):
            raise AssertionError(f"range at {offset}: got offset {last['offset']}, {len(data)} bytes")
        digest.update(data)
        calls += 1
        if last["next_offset"] is None:
            break
        offset = last["next_offset"]
    return Transfer(digest.hexdigest(), calls, time.perf_counter() - started, last)


async def roundtrip(call: Call, path: str = "bigfile.bin", size: int = 50 * MB) -> dict[str, Any]:
    """Write then read back; raises on any difference. Returns timings for a benchmark."""
    written = await write_in_pieces(call, path, size, extra={"overwrite": True})
    read = await read_by_ranges(call, path)
    if read.sha256 != written.sha256:
        raise AssertionError("the file read back differs from the file written")
    return {"size": size, "write_calls": written.calls, "write_seconds": round(written.seconds, 2),
            "read_calls": read.calls, "read_seconds": round(read.seconds, 2), "sha256": read.sha256}


def main(argv: list[str] | None = None) -> int:
    import json

    import anyio
    from ncmcp.testing.http import connect

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="the ncmcp server (without /mcp)")
    parser.add_argument("--token", help="bearer token (OAuth mode)")
    parser.add_argument("--size", type=int, default=50 * MB)
    parser.add_argument("--path", default="bigfile.bin")
    args = parser.parse_args(argv)

    async def run() -> dict[str, Any]:
        async with connect(args.url, token=args.token) as client:
            return await roundtrip(client.call_tool, args.path, args.size)

    print(json.dumps(anyio.run(run)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
