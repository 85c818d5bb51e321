"""Reporting: the environment a run happened in, and the markdown rendering of a results document."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import subprocess
from collections import defaultdict
from typing import Any

import psutil
from procs import ROOT

PACKAGES = ("mcp", "mcp-types", "httpx", "httpx2", "uvicorn", "starlette", "pydantic", "pyjwt", "anyio", "ncmcp")


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def environment() -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False).stdout.strip()

    cpu_model = platform.processor()
    try:
        cpu_model = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "working_tree_dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": os.cpu_count(),
        "cpu_model": cpu_model,
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "packages": versions,
        "load_average_start": loadavg(),
    }


# --- markdown ----------------------------------------------------------------------------------------

def _f(value: float, digits: int = 1) -> str:
    return f"{value:,.{digits}f}"


def _mb(value: float) -> str:
    return f"{value / 1e6:,.1f} MB"


def _ratio(value: float, target: float | None = 0.9) -> str:
    mark = "" if target is None else (" ✓" if round(value, 2) >= target else " ✗")
    return f"{value:.2f}{mark}"


def markdown(doc: dict[str, Any]) -> str:
    env, cfg = doc["environment"], doc["config"]
    pk = env["packages"]
    out = [
        "# ncmcp benchmark results", "",
        f"- **commit** `{env['commit']}`{' (working tree had uncommitted changes)' if env['working_tree_dirty'] else ''}, "
        f"{env['date']}, `{doc['mode']}` run, {doc['duration_s']} s",
        f"- **machine** {env['cores']} cores, {env['cpu_model']}, {env['ram_gib']} GiB RAM, {env['os']}; "
        f"load average {env['load_average_start']} at start, {env.get('load_average_end')} at end (the machine is shared)",
        f"- **software** Python {env['python']}, mcp {pk['mcp']}, httpx {pk['httpx']}, httpx2 {pk['httpx2']}, "
        f"uvicorn {pk['uvicorn']}, starlette {pk['starlette']}, pydantic {pk['pydantic']}, pyjwt {pk['pyjwt']}",
        f"- **plugins loaded** {', '.join(f'{k} ({v})' for k, v in doc['plugins'].items())}",
        f"- **client** the official MCP client (`mcp.Client`, mode `auto`, protocol {doc['protocol']}) over HTTP on "
        "loopback; \"raw\" rows post the same 2026-07-28 request bytes with one `httpx2` client per worker",
        f"- **repetitions** medians of {cfg['rounds']} rounds; within a round the three servers take turns in "
        f"{cfg['blocks']} short blocks each (order rotated), so load from other processes hits them alike",
        "",
    ]
    out += _summary(doc)
    out += _throughput(doc)
    out += _cold_and_memory(doc)
    out += _tokens(doc["token_verification"])
    out += _upstream(doc["upstream_requests"])
    return "\n".join(out) + "\n"


def _summary(doc: dict[str, Any]) -> list[str]:
    """The headline figures (the table for the project README)."""
    t, r, cold = doc["throughput"], doc["ratios"], doc["cold_start"]
    tv, up, rss = doc["token_verification"], doc["upstream_requests"], doc["rss_after_warmup_bytes"]

    def calls(phase: str, mode: str) -> str:
        v = t[phase][mode]
        return (f"{v['throughput_per_s']:,.0f} calls/s, median {v['median_ms']:.1f} ms, p95 {v['p95_ms']:.1f} ms "
                f"(÷ floor: **{r[f'{mode}.{phase}']['ratio']:.2f}**)")

    def per(key: str, unit: str) -> str:
        found = up.get(key, {})
        if "report_requests" not in found:
            return found.get("skipped") or f"failed: {found.get('failed', '?')}"
        other = found["total"] - found["report_requests"]
        return (f"{found['report_requests']} REPORT for {found[unit]} {'calendars' if unit == 'calendars' else 'address books'}"
                + (f" (+{other} PROPFIND)" if other else ""))

    rows = [
        ("cold start → first `tools/list`", f"{cold['ncmcp']['first_tools_list_ms']:,.0f} ms with {len(doc['plugins'])} plugins, "
         f"{cold['ncmcp']['tools']} tools (floor {cold['floor']['first_tools_list_ms']:,.0f} ms)"),
        ("memory after warm-up (RSS)", f"{_mb(rss['basic'])} Basic, {_mb(rss['oauth'])} OAuth (floor {_mb(rss['floor'])})"),
        ("`tools/list`", f"median {t['list']['basic']['median_ms']:.1f} ms, p95 {t['list']['basic']['p95_ms']:.1f} ms "
         f"({doc['tools_list_bytes']['basic'] / 1000:,.0f} KB answer)"),
        ("`tools/call` get note, Basic, sequential", calls("call", "basic")),
        ("… Basic, 8 concurrent clients", calls("call_conc", "basic")),
        ("… OAuth (JWT), sequential", calls("call", "oauth")),
        ("… OAuth (JWT), 8 concurrent clients", calls("call_conc", "oauth")),
        ("… raw posts, 8 concurrent, Basic / OAuth ÷ floor", f"**{r['basic.raw_call_conc']['ratio']:.2f}** / "
         f"**{r['oauth.raw_call_conc']['ratio']:.2f}**"),
        ("server CPU per call ÷ floor (8 concurrent, Basic / OAuth)",
         f"{r['basic.call_conc']['server_cpu_ratio']:.2f} / {r['oauth.call_conc']['server_cpu_ratio']:.2f} "
         f"({t['call_conc']['basic']['server_cpu_ms_per_op']:.2f} ms vs "
         f"{t['call_conc']['floor']['server_cpu_ms_per_op']:.2f} ms)"),
        ("token verification", f"JWT first sight {tv['jwt_first_sight_us']:.0f} µs, JWT cached {tv['jwt_cached_us']:.1f} µs, "
         f"opaque cached {tv['opaque_cached_us']:.1f} µs"),
        ("upstream requests", f"get note {up['notes_get_note']['total']}, search notes {up['notes_search_notes']['total']}; "
         f"events of a month: {per('calendar_list_events_month', 'calendars')}; "
         f"contact search: {per('contacts_search_all_addressbooks', 'addressbooks')}"),
    ]
    files = doc["files_memory"]
    if "skipped" in files:
        rows.append(("large file, peak RSS growth", files["skipped"]))
    else:
        parts = [f"{v['size_mb']:.0f} MB: +{v['growth_bytes'] / 1e6:.0f} MB" for v in files.values() if "growth_bytes" in v]
        rows.append(("large file written + read, peak RSS growth", ", ".join(parts) or "failed"))
    return ["## Summary", "", "| figure | value |", "|---|---|", *[f"| {a} | {b} |" for a, b in rows], ""]


def _throughput(doc: dict[str, Any]) -> list[str]:
    t, r, cfg = doc["throughput"], doc["ratios"], doc["config"]
    names = ("floor", "basic", "oauth")
    out = ["## `tools/call nc_notes_get_note` and `tools/list`", "",
           "| measure | floor | ncmcp Basic | ncmcp OAuth (JWT) | Basic ÷ floor | OAuth ÷ floor |", "|---|--:|--:|--:|--:|--:|"]

    def row(label: str, phase: str, key: str, digits: int = 1, target: bool = False) -> None:
        vals = [t[phase][n][key] for n in names]
        cells = [_f(v, digits) for v in vals]
        if target:
            cells += [_ratio(r[f"basic.{phase}"]["ratio"]), _ratio(r[f"oauth.{phase}"]["ratio"])]
        else:
            cells += [_ratio(vals[1] / vals[0], None), _ratio(vals[2] / vals[0], None)]
        out.append(f"| {label} | " + " | ".join(cells) + " |")

    row("tools/list median ms", "list", "median_ms", 2)
    row("tools/list p95 ms", "list", "p95_ms", 2)
    size = doc["tools_list_bytes"]
    out.append(f"| tools/list answer, KB | {size['floor'] / 1000:,.1f} | {size['basic'] / 1000:,.1f} | "
               f"{size['oauth'] / 1000:,.1f} | | |")
    row("tools/list median ms, raw post (no client parsing)", "raw_list", "median_ms", 2)
    row("**tools/call sequential, calls/s**", "call", "throughput_per_s", target=True)
    row("tools/call sequential median ms", "call", "median_ms", 2)
    row("tools/call sequential p95 ms", "call", "p95_ms", 2)
    row("**tools/call 8 concurrent clients, calls/s**", "call_conc", "throughput_per_s", target=True)
    row("tools/call 8 concurrent median ms", "call_conc", "median_ms", 2)
    row("tools/call 8 concurrent p95 ms", "call_conc", "p95_ms", 2)
    row("server CPU ms per call, sequential", "call", "server_cpu_ms_per_op", 2)
    row("server CPU ms per call, 8 concurrent", "call_conc", "server_cpu_ms_per_op", 2)
    row("**raw tools/call sequential, calls/s**", "raw_call", "throughput_per_s", target=True)
    row("raw tools/call sequential median ms", "raw_call", "median_ms", 2)
    row("**raw tools/call 8 concurrent, calls/s**", "raw_call_conc", "throughput_per_s", target=True)
    row("raw tools/call 8 concurrent p95 ms", "raw_call_conc", "p95_ms", 2)
    row("server CPU ms per call, raw 8 concurrent", "raw_call_conc", "server_cpu_ms_per_op", 2)
    up = doc["upstream_get"]
    ph = cfg["phases"]
    out += ["", f"Per round and server: {cfg['blocks']} blocks of {ph['call']} sequential calls, {ph['call_conc']} calls "
            f"from 8 clients, {ph['list']} `tools/list`; raw {ph['raw_call']} / {ph['raw_call_conc']} calls, "
            f"{ph['raw_list']} lists. Bold rows: ncmcp ÷ floor throughput, the ratio of the medians "
            "(target ≥ 0.9: ✓ met, ✗ not met). The other ratio columns compare the same figure (for latencies "
            "and CPU, higher is worse). Per-round ratios:", ""]
    for key, v in r.items():
        out.append(f"- `{key}` throughput {v['ratio']:.2f} (rounds {v['per_round_min']:.2f}–{v['per_round_max']:.2f}); "
                   f"server CPU per call {v['server_cpu_ratio']:.2f}× the floor's")
    out += ["", f"The sandbox request alone (keep-alive `httpx` GET of the note, sequential): median "
            f"{up['median_ms']:.2f} ms, {up['throughput_per_s']:,.0f} requests/s.", ""]
    return out


def _cold_and_memory(doc: dict[str, Any]) -> list[str]:
    cold = doc["cold_start"]
    n, f = cold["ncmcp"], cold["floor"]
    rss = doc["rss_after_warmup_bytes"]
    out = ["## Start-up and memory", "",
           "| measure | ncmcp | floor |", "|---|--:|--:|",
           f"| cold start to first `tools/list` (median of {n['runs']}) | {n['first_tools_list_ms']:,.0f} ms | "
           f"{f['first_tools_list_ms']:,.0f} ms |",
           f"| … of which until the port accepts | {n['port_open_ms']:,.0f} ms | {f['port_open_ms']:,.0f} ms |",
           f"| tools listed | {n['tools']} | {f['tools']} |",
           f"| RSS right after start | {_mb(n['rss_after_first_list_bytes'])} | {_mb(f['rss_after_first_list_bytes'])} |",
           f"| RSS after warm-up (Basic) | {_mb(rss['basic'])} | {_mb(rss['floor'])} |",
           f"| RSS after warm-up (OAuth) | {_mb(rss['oauth'])} | |", ""]
    files = doc["files_memory"]
    if "skipped" in files:
        out += [f"Large files: skipped: {files['skipped'].removeprefix('skipped: ')}.", ""]
        return out
    runs = next((v.get("runs", 1) for v in files.values() if "runs" in v), 1)
    out += ["Large files through `nc_files_write_file` (pieces with `upload_id`) and `nc_files_read_file` (ranges), "
            f"each size in a fresh Basic-mode server, {f'median of {runs} runs' if runs > 1 else 'one run'}:", "",
            "| file | pieces / ranges | RSS before | peak RSS | growth (writing / reading) | write | read |",
            "|---|---|--:|--:|--:|--:|--:|"]
    growth = {}
    for key, v in files.items():
        if "growth_bytes" not in v:
            out.append(f"| {key} | {v.get('skipped') or v.get('failed')} | | | | | |")
            continue
        growth[key] = v["growth_bytes"]
        out.append(f"| {v['size_mb']:.0f} MB | {v['piece_bytes'] // 2**20:.0f} MiB / {v['read_range_bytes'] // 2**20:.0f} MiB | "
                   f"{_mb(v['baseline_rss_bytes'])} | {_mb(v['peak_rss_bytes'])} | {_mb(v['growth_bytes'])} "
                   f"({_mb(v['write_growth_bytes'])} / {_mb(v['read_growth_bytes'])}) | "
                   f"{v['write_mb_per_s']:.1f} MB/s | {v['read_mb_per_s']:.1f} MB/s |")
    if len(growth) == 2 and min(growth.values()) > 0:
        (small, g_small), (large, g_large) = sorted((int(k.removesuffix("mb")), g) for k, g in growth.items())
        out += ["", f"Peak growth for {large} MB ÷ for {small} MB: **{g_large / g_small:.2f}** "
                f"(1.0 = independent of the file size; {large / small:.1f} = proportional to it)."]
    out.append("")
    return out


def _tokens(tv: dict[str, Any]) -> list[str]:
    return ["## Token verification (`TokenVerifier.verify`, in process)", "",
            "| case | µs per call |", "|---|--:|",
            f"| JWT, first sight (fresh verifier, JWKS already fetched; {tv['jwt_first_sight_iterations']} calls) | "
            f"{tv['jwt_first_sight_us']:.1f} |",
            f"| … pyjwt RS256 decode alone, for comparison | {tv['pyjwt_decode_only_us']:.1f} |",
            f"| JWT, cached ({tv['iterations']:,} calls) | {tv['jwt_cached_us']:.2f} |",
            f"| opaque, cached ({tv['iterations']:,} calls) | {tv['opaque_cached_us']:.2f} |",
            f"| opaque, first sight (RFC 7662 introspection over loopback; {tv['opaque_first_sight_iterations']} calls) | "
            f"{tv['opaque_first_sight_us']:,.0f} |",
            "", f"Medians of {tv['repeats']} repeats; the JWT is {tv['jwt_bytes']} bytes.", ""]


def _upstream(up: dict[str, Any]) -> list[str]:
    def reqs(found: dict[str, Any]) -> str:
        if "skipped" in found or "failed" in found:
            return found.get("skipped") or f"failed: {found['failed']}"
        return ", ".join(f"`{k}` ×{v}" for k, v in found["requests"].items()) or "none"

    out = ["## Upstream (sandbox) requests per operation", "",
           "Counted by the sandbox around one call, after a warm-up call (Basic mode unless noted).", "",
           "| operation | requests | which |", "|---|--:|---|"]
    rows = [("server start-up (fresh process)", "startup"), ("first `tools/list`", "first_tools_list"),
            ("first `tools/call` (get note)", "first_tools_call"), ("`nc_notes_get_note`", "notes_get_note"),
            ("`nc_notes_search_notes`", "notes_search_notes"),
            ("`nc_calendar_list_events` over a month", "calendar_list_events_month"),
            ("`nc_contacts_search_contacts` in all address books", "contacts_search_all_addressbooks"),
            ("OAuth: first call with a new token", "oauth_first_call_new_token"),
            ("OAuth: next call, same token", "oauth_next_call")]
    for label, key in rows:
        found = up.get(key)
        if found is None:
            continue
        total = found.get("total", "—")
        extra = ""
        if "calendars" in found:
            extra = f" ({found['report_requests']} REPORT for {found['calendars']} calendars, {found['events']} events)"
        if "addressbooks" in found:
            extra = (f" ({found['report_requests']} REPORT for {found['addressbooks']} address books, "
                     f"{found['contacts']} contacts found)")
        if key == "notes_search_notes" and "method" in found:
            extra = f" (method: {found['method']})"
        out.append(f"| {label} | {total} | {reqs(found)}{extra} |")
    out.append("")
    return out


# --- profile summary ----------------------------------------------------------------------------------

GROUPS = (("ncmcp (core)", "/core/src/ncmcp/"), ("ncmcp plugins", "/plugins/"), ("floor server", "floor_server.py"),
          ("mcp SDK", "/mcp/"), ("mcp_types", "/mcp_types/"), ("pydantic", "/pydantic"), ("starlette", "/starlette/"),
          ("uvicorn", "/uvicorn/"), ("h11", "/h11/"), ("httpx / httpcore", "/httpx/"), ("httpx / httpcore", "/httpcore/"),
          ("httpx2", "/httpx2"), ("anyio", "/anyio/"), ("jsonschema", "/jsonschema"), ("referencing", "/referencing/"),
          ("structlog", "/structlog/"), ("pyjwt / cryptography", "/jwt/"), ("pyjwt / cryptography", "/cryptography/"),
          ("sse_starlette", "/sse_starlette/"), ("opentelemetry", "/opentelemetry/"), ("asyncio", "/asyncio/"),
          ("json", "/json/"), ("logging", "/logging/"))


def _group(filename: str) -> str:
    for label, needle in GROUPS:
        if needle in filename:
            return label
    if filename.startswith("~"):
        return "builtins (C functions)"
    return "other stdlib"


def profile_section(name: str, stats: Any, calls: int) -> list[str]:
    per_group: dict[str, float] = defaultdict(float)
    total = 0.0
    rows = []
    for (filename, line, func), (_, ncalls, tottime, cumtime, _) in stats.stats.items():
        per_group[_group(filename)] += tottime
        total += tottime
        rows.append((tottime, cumtime, ncalls, f"{filename.split('site-packages/')[-1].split('/work/main/')[-1]}:{line} {func}"))
    out = [f"## {name}", "", f"{calls} calls; {total:.2f} s of profiled CPU in total, {total / calls * 1e6:,.0f} µs per call "
           "(profiler overhead included)."]
    # imports while serving: a module that is not installed is searched for again on every import statement
    for (filename, _, func), (_, ncalls, _, cumtime, callers) in stats.stats.items():
        if func == "_find_and_load" and filename.startswith("<frozen") and cumtime / total >= 0.01:
            caller = max(callers.items(), key=lambda kv: kv[1][3])[0]
            out.append("")
            out.append(f"**{cumtime / total:.0%} of the CPU goes to imports while serving** ({ncalls / calls:.1f} per call, "
                       f"mostly from `{caller[0].split('site-packages/')[-1]}:{caller[1]} {caller[2]}`): an import of a module "
                       "that is not installed is not cached, so every such import statement searches `sys.path` again.")
    out += ["", "| package | share of own time | µs per call |", "|---|--:|--:|"]
    for label, t in sorted(per_group.items(), key=lambda kv: -kv[1]):
        if t / total >= 0.005:
            out.append(f"| {label} | {t / total:.1%} | {t / calls * 1e6:,.0f} |")
    out += ["", "Top functions by own time:", "", "| own µs/call | cumulative µs/call | calls | function |", "|--:|--:|--:|---|"]
    for tottime, cumtime, ncalls, where in sorted(rows, reverse=True)[:15]:
        out.append(f"| {tottime / calls * 1e6:,.1f} | {cumtime / calls * 1e6:,.1f} | {ncalls} | `{where}` |")
    ours = [r for r in rows if "/core/src/ncmcp/" in r[3] or "core/src/ncmcp" in r[3] or r[3].startswith("core/")]
    if ours:
        out += ["", "ncmcp functions by cumulative time:", "", "| cumulative µs/call | own µs/call | function |", "|--:|--:|---|"]
        for tottime, cumtime, _, where in sorted(ours, key=lambda r: -r[1])[:12]:
            out.append(f"| {cumtime / calls * 1e6:,.1f} | {tottime / calls * 1e6:,.1f} | `{where}` |")
    out.append("")
    return out
