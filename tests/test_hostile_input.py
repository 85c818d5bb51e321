"""Hostile input, property-based (hypothesis): every tool of every installed plugin, then the HTTP layer.

Tools: arguments generated from each tool's input schema (``hypothesis_jsonschema.from_schema``; while
its latest release cannot draw objects with the installed hypothesis, a small generator for the schema
keywords the plugins use stands in, see ``resilience_support.schema_strategy``), then with one
value anywhere in them (top level or nested) replaced by something hostile: very long strings,
unusual Unicode (RTL marks, NUL, astral characters, combining marks), control characters, XML/HTML
specials, CRLF/iCalendar/vCard injection, path tricks, wrong types; plus unknown and missing keys.
For each call:

* no unhandled exception reaches the client: a result, or an ``isError`` result with a clear message,
  never the host's generic "failed unexpectedly" (a plugin crashed), never a JSON-RPC error;
* arguments the schema refuses get a clear validation error ("Invalid arguments: <where>: <why>");
* no request leaves the user's root: no path into another user's DAV collections, and for the files
  plugin nothing outside ``/remote.php/dav/{files,trashbin,versions,uploads}/<user>/`` (checked per call
  on the requests ncmcp sends, and per tool on the sandbox's own counters).

Tools are found through ``load_plugins()`` when this module is imported, so plugins installed later are
tested without changes here. The number of examples per tool shrinks as tools are added, to keep the
file within about a minute (``NCMCP_HOSTILE_EXAMPLES`` sets the total, default 1100;
``NCMCP_HOSTILE_SHRINK=1`` lets hypothesis shrink a failure to a minimal input, which can take minutes).

Also: refusals do not echo huge values back; an integral float (5.0, valid for ``integer``) means the
same to a read tool as the integer.

HTTP: malformed JSON-RPC, batches, oversized bodies, odd headers: each answered 4xx or with a JSON-RPC
error, never 5xx, and the server keeps serving.
"""

from __future__ import annotations

import copy
import json
import os
import time
from typing import Any

import anyio
import httpx
import jsonschema
import pytest
from anyio.from_thread import start_blocking_portal
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import strategies as st
from mcp.shared.exceptions import MCPError
from ncmcp.plugin.manager import load_plugins
from ncmcp.testing.sandbox import SandboxProcess
from resilience_support import (
    GENERIC_CRASH_TEXT,
    foreign_dav_paths,
    outside_files_roots,
    requests_between,
    schema_strategy,
    text_of,
)
from support import OAuthServer, unique_user

REGISTRY = load_plugins()  # once: loading validates every schema and takes most of a second
TOOLS = sorted(REGISTRY.tools)
TOTAL_EXAMPLES = int(os.environ.get("NCMCP_HOSTILE_EXAMPLES", "1100"))
PER_TOOL = max(6, min(60, TOTAL_EXAMPLES // max(1, len(TOOLS))))
# Shrinking finds the smallest failing input but can take minutes when a bug is present: opt in.
PHASES = tuple(Phase) if os.environ.get("NCMCP_HOSTILE_SHRINK") else (Phase.explicit, Phase.reuse, Phase.generate)
SLOW_CALL = 10.0  # a single call slower than this on hostile input is reported (a denial-of-service lever)
MAX_ERROR_TEXT = 8 * 1024  # a refusal is meant to be read: it must not echo megabytes of input back

LONG = 70_000  # longer than every maxLength in use, and than the sandbox's URL and header limits
HOSTILE_STRINGS = [
    "", " ", "A" * 5000, "x" * LONG, "é" * 3000,
    # Unicode: RTL/bidi controls, zero-width, BOM, NUL, astral (surrogate-free), combining marks, noncharacters
    "\u202egnp.exe\u202c", "abc\u200f\u200e\u2066\u2069", "\u200b\u200d\ufeff", "a\x00b", "\x00",
    "😀𝔘𓀀\U0010fffd", "e" + "\u0301" * 500, "\ufffe\uffff", "ǅ\u0130\u0131ß", "\u2028\u2029",
    # control characters and header/iCalendar/vCard injection
    "\x01\x02\x1b[31mred\x7f", "\t\v\f", "line\r\nX-Injected: 1", "x\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nSUMMARY:evil",
    "x\nFN:evil\nEND:VCARD", "a;b,c\\n", "=cmd|' /C calc'!A0",
    # XML / HTML
    "&<>'\"", "<script>alert(1)</script>", "]]><x/>", "<!DOCTYPE d [<!ENTITY e SYSTEM 'file:///etc/passwd'>]><d>&e;</d>",
    "&amp;&lt;&#0;&#x110000;", "<d:href>/remote.php/dav/files/admin/</d:href>",
    # paths
    "../", "..", "../../../../etc/passwd", "/etc/passwd", "%2e%2e/", "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "..%2f..%2fadmin",
    "%252e%252e%252f", "....//....//", "..\\..\\windows", "a/./b/../../../x", "/remote.php/dav/files/admin/secret",
    "../admin/files", "//", "/", "~", "~root/.ssh", "*", "?", "#frag", "%00", "%", "C:\\Windows\\win.ini",
    "file:///etc/passwd", "http://127.0.0.1:1/", "nc://files/../../", ".attachments.1/../../x", "Notes/../../..",
    # numbers and dates as text
    "1e309", "-0", "NaN", "99999-99-99", "0000-00-00T25:61", "2025-02-30", "FREQ=SECONDLY;INTERVAL=1",
    "FREQ=YEARLY;COUNT=999999999", "P99999999D", "Europe/../../etc/localtime",
]
WRONG_TYPES: list[Any] = [None, True, False, 0, -1, -(2**63), 2**63, 10**30, 1.5, -0.0, 1e308, [], {}, [None],
                          ["../"], {"$ne": 1}, {"__proto__": {"x": 1}}, [[[[[]]]]], {"a": {"b": {"c": {}}}}]


def _corpus_item(index: int) -> str:
    return HOSTILE_STRINGS[index]


def hostile_text() -> st.SearchStrategy[str]:
    anything = st.characters(exclude_categories=("Cs",))  # everything JSON can carry
    controls = st.characters(min_codepoint=0, max_codepoint=0x1F)
    corpus = st.sampled_from(range(len(HOSTILE_STRINGS))).map(_corpus_item)  # a short repr, unlike sampled_from(strings)
    return st.one_of(
        corpus,
        st.text(anything, max_size=40),
        st.text(st.one_of(controls, st.sampled_from("&<>'\"/.%\\\u202e\u200f😀")), min_size=1, max_size=30),
        st.tuples(corpus, corpus).map("".join),
    )


def hostile_value() -> st.SearchStrategy[Any]:
    return st.one_of(hostile_text(), hostile_text(), st.sampled_from(WRONG_TYPES))


def _places(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON value (except the root) where another value can go."""
    found = [path] if path else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _places(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _places(item, (*path, index))
    return found


def _replace(args: dict[str, Any], path: tuple[Any, ...], new: Any) -> dict[str, Any]:
    out = copy.deepcopy(args)
    target: Any = out
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = new
    return out


def arguments(schema: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    valid = schema_strategy(schema)
    properties = sorted(schema.get("properties", {}))

    @st.composite
    def mutated(draw: st.DrawFn) -> dict[str, Any]:
        args = draw(valid)
        places = _places(args) + [(name,) for name in properties if name not in args]
        kind = draw(st.sampled_from(["replace", "replace", "replace", "extra", "drop"]))
        if kind == "replace" and places:
            return _replace(args, draw(st.sampled_from(places)), draw(hostile_value()))
        if kind == "drop" and args:
            args = dict(args)
            args.pop(draw(st.sampled_from(sorted(args))))
            return args
        return {**args, draw(st.sampled_from(["__proto__", "../x", "", "\x00", "extra"])): draw(hostile_value())}

    return st.one_of(valid, mutated(), mutated(), mutated())


def compact(value: Any) -> str:
    """JSON for a failure message, with long strings shown as their start and length."""
    def shrink(v: Any) -> Any:
        if isinstance(v, str) and len(v) > 120:
            return f"{v[:40]}...<{len(v)} chars>"
        if isinstance(v, dict):
            return {k: shrink(x) for k, x in v.items()}
        if isinstance(v, list):
            return [shrink(x) for x in v]
        return v
    return json.dumps(shrink(value), ensure_ascii=True)


def _problems(tool: str, args: dict[str, Any], call: Any, valid: bool) -> list[str]:
    """What is wrong with one call's outcome (empty when it is acceptable)."""
    began = time.monotonic()
    try:
        result = call()
    except MCPError as exc:
        return [f"JSON-RPC error {exc.code} reached the client: {exc}"]
    except RuntimeError as exc:  # the official client's check of structured content against outputSchema
        return [f"client refused the result: {exc}"]
    took = time.monotonic() - began
    problems = [f"call took {took:.1f} s"] if took > SLOW_CALL else []
    text = text_of(result)
    if result.is_error:
        if GENERIC_CRASH_TEXT in text:
            problems.append(f"the plugin crashed (generic error): {text[:300]!r}")
        if "Traceback" in text or not text.strip():
            problems.append(f"unclear error text: {text[:300]!r}")
        if not valid and not text.startswith("Invalid arguments: "):
            problems.append(f"schema-invalid arguments not refused with a validation error: {text[:300]!r}")
    elif not valid:
        problems.append("schema-invalid arguments were accepted")
    return problems


@pytest.mark.parametrize("tool", TOOLS)
def test_tool_survives_hostile_arguments(tool: str, make_host: Any, sandbox: SandboxProcess,
                                         sandbox_user: tuple[str, str]) -> None:
    user = sandbox_user[0]
    loaded = REGISTRY.tools[tool]
    schema = loaded.spec.input_schema
    validator = jsonschema.Draft202012Validator(schema)
    files_tool = loaded.plugin == "files"
    sent: list[str] = []
    failures: list[str] = []

    async def record(request: httpx.Request) -> None:
        sent.append(request.url.path)

    with start_blocking_portal() as portal, portal.wrap_async_context_manager(make_host(registry=REGISTRY)) as host:
        # A bounded tool timeout: a hostile value that makes a tool run long shows up as a slow call.
        host.host.settings = host.host.settings.model_copy(update={"tool_timeout": SLOW_CALL + 5})
        host.host.pool.http.event_hooks = {"request": [record], "response": []}
        before = sandbox.stats()

        @settings(max_examples=PER_TOOL, deadline=None, database=None, verbosity=Verbosity.quiet, phases=PHASES,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
        @given(args=arguments(schema))
        def check(args: dict[str, Any]) -> None:
            sent.clear()
            valid = validator.is_valid(args)
            problems = _problems(tool, args, lambda: portal.call(host.call, tool, args), valid)
            problems += [f"request outside the user's DAV collections: {p}" for p in foreign_dav_paths(sent, user)]
            if files_tool:
                problems += [f"files request outside the user's roots: {p}" for p in outside_files_roots(sent, user)]
            if problems:
                failures.append(f"{tool}({compact(args)}):\n  " + "\n  ".join(problems))
                raise AssertionError(failures[-1])

        try:
            check()
        except Exception:  # reported below, outside the host's task group (which would wrap it)
            pass
        finally:
            after = sandbox.stats()
    if failures:
        # With NCMCP_HOSTILE_SHRINK=1 the last failure is hypothesis's minimal example.
        pytest.fail(f"{len(failures)} failing call(s); last: {failures[-1]}\nfirst: {failures[0]}", pytrace=False)
    paths = [key.split(" ", 1)[1] for key in requests_between(before, after)]
    assert not foreign_dav_paths(paths, user), foreign_dav_paths(paths, user)
    if files_tool:
        assert not outside_files_roots(paths, user), outside_files_roots(paths, user)
    others = {u: n - before["by_user"].get(u, 0) for u, n in after["by_user"].items() if u != user}
    assert not {u: n for u, n in others.items() if n}, f"requests counted for other users: {others}"


def test_validation_errors_do_not_echo_huge_values(make_host: Any) -> None:
    """A refusal is meant to be read (by a person or a model): a value far over a property's
    maxLength, or of the wrong type, must not come back in full in the error text."""
    huge = "x" * LONG
    offenders = []

    async def run() -> None:
        async with make_host(registry=REGISTRY) as host:
            for tool in TOOLS:
                properties = REGISTRY.tools[tool].spec.input_schema.get("properties", {})
                for name, prop in sorted(properties.items()):
                    if not isinstance(prop, dict) or prop.get("type") == "string" and "maxLength" not in prop:
                        continue  # an unbounded string is a valid value: not refused, nothing to check
                    result = await host.call(tool, {name: huge})
                    text = text_of(result)
                    assert result.is_error and text.startswith("Invalid arguments: "), (tool, name, text[:200])
                    if len(text) > MAX_ERROR_TEXT:
                        offenders.append(f"{tool}.{name}: {len(text)} characters")

    anyio.run(run)
    assert not offenders, f"{len(offenders)} refusals echo the whole value, e.g. {offenders[:5]}"


def _floats_for_integers(schema: Any, value: Any) -> Any:
    """``value`` with every integer the schema declares as ``integer`` written as a float (5 → 5.0)."""
    if not isinstance(schema, dict):
        return value
    if schema.get("type") == "integer" and isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**53:
        return float(value)
    if isinstance(value, dict):
        props = schema.get("properties", {})
        return {k: _floats_for_integers(props.get(k), v) for k, v in value.items()}
    if isinstance(value, list):
        return [_floats_for_integers(schema.get("items"), v) for v in value]
    return value


def _has_integers(schema: Any) -> bool:
    return isinstance(schema, dict) and (schema.get("type") == "integer" or any(
        _has_integers(s) for s in [*schema.get("properties", {}).values(), schema.get("items")]))


READ_TOOLS_WITH_INTEGERS = [t for t in TOOLS if REGISTRY.tools[t].access.value == "read"
                            and _has_integers(REGISTRY.tools[t].spec.input_schema)]


@pytest.mark.skipif(not READ_TOOLS_WITH_INTEGERS, reason="no read tool takes an integer")
def test_integral_floats_mean_the_same_as_integers(make_host: Any) -> None:
    """JSON has one number type and JSON Schema's ``integer`` accepts 5.0, so a client may send it:
    a read tool must answer 5.0 as it answers 5 (same success or the same refusal), not send
    ``/notes/5.0`` to Nextcloud. Checked with generated arguments on every read tool taking integers."""
    mismatches: dict[str, str] = {}  # tool -> the last difference found
    with start_blocking_portal() as portal, portal.wrap_async_context_manager(make_host(registry=REGISTRY)) as host:
        for tool in READ_TOOLS_WITH_INTEGERS:
            _compare_floats_and_integers(portal, host, tool, mismatches)
    assert not mismatches, f"{len(mismatches)} tools answer differently:\n" + "\n".join(mismatches.values())


async def _outcome(host: Any, tool: str, args: dict[str, Any]) -> tuple[bool, str]:
    result = await host.call(tool, args)
    text = text_of(result).split("\n")[0] if result.is_error else ""
    return result.is_error, "a validation error" if text.startswith("Invalid arguments: ") else text


def _compare_floats_and_integers(portal: Any, host: Any, tool: str, mismatches: dict[str, str]) -> None:
    schema = REGISTRY.tools[tool].spec.input_schema

    @settings(max_examples=4, deadline=None, database=None, verbosity=Verbosity.quiet, phases=PHASES,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    @given(args=schema_strategy(schema))
    def check(args: dict[str, Any]) -> None:
        floated = _floats_for_integers(schema, args)
        if json.dumps(floated) == json.dumps(args):
            return  # no integer in these arguments
        as_int, as_float = portal.call(_outcome, host, tool, args), portal.call(_outcome, host, tool, floated)
        if as_int != as_float:
            mismatches[tool] = f"{tool}: {compact(args)} -> {as_int}, with floats -> {as_float}"
            raise AssertionError(mismatches[tool])

    try:
        check()
    except AssertionError:
        pass  # recorded in mismatches


def test_files_plugin_is_covered_when_installed() -> None:
    """The path-containment checks above only bite for files tools; say so when they did not run."""
    if not any(t.plugin == "files" for t in REGISTRY.tools.values()):
        pytest.skip("the files plugin is not installed: no files tool was checked for path containment")
    assert any(t.startswith("nc_files_") for t in TOOLS)


# --- the HTTP layer ------------------------------------------------------------------------------

HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json",
           "MCP-Protocol-Version": "2025-11-25"}


def _post(server: OAuthServer, token: str, content: bytes | Any, headers: dict[str, str] | None = None) -> httpx.Response:
    h = {**HEADERS, "Authorization": f"Bearer {token}", **(headers or {})}
    return httpx.post(f"{server.url}/mcp", content=content, headers=h, timeout=30)


def _judge(response: httpx.Response) -> str | None:
    """Acceptable: a 4xx, or 2xx carrying JSON-RPC (a result or an error). Never a 5xx."""
    if response.status_code >= 500:
        return f"HTTP {response.status_code}: {response.text[:300]}"
    if response.status_code >= 400 or response.status_code == 202 or not response.content:
        return None
    try:
        body = json.loads(response.content)
    except ValueError:
        return f"HTTP {response.status_code} with a body that is not JSON: {response.text[:200]!r}"
    messages = body if isinstance(body, list) else [body]
    if not all(isinstance(m, dict) and ("result" in m or "error" in m) for m in messages):
        return f"HTTP {response.status_code} with a body that is not JSON-RPC: {response.text[:200]!r}"
    return None


def _no_problem(problem: str | None, what: str) -> None:
    # pytrace=False: pytest then needs no source of the traceback; parsing it can fail with
    # "AST constructor recursion depth mismatch" (CPython 3.11) after the server hit a RecursionError.
    if problem is not None:
        pytest.fail(f"{what}: {problem}", pytrace=False)


def _still_serving(server: OAuthServer, token: str) -> None:
    r = _post(server, token, json.dumps({"jsonrpc": "2.0", "id": 99, "method": "tools/list"}).encode())
    assert r.status_code == 200 and r.json()["result"]["tools"], r.text


def _call(name: str, arguments: Any, id_: Any = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id_, "method": "tools/call", "params": {"name": name, "arguments": arguments}}


MALFORMED: dict[str, bytes] = {
    "not_json": b"this is not json",
    "empty": b"",
    "truncated": b'{"jsonrpc": "2.0", "id": 1, "method": "tools/li',
    "invalid_utf8": b'{"jsonrpc": "2.0", "id": 1, "method": "\xff\xfe"}',
    "nul_bytes": b'\x00\x00{"jsonrpc": "2.0"}',
    "json_null": b"null",
    "json_number": b"42",
    "json_string": b'"tools/list"',
    "empty_array": b"[]",
    "empty_object": b"{}",
    "missing_method": b'{"jsonrpc": "2.0", "id": 1}',
    "method_not_string": b'{"jsonrpc": "2.0", "id": 1, "method": 123}',
    "method_null": b'{"jsonrpc": "2.0", "id": 1, "method": null}',
    "unknown_method": b'{"jsonrpc": "2.0", "id": 1, "method": "nc/../../etc/passwd"}',
    "wrong_version": b'{"jsonrpc": "1.0", "id": 1, "method": "tools/list"}',
    "no_version": b'{"id": 1, "method": "tools/list"}',
    "id_object": b'{"jsonrpc": "2.0", "id": {"a": 1}, "method": "tools/list"}',
    "id_array": b'{"jsonrpc": "2.0", "id": [1], "method": "tools/list"}',
    "id_huge": b'{"jsonrpc": "2.0", "id": 1' + b"0" * 5000 + b', "method": "tools/list"}',
    "params_string": b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": "nc_notes_list_notes"}',
    "params_array": b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": ["nc_notes_list_notes", {}]}',
    "call_name_number": json.dumps(_call(5, {})).encode(),  # type: ignore[arg-type]
    "call_name_null": json.dumps(_call(None, {})).encode(),  # type: ignore[arg-type]
    "call_unknown_tool": json.dumps(_call("nc_nothing_here", {})).encode(),
    "call_arguments_list": json.dumps(_call("nc_notes_list_notes", [1, 2])).encode(),
    "call_arguments_string": json.dumps(_call("nc_notes_list_notes", "limit=5")).encode(),
    "call_no_params": b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call"}',
    "read_resource_no_uri": b'{"jsonrpc": "2.0", "id": 1, "method": "resources/read", "params": {}}',
    "read_resource_traversal": json.dumps({"jsonrpc": "2.0", "id": 1, "method": "resources/read",
                                           "params": {"uri": "nc://notes/../../etc/passwd"}}).encode(),
    "duplicate_keys": b'{"jsonrpc": "2.0", "id": 1, "method": "tools/list", "method": "tools/call"}',
    "deep_nesting_array": b"[" * 100_000 + b"]" * 100_000,
    "deep_nesting_in_params": b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": '
                              + b'{"a":' * 50_000 + b"1" + b"}" * 50_000 + b"}",
    "huge_integer": b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "nc_notes_get_note", '
                    b'"arguments": {"note_id": ' + b"9" * 5000 + b"}}}",
    "float_overflow": b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "nc_notes_get_note", '
                      b'"arguments": {"note_id": 1e999}}}',
    "nan": b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "nc_notes_get_note", '
           b'"arguments": {"note_id": NaN}}}',
    "notification_only": b'{"jsonrpc": "2.0", "method": "notifications/initialized"}',
    "response_not_request": b'{"jsonrpc": "2.0", "id": 1, "result": {}}',
    "batch": json.dumps([{"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                         {"jsonrpc": "2.0", "id": 2, "method": "ping"}]).encode(),
    "batch_with_call": json.dumps([_call("nc_notes_list_notes", {}, 1),
                                   _call("nc_notes_create_note", {"title": "b"}, 2)]).encode(),
    "batch_of_garbage": b"[1, \"x\", null, {}]",
    "batch_large": json.dumps([{"jsonrpc": "2.0", "id": i, "method": "ping"} for i in range(5000)]).encode(),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_json_rpc_is_answered_4xx_or_json_rpc_error(name: str, oauth_server: OAuthServer) -> None:
    token = oauth_server.token(unique_user("http"), "nc:read nc:write")
    _no_problem(_judge(_post(oauth_server, token, MALFORMED[name])), name)
    _still_serving(oauth_server, token)


@pytest.mark.parametrize("headers", [
    {"Content-Type": "text/plain"},
    {"Content-Type": "application/json; charset=latin-1"},
    {"Accept": "text/html"},
    {"Accept": ""},
    {"MCP-Protocol-Version": "1999-01-01"},
    {"MCP-Protocol-Version": "\u202e2025"},
    {"Mcp-Session-Id": "../../etc/passwd"},
    {"Content-Encoding": "gzip"},
], ids=lambda h: "-".join(f"{k}={v}" for k, v in h.items()).encode("ascii", "backslashreplace").decode())
def test_odd_headers_are_answered_4xx_or_json_rpc(headers: dict[str, str], oauth_server: OAuthServer) -> None:
    token = oauth_server.token(unique_user("hdr"), "nc:read")
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).encode()
    try:
        r = _post(oauth_server, token, body, {k: v.encode("utf-8") for k, v in headers.items()})  # type: ignore[misc]
    except httpx.LocalProtocolError:
        pytest.skip("the client itself refuses to send this header")
    _no_problem(_judge(r), str(headers))
    _still_serving(oauth_server, token)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_oversized_body_is_refused_without_a_crash(chunked: bool, oauth_server: OAuthServer) -> None:
    limit = oauth_server.host.settings.max_body_bytes  # NEXTCLOUD_MCP_MAX_BODY_BYTES
    token = oauth_server.token(unique_user("big"), "nc:read nc:write")
    body = json.dumps(_call("nc_notes_create_note", {"title": "big", "content": "x" * (limit + 100)})).encode()
    content: Any = body
    if chunked:  # no Content-Length: the server must count while it reads
        def pieces() -> Any:
            for start in range(0, len(body), 256 * 1024):
                yield body[start:start + 256 * 1024]
        content = pieces()
    r = _post(oauth_server, token, content)
    assert r.status_code == 413, (r.status_code, r.text[:300])
    _still_serving(oauth_server, token)


def test_oversized_body_without_a_token_is_refused_before_reading(oauth_server: OAuthServer) -> None:
    body = b"{" + b" " * (oauth_server.host.settings.max_body_bytes + 1024) + b"}"
    r = httpx.post(f"{oauth_server.url}/mcp", content=body, headers=HEADERS, timeout=30)
    assert r.status_code == 401


JSON_LEAF = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                      st.floats(allow_nan=False, allow_infinity=False), hostile_text())
JSON_VALUE = st.recursive(JSON_LEAF, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                             st.dictionaries(hostile_text(), inner, max_size=4)), max_leaves=12)
METHODS = st.one_of(st.sampled_from(["tools/call", "tools/list", "resources/read", "resources/templates/list", "initialize",
                                     "ping", "prompts/list", "completion/complete", "logging/setLevel", "server/discover",
                                     "notifications/cancelled"]), hostile_text(), JSON_LEAF)


@st.composite
def json_rpc_messages(draw: st.DrawFn) -> Any:
    tools = st.sampled_from(TOOLS) if TOOLS else hostile_text()
    message: dict[str, Any] = {
        "jsonrpc": draw(st.sampled_from(["2.0", "2.0", "2.0", "1.0", None, 2])),
        "id": draw(st.one_of(st.integers(), hostile_text(), st.none(), JSON_VALUE)),
        "method": draw(METHODS),
    }
    if message["method"] == "tools/call" and draw(st.booleans()):
        message["params"] = {"name": draw(st.one_of(tools, JSON_LEAF)), "arguments": draw(st.one_of(
            st.dictionaries(hostile_text(), JSON_VALUE, max_size=4), JSON_VALUE))}
    else:
        message["params"] = draw(JSON_VALUE)
    for key in draw(st.lists(st.sampled_from(sorted(message)), max_size=2, unique=True)):
        del message[key]
    return draw(st.one_of(st.just(message), st.lists(st.just(message), min_size=1, max_size=3)))


def test_generated_json_rpc_never_gets_a_5xx(oauth_server: OAuthServer) -> None:
    token = oauth_server.token(unique_user("gen"), "nc:read nc:write")

    @settings(max_examples=60, deadline=None, database=None, phases=PHASES, suppress_health_check=[HealthCheck.too_slow])
    @given(message=json_rpc_messages())
    def check(message: Any) -> None:
        body = json.dumps(message, ensure_ascii=False).encode("utf-8", "surrogatepass")
        problem = _judge(_post(oauth_server, token, body))
        assert problem is None, f"{json.dumps(message)[:1000]}: {problem}"

    check()
    _still_serving(oauth_server, token)
