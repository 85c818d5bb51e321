"""Many users under load: 50 users with their own IdP tokens and notes, 8–32 concurrent official MCP
clients over real HTTP running a mixed read/write Notes workload for a bounded time.

One task per user owns that user's client (and reconnects every few turns); a semaphore lets CLIENTS
of them work at once. With one session per user at a time, every answer is compared with an exact
model of that user's notes: zero unexpected errors, zero notes of another user in any answer, another
user's note id is "not found", another user's secret marker finds nothing, and the sandbox attributes
to each user exactly the number of upstream requests that user's operations need (a credential or
cookie carried over from one user to another would move requests between users' counters).

Knobs (CI uses the defaults): ``NCMCP_LOAD_CLIENTS`` (8..32, default 16) and ``NCMCP_LOAD_SECONDS``
(default 12).
"""

from __future__ import annotations

import gc
import os
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest
from ncmcp.auth.cache import token_key
from ncmcp.testing.http import connect
from ncmcp.testing.sandbox import SandboxProcess
from resilience_support import rss_bytes, text_of
from support import OAuthServer, unique_user

pytestmark = pytest.mark.anyio

USERS = 50
CLIENTS = int(os.environ.get("NCMCP_LOAD_CLIENTS", "16"))
RUN_SECONDS = float(os.environ.get("NCMCP_LOAD_SECONDS", "12"))
MAX_NOTES = 20  # per user; creations stop there so list/search answers stay in one chunk
# The whole test (tokens, seeding, run, checks) must end within this; the run itself stops on time.
TEST_BUDGET = 40.0
# RSS growth allowed between the peak of the first half and the peak of the second half of the run.
# The ncmcp server runs in this process (uvicorn in a thread), so this RSS is the server's plus the
# test's (50 open official clients with their tool lists, the model, the latencies). In a steady state
# nothing should grow with the number of requests: the token and user-id caches hold 50 entries,
# connections are pooled, notes live in the sandbox process. What still grows a little is legitimate
# and bounded: the model's appended text, allocator arenas kept after peaks, reconnecting clients.
# Measured growth is 0-10 MiB with 8-32 clients. With ~300-600 calls per half, 32 MiB catches what
# retains about 100 kB per call or more (a kept response, session or tool list per request), not a
# small per-request leak: that would need a longer run than CI allows (raise NCMCP_LOAD_SECONDS).
RSS_GROWTH_LIMIT = 32 * 1024 * 1024


@dataclass
class Note:
    id: int
    title: str
    content: str
    category: str
    etag: str


@dataclass
class User:
    name: str
    token: str
    marker: str  # a string only this user's notes contain
    notes: dict[int, Note] = field(default_factory=dict)
    upstream: int = 0  # Nextcloud requests this user's operations need (what the sandbox must count)
    ops: Counter[str] = field(default_factory=Counter)
    verified_lookup: bool = False


@dataclass
class Run:
    users: list[User]
    owner: dict[int, str] = field(default_factory=dict)  # note id -> user name, across all users
    failures: list[str] = field(default_factory=list)
    expected_refusals: Counter[str] = field(default_factory=Counter)
    calls: int = 0
    latencies: list[float] = field(default_factory=list)

    def fail(self, user: User, op: str, detail: str) -> None:
        self.failures.append(f"{user.name} {op}: {detail}")


def check_note(run: Run, user: User, op: str, got: dict[str, Any], want: Note) -> None:
    for key in ("id", "title", "content", "category", "etag"):
        if got.get(key) != getattr(want, key):
            run.fail(user, op, f"{key} is {str(got.get(key))[:80]!r}, expected {str(getattr(want, key))[:80]!r}")
    if user.marker not in got.get("content", ""):
        run.fail(user, op, "note content lost the user's marker")


def record(user: User, result: Any) -> Note:
    sc = result.structured_content
    return Note(id=sc["id"], title=sc["title"], content=sc["content"], category=sc["category"], etag=sc["etag"])


async def create(run: Run, user: User, client: Any, rng: random.Random) -> None:
    n = len(user.notes) + 1
    title = f"{user.name} note {n} {rng.randrange(10**6)}"
    content = f"{user.marker} body {n}"
    category = rng.choice(["", "Work", "Home/Plans"])
    result = await client.call_tool("nc_notes_create_note", {"title": title, "content": content, "category": category})
    user.upstream += 1
    if result.is_error:
        return run.fail(user, "create", text_of(result))
    note = record(user, result)
    if note.id in run.owner:
        return run.fail(user, "create", f"note id {note.id} already belongs to {run.owner[note.id]}")
    if (note.title, note.content, note.category) != (title, content, category):
        run.fail(user, "create", f"stored {note!r}, sent {(title, content, category)!r}")
    run.owner[note.id] = user.name
    user.notes[note.id] = note


async def get(run: Run, user: User, client: Any, rng: random.Random) -> None:
    want = user.notes[rng.choice(list(user.notes))]
    result = await client.call_tool("nc_notes_get_note", {"note_id": want.id})
    user.upstream += 1
    if result.is_error:
        return run.fail(user, "get", text_of(result))
    check_note(run, user, "get", result.structured_content, want)


async def update(run: Run, user: User, client: Any, rng: random.Random) -> None:
    want = user.notes[rng.choice(list(user.notes))]
    content = f"{user.marker} rewritten {rng.randrange(10**6)}"
    result = await client.call_tool("nc_notes_update_note", {"note_id": want.id, "etag": want.etag, "content": content})
    user.upstream += 1
    if result.is_error:
        return run.fail(user, "update", text_of(result))
    got = result.structured_content
    if got["content"] != content or got["id"] != want.id or got["etag"] == want.etag:
        return run.fail(user, "update", f"answer {got!r} for content {content!r}")
    want.content, want.etag = content, got["etag"]


async def stale_update(run: Run, user: User, client: Any, rng: random.Random) -> None:
    """An update with an etag that is not current must be refused as a conflict, writing nothing."""
    want = user.notes[rng.choice(list(user.notes))]
    result = await client.call_tool("nc_notes_update_note", {"note_id": want.id, "etag": "0" * 32, "content": "lost"})
    user.upstream += 1
    if not result.is_error or "changed since it was read" not in text_of(result) or want.etag not in text_of(result):
        return run.fail(user, "stale update", f"expected a conflict naming {want.etag}, got {text_of(result)[:200]!r}")
    run.expected_refusals["conflict"] += 1


async def append(run: Run, user: User, client: Any, rng: random.Random) -> None:
    want = user.notes[rng.choice(list(user.notes))]
    extra = f"line {rng.randrange(10**6)}"
    result = await client.call_tool("nc_notes_append_content", {"note_id": want.id, "content": extra})
    user.upstream += 2  # read, then conditional write
    if result.is_error:
        return run.fail(user, "append", text_of(result))
    got = result.structured_content
    if got["content"] != want.content + "\n" + extra or got.get("attempts") != 1:
        return run.fail(user, "append", f"content {got['content'][-60:]!r} after {got.get('attempts')} attempts")
    want.content, want.etag = got["content"], got["etag"]


async def list_all(run: Run, user: User, client: Any, rng: random.Random) -> None:
    result = await client.call_tool("nc_notes_list_notes", {"limit": 100})
    user.upstream += 1
    if result.is_error:
        return run.fail(user, "list", text_of(result))
    listed = {n["id"]: n for n in result.structured_content["notes"]}
    if set(listed) != set(user.notes):
        foreign = {i: run.owner.get(i) for i in set(listed) - set(user.notes)}
        return run.fail(user, "list", f"ids differ: foreign {foreign}, missing {set(user.notes) - set(listed)}")
    for note_id, summary in listed.items():
        if summary["etag"] != user.notes[note_id].etag or summary["title"] != user.notes[note_id].title:
            run.fail(user, "list", f"note {note_id} summary {summary!r} differs from the model")


async def search_own(run: Run, user: User, client: Any, rng: random.Random) -> None:
    result = await client.call_tool("nc_notes_search_notes", {"query": user.marker, "limit": 100})
    user.upstream += 1
    if result.is_error:
        return run.fail(user, "search", text_of(result))
    found = {r["id"] for r in result.structured_content["results"]}
    if found != set(user.notes):
        run.fail(user, "search", f"found {sorted(found)}, expected {sorted(user.notes)}")


async def search_foreign(run: Run, user: User, client: Any, rng: random.Random) -> None:
    other = rng.choice([u for u in run.users if u is not user])
    result = await client.call_tool("nc_notes_search_notes", {"query": other.marker, "limit": 100})
    user.upstream += 1
    if result.is_error:
        return run.fail(user, "foreign search", text_of(result))
    if result.structured_content["results"]:
        run.fail(user, "foreign search", f"{other.name}'s marker found {result.structured_content['results']!r}")


async def probe_foreign_id(run: Run, user: User, client: Any, rng: random.Random) -> None:
    """Another user's note id must be "not found" (Nextcloud answers 404; no content comes back)."""
    foreign = [i for i, owner in list(run.owner.items()) if owner != user.name]
    note_id = rng.choice(foreign)
    result = await client.call_tool("nc_notes_get_note", {"note_id": note_id})
    user.upstream += 1
    text = text_of(result)
    if not result.is_error or "does not exist" not in text:
        return run.fail(user, "probe", f"note {note_id} of {run.owner[note_id]} answered {text[:200]!r}")
    if result.structured_content or "marker" in text:
        run.fail(user, "probe", "the refusal carried note data")
    run.expected_refusals["foreign_id_not_found"] += 1


OPS = [(get, 22), (list_all, 12), (search_own, 10), (update, 14), (append, 12), (create, 10),
       (search_foreign, 6), (probe_foreign_id, 8), (stale_update, 3)]


async def seed(run: Run, user: User, url: str, rng: random.Random) -> None:
    async with connect(url, user.token) as client:
        for _ in range(2):
            await create(run, user, client, rng)
            user.ops["create"] += 1
            run.calls += 1


async def turn(run: Run, user: User, client: Any, rng: random.Random, steps: int) -> None:
    for _ in range(steps):
        op = rng.choices([o for o, _ in OPS], weights=[w for _, w in OPS])[0]
        if op is create and len(user.notes) >= MAX_NOTES:
            op = get
        began = time.perf_counter()
        await op(run, user, client, rng)
        run.latencies.append(time.perf_counter() - began)
        user.ops[op.__name__] += 1
        run.calls += 1


async def test_fifty_users_mixed_workload(oauth_server: OAuthServer, oauth_sandbox: SandboxProcess) -> None:
    assert 8 <= CLIENTS <= 32, "NCMCP_LOAD_CLIENTS must be between 8 and 32"
    started = time.monotonic()
    rng = random.Random(os.environ.get("NCMCP_LOAD_SEED", "ncmcp-load"))
    names = [unique_user("load") for _ in range(USERS)]
    tokens = [oauth_server.token(name, "nc:read nc:write") for name in names]
    assert len(set(tokens)) == USERS
    run = Run(users=[User(name=n, token=t, marker=f"[[secret-{n}]]") for n, t in zip(names, tokens, strict=True)])
    for user in run.users:
        user.upstream = 1  # the host looks the user id up once per token (/ocs/v2.php/cloud/user), then caches it

    tokens_at = time.monotonic()
    with anyio.fail_after(TEST_BUDGET + 20):  # a hang must fail the test, never block CI
        # Seeding: every user gets two notes before the run, so every probe has foreign ids to try.
        pending = list(run.users)
        async with anyio.create_task_group() as tg:
            async def seeder(worker_rng: random.Random) -> None:
                while pending:
                    await seed(run, pending.pop(), oauth_server.url, worker_rng)

            for i in range(CLIENTS):
                tg.start_soon(seeder, random.Random(rng.random() + i))
        if run.failures:
            pytest.fail(f"seeding failed: {run.failures[:10]}", pytrace=False)
        seeded_at = time.monotonic()

        # The run: one task per user owns that user's client (one session per user at a time keeps
        # the model exact), reconnecting every few turns (a fresh client and connection); at most
        # CLIENTS of them run their workload at any moment.
        limiter = anyio.Semaphore(CLIENTS)
        active, peak, connects = [0], [0], Counter[str]()
        deadline = time.monotonic() + RUN_SECONDS
        half = time.monotonic() + RUN_SECONDS / 2
        samples: list[tuple[float, int]] = []

        async def user_loop(user: User, user_rng: random.Random) -> None:
            while time.monotonic() < deadline:
                async with connect(oauth_server.url, user.token) as client:
                    connects[user.name] += 1
                    for _ in range(user_rng.randint(2, 6)):
                        if time.monotonic() >= deadline:
                            return
                        async with limiter:
                            active[0] += 1
                            peak[0] = max(peak[0], active[0])
                            try:
                                await turn(run, user, client, user_rng, user_rng.randint(2, 5))
                            finally:
                                active[0] -= 1
                        await anyio.sleep(user_rng.random() * 0.01)

        async def sampler() -> None:
            while time.monotonic() < deadline:
                await anyio.sleep(0.25)
                samples.append((time.monotonic(), rss_bytes()))

        gc.collect()
        async with anyio.create_task_group() as tg:
            tg.start_soon(sampler)
            for user in run.users:
                tg.start_soon(user_loop, user, random.Random(rng.random()))
        ran_for = time.monotonic() - (deadline - RUN_SECONDS)

    stats = oauth_sandbox.stats()
    lat = sorted(run.latencies) or [0.0]
    elapsed = time.monotonic() - started
    print(f"\nload: {USERS} users, {CLIENTS} clients, {run.calls} tool calls in {ran_for:.1f} s "
          f"({run.calls / ran_for:.0f}/s), {sum(connects.values())} connections, "
          f"expected refusals {dict(run.expected_refusals)}, total {elapsed:.1f} s "
          f"(tokens {tokens_at - started:.1f} s, seeding {seeded_at - tokens_at:.1f} s); latency p50 "
          f"{lat[len(lat) // 2] * 1000:.0f} ms, p95 {lat[int(len(lat) * 0.95)] * 1000:.0f} ms")

    # Zero unexpected errors, zero cross-user answers.
    if run.failures:  # not a bare assert: pytest would print the whole Run, tokens included
        pytest.fail(f"{len(run.failures)} failures, first: " + "\n".join(run.failures[:10]), pytrace=False)
    assert run.calls >= USERS * 4, f"only {run.calls} calls: the run did too little to mean anything"
    assert peak[0] == CLIENTS, f"only {peak[0]} clients ran at once"
    assert all(sum(u.ops.values()) > 2 for u in run.users), "some users did no work in the run"
    assert sum(connects.values()) > USERS, "clients never reconnected"

    # The sandbox attributes to each user exactly the requests that user's operations need: a
    # credential (or a session cookie) used for the wrong user would move counts between users.
    by_user = stats["by_user"]
    wrong = {u.name: (by_user.get(u.name, 0), u.upstream) for u in run.users if by_user.get(u.name, 0) != u.upstream}
    assert not wrong, f"sandbox counted (seen, expected) requests: {wrong}"
    # The host resolved each token to its own user (the user-id cache is keyed by the token's hash).
    for user in run.users:
        assert oauth_server.host._user_ids.get(token_key(user.token)) == user.name
    # Nextcloud sessions are never kept: the shared connection pool holds no cookie.
    assert len(oauth_server.host.pool.http.cookies.jar) == 0

    # Memory is stable: compare the peak RSS of the second half with the peak of the first half.
    first = [rss for t, rss in samples if t < half]
    second = [rss for t, rss in samples if t >= half]
    assert first and second
    growth = max(second) - max(first)
    print(f"rss: first half peak {max(first) / 2**20:.1f} MiB, second half peak {max(second) / 2**20:.1f} MiB, "
          f"growth {growth / 2**20:+.1f} MiB")
    assert growth < RSS_GROWTH_LIMIT, f"RSS grew by {growth / 2**20:.1f} MiB in the second half of the run"
    assert elapsed <= TEST_BUDGET, f"the load test took {elapsed:.1f} s (budget {TEST_BUDGET:.0f} s)"
