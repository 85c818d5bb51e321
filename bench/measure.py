"""The measurements. Each function drives servers that ``procs`` started and returns plain dicts
(numbers in milliseconds, microseconds, bytes or calls per second, as the key names say)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from functools import partial
from typing import Any

import anyio
import httpx
import httpx2
import psutil
from ncmcp.testing.http import connect
from procs import Processes, RssSampler, Server

MiB = 1024 * 1024
ACCEPT = "application/json, text/event-stream"


# --- small statistics helpers ------------------------------------------------------------------------

def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def summary(latencies_s: list[float], wall_s: float) -> dict[str, float]:
    ms = [x * 1000 for x in latencies_s]
    return {"ops": len(ms), "median_ms": statistics.median(ms), "p95_ms": pct(ms, 95),
            "throughput_per_s": len(ms) / wall_s}


def median_of(rounds: list[dict[str, float]]) -> dict[str, float]:
    """Key-wise median over repeated rounds (each round already a summary)."""
    return {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}


def cpu_seconds(pid: int) -> float:
    t = psutil.Process(pid).cpu_times()
    return float(t.user + t.system)


def tool_result(result: Any) -> dict[str, Any]:
    """The structured content of a successful tool call; raises on ``isError``."""
    if result.is_error:
        raise RuntimeError("tool call failed: " + " ".join(getattr(c, "text", "") for c in result.content)[:500])
    return dict(result.structured_content or {})


# --- cold start ----------------------------------------------------------------------------------------

async def first_list(server: Server, token: str | None = None) -> dict[str, Any]:
    """Wait for ``server`` (just spawned) to answer its first ``tools/list``; times from process spawn."""
    await anyio.to_thread.run_sync(server.wait_port)
    port_s = time.perf_counter() - server.spawned_at
    async with connect(server.url, token) as client:
        tools = (await client.list_tools()).tools
        list_s = time.perf_counter() - server.spawned_at
        protocol = client.protocol_version
    return {"port_open_ms": port_s * 1000, "first_tools_list_ms": list_s * 1000, "tools": len(tools), "protocol": protocol}


async def cold_start(spawn: Callable[[], Server], runs: int) -> dict[str, Any]:
    """Spawn, wait for the first ``tools/list``, note RSS, stop; ``runs`` times, one process at a time."""
    samples = []
    for _ in range(runs):
        server = spawn()
        try:
            sample = await first_list(server)
            sample["rss_after_first_list_bytes"] = server.rss()
            samples.append(sample)
        finally:
            server.stop()
    out: dict[str, Any] = {"runs": runs, "samples": samples}
    for key in ("port_open_ms", "first_tools_list_ms", "rss_after_first_list_bytes"):
        out[key] = statistics.median(s[key] for s in samples)
    out["tools"] = samples[0]["tools"]
    out["protocol"] = samples[0]["protocol"]
    return out


# --- latency and throughput: interleaved blocks -------------------------------------------------------------
#
# The machine may be shared, and its load changes from second to second. So the servers are never measured
# one after the other for long: every round cycles through them in short blocks (order rotated per block),
# and a server's figures for a round are its calls and elapsed time summed over its blocks.

@dataclass
class Target:
    name: str
    server: Server
    token: str | None
    tool: str
    args: dict[str, Any]


Run = Callable[[int], Awaitable[list[float]]]  # run n operations, return their latencies (s)


async def _timed(n: int, call: Callable[[], Awaitable[Any]], latencies: list[float]) -> None:
    for _ in range(n):
        t0 = time.perf_counter()
        await call()
        latencies.append(time.perf_counter() - t0)


def _parallel(calls: list[Callable[[], Awaitable[Any]]]) -> Run:
    """n operations spread over the given workers (one connection each), all running at once."""

    async def run(n: int) -> list[float]:
        lat: list[float] = []
        async with anyio.create_task_group() as tg:
            for i, call in enumerate(calls):
                tg.start_soon(_timed, n // len(calls) + (1 if i < n % len(calls) else 0), call, lat)
        return lat

    return run


def _sequential(call: Callable[[], Awaitable[Any]]) -> Run:
    async def run(n: int) -> list[float]:
        lat: list[float] = []
        await _timed(n, call, lat)
        return lat

    return run


async def open_driver(kind: str, t: Target, stack: AsyncExitStack, concurrency: int = 8) -> Run:
    """``kind``: ``list`` / ``call`` / ``call_conc`` with the official client, ``raw_list`` / ``raw_call`` /
    ``raw_call_conc`` with raw posts. Connections stay open for the whole phase; a few warm-up calls."""
    workers = concurrency if kind.endswith("_conc") else 1
    calls: list[Callable[[], Awaitable[Any]]] = []
    for _ in range(workers):
        if kind.startswith("raw_"):
            http = await stack.enter_async_context(httpx2.AsyncClient(timeout=60))
            if kind == "raw_list":
                body, headers = raw_request("tools/list", None, None, t.token)
            else:
                body, headers = raw_request("tools/call", t.tool, t.args, t.token)
            call = _poster(http, f"{t.server.url}/mcp", body, headers)
        else:
            client = await stack.enter_async_context(connect(t.server.url, t.token))
            await client.list_tools()
            if kind == "list":
                call = partial(client.list_tools, cache_mode="bypass")
            else:
                call = partial(_call_ok, client, t.tool, t.args)
        for _ in range(3):
            await call()
        calls.append(call)
    return _sequential(calls[0]) if workers == 1 else _parallel(calls)


async def _call_ok(client: Any, tool: str, args: dict[str, Any]) -> None:
    tool_result(await client.call_tool(tool, args))


def _poster(http: httpx2.AsyncClient, url: str, body: bytes, headers: dict[str, str]) -> Callable[[], Awaitable[None]]:
    async def post() -> None:
        response = await http.post(url, content=body, headers=headers)
        if response.status_code != 200 or b'"isError":true' in response.content or b'"error"' in response.content[:40]:
            raise RuntimeError(f"raw post failed: {response.status_code} {response.content[:300]!r}")

    return post


def raw_request(method: str, tool: str | None, args: dict[str, Any] | None, token: str | None) -> tuple[bytes, dict[str, str]]:
    """A 2026-07-28 request exactly as the official client sends it (captured from the SDK 2.3.0)."""
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "ncmcp-bench", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": {}}
    params: dict[str, Any] = {"_meta": meta} if tool is None else {"name": tool, "arguments": args, "_meta": meta}
    headers = {"Accept": ACCEPT, "Content-Type": "application/json", "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": method}
    if tool is not None:
        headers["Mcp-Name"] = tool
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    return json.dumps(body, separators=(",", ":")).encode(), headers


async def interleaved(kind: str, targets: list[Target], rounds: int, blocks: int, block_ops: int) -> dict[str, Any]:
    """``rounds`` × ``blocks`` × every target × ``block_ops`` operations; per target the median over rounds
    of (median latency, p95 latency, throughput, server CPU per operation), plus each round's figures."""
    per_round: dict[str, list[dict[str, float]]] = {t.name: [] for t in targets}
    cpu_total = {t.name: 0.0 for t in targets}
    ops_total = {t.name: 0 for t in targets}
    async with AsyncExitStack() as stack:
        drivers = {t.name: await open_driver(kind, t, stack) for t in targets}
        for r in range(rounds):
            acc = {t.name: {"lat": [], "wall": 0.0, "cpu": 0.0} for t in targets}
            for b in range(blocks):
                shift = (r * blocks + b) % len(targets)
                for t in targets[shift:] + targets[:shift]:
                    cpu0, t0 = cpu_seconds(t.server.pid), time.perf_counter()
                    lat = await drivers[t.name](block_ops)
                    a = acc[t.name]
                    a["wall"] += time.perf_counter() - t0
                    a["cpu"] += cpu_seconds(t.server.pid) - cpu0
                    a["lat"] += lat
            for t in targets:
                a = acc[t.name]
                per_round[t.name].append(summary(a["lat"], a["wall"]))
                cpu_total[t.name] += a["cpu"]
                ops_total[t.name] += len(a["lat"])
    # CPU time is counted in 10 ms ticks: per block it is coarse, so it is reported over the whole phase
    return {name: {**median_of(rs), "server_cpu_ms_per_op": cpu_total[name] * 1000 / ops_total[name], "rounds": rs}
            for name, rs in per_round.items()}


async def list_bytes(server: Server, token: str | None) -> int:
    """Size of the ``tools/list`` answer (JSON bytes)."""
    body, headers = raw_request("tools/list", None, None, token)
    async with httpx2.AsyncClient(timeout=60) as http:
        response = await http.post(f"{server.url}/mcp", content=body, headers=headers)
        response.raise_for_status()
        return len(response.content)


async def upstream_get(base_url: str, user: str, password: str, note_id: int, n: int) -> dict[str, float]:
    """The sandbox request itself (keep-alive httpx), i.e. what even the floor cannot avoid."""
    lat: list[float] = []
    async with httpx.AsyncClient(base_url=base_url, auth=(user, password), headers={"OCS-APIRequest": "true"}) as http:
        async def get() -> None:
            (await http.get(f"/index.php/apps/notes/api/v1/notes/{note_id}")).raise_for_status()
        await _timed(5, get, [])
        t0 = time.perf_counter()
        await _timed(n, get, lat)
        return summary(lat, time.perf_counter() - t0)


# --- token verification (in process) ---------------------------------------------------------------------

async def token_verification(idp: Any, sandbox_url: str, user: str, iterations: int, repeats: int) -> dict[str, Any]:
    """``TokenVerifier.verify`` per call, in this process, keys and discovery already fetched."""
    import jwt
    from ncmcp.auth.oidc import ClientCredentials
    from ncmcp.auth.verify import TokenVerifier
    from ncmcp.config import load_settings
    from ncmcp.logs import configure_logging
    from ncmcp.nextcloud.client import NoCookies

    configure_logging("console", "warning")  # as the server runs in the benchmark: info lines are filtered
    base_url = "http://127.0.0.1:9"  # the audience only; nothing listens there
    settings = load_settings(environ={}, oauth=True, nextcloud_host=sandbox_url, server_url=base_url,
                             issuer_url=idp.issuer, oidc_client_id="test-client", oidc_client_secret="test-secret")
    credentials = ClientCredentials("test-client", "test-secret")
    jwt_token = idp.token(user, "nc:read nc:write", resource=f"{base_url}/mcp")
    opaque_token = idp.token(user, "nc:read nc:write", resource=f"{base_url}/mcp", opaque=True)
    out: dict[str, Any] = {"iterations": iterations, "repeats": repeats, "jwt_bytes": len(jwt_token)}
    async with httpx.AsyncClient(timeout=10, cookies=NoCookies()) as http:
        warm = TokenVerifier(settings, http, credentials=credentials)
        await warm.verify(jwt_token)  # fetches discovery and the JWKS once
        await warm.verify(opaque_token)  # introspection once; cached afterwards

        def fresh() -> TokenVerifier:
            return TokenVerifier(settings, http, discovery=warm.discovery, jwks=warm.jwks, credentials=credentials)

        async def per_call_us(n: int, make: Callable[[int], Awaitable[Any]]) -> float:
            runs = []
            for _ in range(repeats):
                t0 = time.perf_counter_ns()
                for i in range(n):
                    await make(i)
                runs.append((time.perf_counter_ns() - t0) / n / 1000)
            return statistics.median(runs)

        # first sight: a fresh verifier per call (empty token cache, shared JWKS), built outside the timing
        n_first = max(50, iterations // 20)
        pool = [fresh() for _ in range(n_first * repeats + 1)]
        it = iter(pool)

        async def first(_: int) -> None:
            await next(it).verify(jwt_token)

        out["jwt_first_sight_us"] = await per_call_us(n_first, first)
        out["jwt_first_sight_iterations"] = n_first

        async def cached_jwt(_: int) -> None:
            await warm.verify(jwt_token)

        async def cached_opaque(_: int) -> None:
            await warm.verify(opaque_token)

        out["jwt_cached_us"] = await per_call_us(iterations, cached_jwt)
        out["opaque_cached_us"] = await per_call_us(iterations, cached_opaque)

        # context: the signature check alone (pyjwt RS256 decode with the same checks)
        key = await warm.jwks.key(jwt.get_unverified_header(jwt_token)["kid"])
        assert key is not None

        async def pyjwt_only(_: int) -> None:
            jwt.decode(jwt_token, key.key, algorithms=["RS256"], audience=f"{base_url}/mcp", issuer=idp.issuer)

        out["pyjwt_decode_only_us"] = await per_call_us(n_first, pyjwt_only)

        # opaque first sight: one RFC 7662 introspection round trip to the IdP over loopback
        n_intro = 20
        pool = [fresh() for _ in range(n_intro * repeats + 1)]
        it = iter(pool)

        async def first_opaque(_: int) -> None:
            await next(it).verify(opaque_token)

        out["opaque_first_sight_us"] = await per_call_us(n_intro, first_opaque)
        out["opaque_first_sight_iterations"] = n_intro
    return out


# --- upstream requests per operation --------------------------------------------------------------------------

class Counter:
    """Sandbox request counters around one operation."""

    def __init__(self, sandbox: Any) -> None:
        self.sandbox = sandbox

    def reset(self) -> None:
        self.sandbox.stats(reset=True)

    def read(self) -> dict[str, Any]:
        stats = self.sandbox.stats()
        requests = {k: v for k, v in sorted(stats["requests"].items())}
        return {"total": stats["total"], "requests": requests}

    async def around(self, operation: Callable[[], Awaitable[Any]]) -> tuple[Any, dict[str, Any]]:
        self.reset()
        value = await operation()
        return value, self.read()


def _count(found: dict[str, Any], method: str) -> int:
    return sum(v for k, v in found["requests"].items() if k.startswith(method + " "))


async def upstream_requests(procs: Processes, sandbox: Any, user: str, password: str, note_id: int,
                            plugins: set[str], oauth: Server | None = None, idp: Any = None) -> dict[str, Any]:
    counter = Counter(sandbox)
    out: dict[str, Any] = {}
    counter.reset()
    server = procs.ncmcp(sandbox.url, user=user, password=password)
    try:
        await anyio.to_thread.run_sync(server.wait_port)
        out["startup"] = counter.read()
        async with connect(server.url) as client:
            _, out["first_tools_list"] = await counter.around(client.list_tools)
            _, out["first_tools_call"] = await counter.around(
                lambda: client.call_tool("nc_notes_get_note", {"note_id": note_id}))

            async def op(name: str, args: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
                result, found = await counter.around(lambda: client.call_tool(name, args))
                return tool_result(result), found

            _, out["notes_get_note"] = await op("nc_notes_get_note", {"note_id": note_id})
            result, out["notes_search_notes"] = await op("nc_notes_search_notes", {"query": "Bench"})
            out["notes_search_notes"]["method"] = result.get("method")
            out["calendar_list_events_month"] = await _guard("calendar" in plugins, "calendar", _calendar, client, op)
            out["contacts_search_all_addressbooks"] = await _guard("contacts" in plugins, "contacts", _contacts, client, op)
    finally:
        server.stop()
    if oauth is not None and idp is not None:
        token = idp.token(user, "nc:read nc:write", resource=f"{oauth.url}/mcp")
        async with connect(oauth.url, token) as client:
            await client.list_tools()
            _, out["oauth_first_call_new_token"] = await counter.around(
                lambda: client.call_tool("nc_notes_get_note", {"note_id": note_id}))
            _, out["oauth_next_call"] = await counter.around(
                lambda: client.call_tool("nc_notes_get_note", {"note_id": note_id}))
    return out


async def _guard(installed: bool, plugin: str, measure: Any, *args: Any) -> dict[str, Any]:
    if not installed:
        return {"skipped": f"{plugin} plugin not installed"}
    try:
        return dict(await measure(*args))
    except Exception as exc:  # a plugin under development may change its tools; record, do not abort
        return {"failed": f"{type(exc).__name__}: {exc}"[:500]}


async def _calendar(client: Any, op: Any) -> dict[str, Any]:
    calendars = tool_result(await client.call_tool("nc_calendar_list_calendars", {"component": "VEVENT"}))["calendars"]
    for day in (3, 8, 12, 17, 24):
        tool_result(await client.call_tool("nc_calendar_create_event", {
            "summary": f"Bench {day}", "start": f"2030-03-{day:02d}T10:00", "timezone": "Europe/Berlin"}))
    await op("nc_calendar_list_events", {"start": "2030-03-01", "end": "2030-03-31", "timezone": "Europe/Berlin"})  # warm
    result, found = await op("nc_calendar_list_events", {"start": "2030-03-01", "end": "2030-03-31", "timezone": "Europe/Berlin"})
    found.update(calendars=len(calendars), events=result.get("count"), report_requests=_count(found, "REPORT"))
    return found


async def _contacts(client: Any, op: Any) -> dict[str, Any]:
    books = tool_result(await client.call_tool("nc_contacts_list_addressbooks", {}))["addressbooks"]
    for name in ("Ada Benchmark", "Grace Benchmark", "Alan Benchmark"):
        tool_result(await client.call_tool("nc_contacts_create_contact", {"formatted_name": name}))
    await op("nc_contacts_search_contacts", {"query": "Benchmark", "all_addressbooks": True})  # warm
    result, found = await op("nc_contacts_search_contacts", {"query": "Benchmark", "all_addressbooks": True})
    found.update(addressbooks=len(books), searched=len(result.get("addressbooks_searched", [])),
                 contacts=len(result.get("contacts", [])), report_requests=_count(found, "REPORT"))
    return found


# --- memory while moving a large file through the files plugin ------------------------------------------------

async def files_memory(procs: Processes, sandbox_url: str, user: str, password: str, size_mb: int,
                       piece: int = 2 * MiB, read_range: int = 4 * MiB) -> dict[str, Any]:
    """In a fresh Basic-mode server: write ``size_mb`` MB by pieces (``nc_files_write_file`` with
    upload_id) and read it back by ranges (``nc_files_read_file`` offset/length); peak RSS while doing so."""
    data = hashlib.shake_256(f"ncmcp-bench-{size_mb}".encode()).digest(size_mb * 1000 * 1000)  # incompressible
    server = procs.ncmcp(sandbox_url, user=user, password=password)
    path = f"/bench-{size_mb}mb-{os.getpid()}.bin"
    try:
        await anyio.to_thread.run_sync(server.wait_port)
        async with connect(server.url) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            for needed in ("nc_files_write_file", "nc_files_read_file"):
                if needed not in tools:
                    return {"skipped": f"{needed} is not offered"}
            schema = {k: set(tools[k].input_schema.get("properties", {})) for k in ("nc_files_write_file", "nc_files_read_file")}
            missing = ({"path", "content", "encoding", "upload_id", "final", "offset"} - schema["nc_files_write_file"]) | \
                      ({"path", "offset", "length"} - schema["nc_files_read_file"])
            if missing:
                return {"skipped": f"the files tools' schemas lack {sorted(missing)}"}
            # warm the code paths (lazy imports, first WebDAV requests) with a small file
            await _write(client, f"/bench-warm-{os.getpid()}.bin", data[:300_000], piece=100_000)
            await _read(client, f"/bench-warm-{os.getpid()}.bin", 300_000, 100_000)
            await anyio.sleep(0.3)
            baseline = server.rss()
            with RssSampler(server.pid) as writing:
                t0 = time.perf_counter()
                await _write(client, path, data, piece)
                write_s = time.perf_counter() - t0
            with RssSampler(server.pid) as reading:
                t0 = time.perf_counter()
                digest = await _read(client, path, len(data), read_range)
                read_s = time.perf_counter() - t0
            if digest != hashlib.sha256(data).hexdigest():
                raise RuntimeError("the file read back differs from the file written")
            peak = max(writing.peak, reading.peak)
            return {"size_mb": size_mb, "piece_bytes": piece, "read_range_bytes": read_range,
                    "baseline_rss_bytes": baseline, "peak_rss_bytes": peak, "growth_bytes": peak - baseline,
                    "write_growth_bytes": writing.peak - baseline, "read_growth_bytes": reading.peak - baseline,
                    "rss_after_bytes": server.rss(), "write_mb_per_s": size_mb / write_s, "read_mb_per_s": size_mb / read_s}
    finally:
        server.stop()


async def _write(client: Any, path: str, data: bytes, piece: int) -> None:
    upload_id = None
    for offset in range(0, len(data), piece):
        chunk = data[offset:offset + piece]
        final = offset + piece >= len(data)
        args: dict[str, Any] = {"path": path, "content": base64.b64encode(chunk).decode(), "encoding": "base64",
                                "final": final, "offset": offset, "overwrite": True}
        if upload_id:
            args["upload_id"] = upload_id
        if final:
            args["total_size"] = len(data)
        out = tool_result(await client.call_tool("nc_files_write_file", args))
        upload_id = out.get("upload_id") or upload_id
        if final and out.get("status") != "written":
            raise RuntimeError(f"write did not finish: {out}")


async def _read(client: Any, path: str, size: int, length: int) -> str:
    digest = hashlib.sha256()
    offset = 0
    while offset < size:
        result = await client.call_tool("nc_files_read_file", {"path": path, "offset": offset, "length": length,
                                                               "mode": "binary"})
        out = tool_result(result)
        blobs = [c.resource.blob for c in result.content if getattr(c, "type", "") == "resource"]
        if not blobs:
            raise RuntimeError(f"read returned no binary content: {str(out)[:200]}")
        chunk = base64.b64decode(blobs[0])
        digest.update(chunk)
        offset += len(chunk)
        if not chunk or out.get("next_offset") is None and offset < size:
            raise RuntimeError(f"read stopped at {offset} of {size}")
    return digest.hexdigest()
