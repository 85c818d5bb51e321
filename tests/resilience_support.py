"""Small helpers shared by the load, fault and hostile-input tests (importable as ``resilience_support``)."""

from __future__ import annotations

import functools
import posixpath
import socket
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import mcp_types as types
import psutil
from hypothesis import strategies as st

GENERIC_CRASH_TEXT = "failed unexpectedly"  # the host's answer when a plugin raised something that is not a ToolError
NOTES_API = "/index.php/apps/notes/api/v1/notes"


def text_of(result: types.CallToolResult) -> str:
    """All text content of a tool result, joined."""
    return "\n".join(c.text for c in result.content if isinstance(c, types.TextContent))


def rss_bytes(pid: int | None = None) -> int:
    return psutil.Process(pid).memory_info().rss


def closed_port() -> int:
    """A 127.0.0.1 port nothing listens on (bound, then released; nobody else binds ephemeral ports here)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def requests_between(before: dict[str, Any], after: dict[str, Any]) -> dict[str, int]:
    """The sandbox requests (``"METHOD /path"`` → count) made between two ``stats()`` snapshots."""
    old = before.get("requests", {})
    return {key: n - old.get(key, 0) for key, n in after.get("requests", {}).items() if n - old.get(key, 0) > 0}


def count_matching(requests: dict[str, int], method: str, path_prefix: str) -> int:
    return sum(n for key, n in requests.items()
               if key.split(" ", 1)[0] == method and key.split(" ", 1)[1].startswith(path_prefix))


def probe(url: str) -> httpx.Response:
    """GET a health endpoint (``/readyz``, ``/healthz``) of a server under test."""
    return httpx.get(url, timeout=10)


# --- "no request leaves the user's root" ------------------------------------------------------------

FILES_TREES = ("files", "trashbin", "versions", "uploads")
# Per-user DAV collections: the segment after the prefix must be the calling user.
PER_USER_DAV = ("/remote.php/dav/files/", "/remote.php/dav/trashbin/", "/remote.php/dav/versions/",
                "/remote.php/dav/uploads/", "/remote.php/dav/calendars/", "/remote.php/dav/addressbooks/users/",
                "/remote.php/dav/principals/users/")


def normalised(path: str) -> str:
    """The path as Nextcloud resolves it. ``path`` is already percent-decoded once (the sandbox's
    counters and httpx's ``URL.path`` both are), which is all Nextcloud (Sabre) does: a name that
    still reads ``%2e%2e`` is a file called that, not a way up."""
    norm = posixpath.normpath(path)
    return norm + ("/" if path.endswith("/") and not norm.endswith("/") else "")


def foreign_dav_paths(paths: Iterable[str], user: str) -> list[str]:
    """Paths into another user's per-user DAV collection, or escaping one with ``..``."""
    bad = []
    for raw in paths:
        for candidate in {raw, normalised(raw)}:
            for prefix in PER_USER_DAV:
                if candidate.startswith(prefix):
                    owner = candidate[len(prefix):].split("/", 1)[0]
                    if owner != user:
                        bad.append(raw)
            if raw.startswith("/remote.php/dav/") and ".." in raw.split("/") and not any(
                    normalised(raw).startswith(f"{p}{user}") for p in PER_USER_DAV):
                bad.append(raw)
    return sorted(set(bad))


def outside_files_roots(paths: Iterable[str], user: str) -> list[str]:
    """For files tools: every path must lie in the user's files/trashbin/versions/uploads trees
    (after resolving ``..``), or be a non-DAV endpoint (OCS, capabilities, status)."""
    roots = tuple(f"/remote.php/dav/{tree}/{user}" for tree in FILES_TREES)
    bad = []
    for raw in paths:
        if not raw.startswith(("/remote.php/", "/public.php/")):
            continue  # OCS (shares, user), status and capabilities carry no file path
        norm = normalised(raw)
        inside = any(norm == root or norm.startswith(root + "/") for root in roots)
        if not inside and not (raw.rstrip("/") == "/remote.php/dav"):  # SEARCH goes to the DAV root
            bad.append(raw)
    return sorted(set(bad))


# --- capturing the server's log lines ---------------------------------------------------------------

class LogRecorder:
    """Stands in for a module's structlog logger (``monkeypatch.setattr(module, "log", recorder)``):
    records every event and forwards it. Independent of how structlog is configured in this process
    (``capture_logs`` does not see loggers cached by ``cache_logger_on_first_use``)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def _record(self, level: str, event: str, **kw: Any) -> None:
        with self._lock:
            self.events.append({"event": event, "log_level": level, **kw})
        getattr(self.inner, level)(event, **kw)

    def debug(self, event: str, **kw: Any) -> None:
        self._record("debug", event, **kw)

    def info(self, event: str, **kw: Any) -> None:
        self._record("info", event, **kw)

    def warning(self, event: str, **kw: Any) -> None:
        self._record("warning", event, **kw)

    def error(self, event: str, **kw: Any) -> None:
        self._record("error", event, **kw)

    def exception(self, event: str, **kw: Any) -> None:
        self._record("exception", event, **kw)

    def named(self, event: str) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self.events if e["event"] == event]


@contextmanager
def faults_cleared(sandbox: Any) -> Iterator[None]:
    """Clear the sandbox's injected faults on the way out, whatever happened."""
    try:
        yield
    finally:
        sandbox.clear_faults()


# --- arguments from a tool's input schema -----------------------------------------------------------

JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
                         st.text(max_size=20))
ANY_JSON = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=10), inner, max_size=3)),
    max_leaves=8,
)


@functools.cache
def jsonschema_generator_works() -> bool:
    """``hypothesis_jsonschema`` 0.23.1 (its latest release) calls ``many.more()``, which newer
    hypothesis versions no longer have: every object schema with an optional property fails to draw.
    Probe once, so the tests use it as soon as the environment has a compatible pair (or it is missing)."""
    from hypothesis import given, settings

    try:
        from hypothesis_jsonschema import from_schema
    except ImportError:  # not in core[testing]: installed by hand so far
        return False
    drawn: list[Any] = []

    @settings(max_examples=5, database=None, deadline=None)
    @given(from_schema({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"}},
                        "required": ["a"], "additionalProperties": False}))
    def probe(value: Any) -> None:
        drawn.append(value)

    try:
        probe()
    except Exception:
        return False
    return bool(drawn)


def schema_values(schema: Any) -> st.SearchStrategy[Any]:
    """Values for the JSON Schema subset the plugins use (type, properties, required,
    additionalProperties, items, enum, const, anyOf/oneOf, length/size/range bounds, pattern).
    Used when ``hypothesis_jsonschema`` cannot draw; mostly valid values, and the tests compute
    validity with ``jsonschema`` anyway, so an invalid draw is only a less useful example."""
    if schema is True or not isinstance(schema, dict) or not schema:
        return ANY_JSON
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            rest = {k: v for k, v in schema.items() if k != key}
            return st.one_of([schema_values({**rest, **sub}) for sub in schema[key]])
    kind = schema.get("type")
    if kind is None:
        kind = "object" if "properties" in schema else "array" if "items" in schema else None
    if isinstance(kind, list):
        return st.one_of([schema_values({**schema, "type": k}) for k in kind])
    if kind == "string":
        low = schema.get("minLength", 0)
        high = schema.get("maxLength", low + 40)
        if "pattern" in schema:
            return st.from_regex(schema["pattern"]).filter(lambda s: low <= len(s) <= high)
        return st.text(st.characters(exclude_categories=("Cs",)), min_size=low, max_size=min(high, low + 40))
    if kind == "integer":
        return st.integers(schema.get("minimum"), schema.get("maximum"))
    if kind == "number":
        return st.floats(schema.get("minimum"), schema.get("maximum"), allow_nan=False, allow_infinity=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        low = schema.get("minItems", 0)
        high = min(schema.get("maxItems", low + 3), low + 3)
        return st.lists(schema_values(schema.get("items", True)), min_size=low, max_size=high)
    if kind == "object":
        props = schema.get("properties", {})
        required = [k for k in schema.get("required", []) if k in props]
        optional = [k for k in props if k not in required]

        @st.composite
        def build(draw: st.DrawFn) -> dict[str, Any]:
            out = {k: draw(schema_values(props[k])) for k in required}
            for k in optional:
                if draw(st.booleans()):
                    out[k] = draw(schema_values(props[k]))
            return out

        return build()
    return ANY_JSON


def schema_strategy(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    if jsonschema_generator_works():
        from hypothesis_jsonschema import from_schema

        return from_schema(schema)
    return schema_values(schema)
