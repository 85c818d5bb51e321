"""ncmcp benchmark: one command, reproducible figures.

    .venv/bin/python bench/run.py [--quick] [--out bench/results]     # full run ≈ 5-7 min, --quick < 90 s
    .venv/bin/python bench/run.py --profile [--out bench/results]     # separate run: cProfile of each server

Writes ``latest.json`` and ``latest.md`` to ``--out``. What each figure means: bench/README.md.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))

import measure  # noqa: E402
import report  # noqa: E402
from ncmcp.testing.http import connect  # noqa: E402
from ncmcp.testing.idp import TestIdP  # noqa: E402
from procs import BenchSandbox, Processes  # noqa: E402

USER = "bench"
SCOPES = "nc:read nc:write"

# phase -> operations per block; every round runs `blocks` blocks of each server (see measure.interleaved)
PHASES = {"list": 3, "call": 20, "call_conc": 32, "raw_list": 5, "raw_call": 25, "raw_call_conc": 48}
FULL = dict(cold_runs=5, rounds=9, blocks=6, phases=PHASES, token_iterations=20_000, token_repeats=5,
            upstream_n=300, files_sizes=(10, 50), files_runs=3)
QUICK = dict(cold_runs=3, rounds=3, blocks=3, phases={k: max(3, v // 2) for k, v in PHASES.items()},
             token_iterations=5_000, token_repeats=3, upstream_n=100, files_sizes=(5, 25), files_runs=1)


def installed_plugins() -> dict[str, str]:
    """Plugin name -> distribution and version, from the ``ncmcp.plugins`` entry points."""
    found = {}
    for ep in importlib.metadata.entry_points(group="ncmcp.plugins"):
        dist = ep.dist
        found[ep.name] = f"{dist.name} {dist.version}" if dist else "?"
    return dict(sorted(found.items()))


def files_installed() -> bool:
    try:
        importlib.metadata.distribution("ncmcp-files")
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


async def bench(cfg: dict[str, Any], procs: Processes) -> dict[str, Any]:
    res: dict[str, Any] = {}
    idp = TestIdP().start()
    procs.on_close(idp.stop)
    sandbox = BenchSandbox(issuer=idp.issuer, data_dir=procs.logdir / "sandbox").start()
    procs.on_close(sandbox.stop)
    password = sandbox.add_user(USER)
    plugins = installed_plugins()
    res["plugins"] = plugins
    log = lambda msg: print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)  # noqa: E731

    log(f"cold start ×{cfg['cold_runs']} (ncmcp with {', '.join(plugins)}; floor)")
    res["cold_start"] = {
        "ncmcp": await measure.cold_start(lambda: procs.ncmcp(sandbox.url, user=USER, password=password), cfg["cold_runs"]),
        "floor": await measure.cold_start(lambda: procs.floor(sandbox.url, USER, password), cfg["cold_runs"]),
    }

    basic = procs.ncmcp(sandbox.url, user=USER, password=password)
    oauth = procs.ncmcp(sandbox.url, issuer=idp.issuer)
    floor = procs.floor(sandbox.url, USER, password)
    for server in (basic, oauth, floor):
        await anyio.to_thread.run_sync(server.wait_port)
    async with connect(basic.url) as client:
        note = measure.tool_result(await client.call_tool(
            "nc_notes_create_note", {"title": "Bench note", "category": "Bench", "content": "Benchmark note.\n" * 30}))
    note_id = int(note["id"])
    token = idp.token(USER, SCOPES, resource=f"{oauth.url}/mcp")
    args = {"note_id": note_id}
    targets = [measure.Target("floor", floor, None, "get_note", args),
               measure.Target("basic", basic, None, "nc_notes_get_note", args),
               measure.Target("oauth", oauth, token, "nc_notes_get_note", args)]
    res["protocol"] = (await measure.first_list(basic))["protocol"]
    res["tools_list_bytes"] = {t.name: await measure.list_bytes(t.server, t.token) for t in targets}
    res["throughput"] = {}
    for phase, ops in cfg["phases"].items():
        log(f"{phase}: {cfg['rounds']} rounds × {cfg['blocks']} blocks × {ops} operations per server")
        res["throughput"][phase] = await measure.interleaved(phase, targets, cfg["rounds"], cfg["blocks"], ops)
    res["ratios"] = ratios(res["throughput"])
    res["upstream_get"] = await measure.upstream_get(sandbox.url, USER, password, note_id, cfg["upstream_n"])
    res["rss_after_warmup_bytes"] = {t.name: t.server.rss() for t in targets}

    log("token verification (in process)")
    res["token_verification"] = await measure.token_verification(idp, sandbox.url, USER, cfg["token_iterations"],
                                                                 cfg["token_repeats"])
    log("upstream requests per operation")
    res["upstream_requests"] = await measure.upstream_requests(procs, sandbox, USER, password, note_id, set(plugins),
                                                               oauth=oauth, idp=idp)
    if files_installed():
        res["files_memory"] = {}
        for size in cfg["files_sizes"]:
            log(f"files plugin: {size} MB write by pieces + read by ranges, ×{cfg['files_runs']}")
            res["files_memory"][f"{size}mb"] = await files_memory(procs, sandbox.url, password, size, cfg["files_runs"])
    else:
        res["files_memory"] = {"skipped": "files plugin not installed"}
    return res


async def files_memory(procs: Processes, sandbox_url: str, password: str, size: int, runs: int) -> dict[str, Any]:
    """``measure.files_memory`` ``runs`` times (each in a fresh server); medians of the numbers."""
    samples = []
    for _ in range(runs):
        try:
            sample = await measure.files_memory(procs, sandbox_url, USER, password, size)
        except Exception as exc:
            return {"failed": f"{type(exc).__name__}: {exc}"[:500]}
        if "skipped" in sample:
            return sample
        samples.append(sample)
    medians = {k: statistics.median(s[k] for s in samples) for k in samples[0]}
    return {**medians, "runs": runs, "samples": samples}


def ratios(throughput: dict[str, Any]) -> dict[str, Any]:
    """ncmcp ÷ floor per call phase: throughput (ratio of the medians, and the range of per-round ratios), and
    server CPU time per call (over the whole phase)."""
    out: dict[str, Any] = {}
    for phase in ("call", "call_conc", "raw_call", "raw_call_conc"):
        floor = throughput[phase]["floor"]
        for mode in ("basic", "oauth"):
            ours = throughput[phase][mode]
            per_round = [o["throughput_per_s"] / f["throughput_per_s"]
                         for o, f in zip(ours["rounds"], floor["rounds"], strict=True)]
            out[f"{mode}.{phase}"] = {"ratio": ours["throughput_per_s"] / floor["throughput_per_s"],
                                      "per_round_min": min(per_round), "per_round_max": max(per_round),
                                      "server_cpu_ratio": ours["server_cpu_ms_per_op"] / floor["server_cpu_ms_per_op"]}
    return out


async def profile(out_dir: Path, procs: Processes) -> None:
    """Each server under cProfile, driven by raw posts (sequential, then 8 concurrent); a per-package summary."""
    import pstats

    idp = TestIdP().start()
    procs.on_close(idp.stop)
    sandbox = BenchSandbox(issuer=idp.issuer, data_dir=procs.logdir / "sandbox").start()
    procs.on_close(sandbox.stop)
    password = sandbox.add_user(USER)
    prof_dir = procs.logdir
    servers = {
        "floor": procs.floor(sandbox.url, USER, password, profile=prof_dir / "floor.prof"),
        "basic": procs.ncmcp(sandbox.url, user=USER, password=password, profile=prof_dir / "basic.prof"),
        "oauth": procs.ncmcp(sandbox.url, issuer=idp.issuer, profile=prof_dir / "oauth.prof"),
    }
    for server in servers.values():
        await anyio.to_thread.run_sync(server.wait_port)
    async with connect(servers["basic"].url) as client:
        note = measure.tool_result(await client.call_tool("nc_notes_create_note", {"title": "Bench", "content": "x" * 480}))
    calls = {}
    for name, server in servers.items():
        token = idp.token(USER, SCOPES, resource=f"{server.url}/mcp") if name == "oauth" else None
        target = measure.Target(name, server, token, "get_note" if name == "floor" else "nc_notes_get_note",
                                {"note_id": note["id"]})
        await measure.interleaved("raw_call_conc", [target], 1, 1, 200)  # warm-up, not profiled
        dump = prof_dir / f"{name}.prof"
        server.proc.send_signal(signal.SIGUSR1)
        await anyio.sleep(0.2)
        await measure.interleaved("raw_call", [target], 1, 1, 400)
        await measure.interleaved("raw_call_conc", [target], 1, 1, 800)
        server.proc.send_signal(signal.SIGUSR2)  # its handler writes the dump before the SIGINT of stop() is acted on
        server.stop()
        if not dump.exists():
            raise RuntimeError(f"{name}: no profile written:\n{server.log_text()[-2000:]}")
        calls[name] = 400 + 800 + 3 + 8 * 3  # measured + the drivers' warm-up calls
    lines = ["# cProfile of one server process per variant", "",
             "Raw 2026-07-28 `tools/call nc_notes_get_note` posts (400 sequential, then 800 from 8 clients) against each "
             "server, warmed up first, with cProfile counting CPU time (not wall time) only while those calls ran "
             "(`run.py --profile`). cProfile slows Python code down several times, so compare *shares* and the "
             "ncmcp-versus-floor differences, not absolute microseconds.", ""]
    for name in servers:
        stats = pstats.Stats(str(prof_dir / f"{name}.prof"))
        lines += report.profile_section(name, stats, calls[name])
    (out_dir / "profile.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out_dir / 'profile.md'}", file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and calls (< 90 s)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--profile", action="store_true", help="profile each server instead (writes profile.md)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    cfg = QUICK if args.quick else FULL
    procs = Processes()
    started = time.perf_counter()
    env = report.environment()
    try:
        if args.profile:
            anyio.run(profile, args.out, procs)
            return 0
        results = anyio.run(bench, cfg, procs)
    except BaseException:
        print(f"server logs and sandbox data kept in {procs.logdir}", file=sys.stderr)
        procs.keep_logs = True
        raise
    finally:
        procs.close()
    env["load_average_end"] = report.loadavg()
    doc = {"environment": env, "mode": "quick" if args.quick else "full", "config": cfg,
           "duration_s": round(time.perf_counter() - started, 1), **results}
    (args.out / "latest.json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
    (args.out / "latest.md").write_text(report.markdown(doc))
    print(report.markdown(doc))
    print(f"wrote {args.out / 'latest.json'} and {args.out / 'latest.md'} in {doc['duration_s']} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
