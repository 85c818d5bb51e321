"""Faults: Nextcloud slow, failing, rate limiting, in maintenance or gone; the IdP's JWKS and
introspection endpoints gone; the IdP rotating its signing key during a run.

In every case the server answers each call with a clear tool error or the right HTTP status, never
retries a non-idempotent request (counted at the sandbox), keeps serving (a follow-up normal call
works) and recovers by itself when the fault ends. Faults are injected into the session sandbox and
cleared on the way out of each test; tests that stop or re-key an IdP start their own IdP.
"""

from __future__ import annotations

import secrets
import time
from types import SimpleNamespace

import anyio
import jwt
import ncmcp.auth.oidc
import ncmcp.auth.verify
import ncmcp.http_app
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from ncmcp.testing.http import connect
from ncmcp.testing.idp import TestIdP
from ncmcp.testing.sandbox import SandboxProcess
from resilience_support import (
    NOTES_API,
    LogRecorder,
    closed_port,
    count_matching,
    faults_cleared,
    probe,
    requests_between,
    text_of,
)
from support import OAuthServer, oauth_server_for, unique_user

pytestmark = pytest.mark.anyio

RW = "nc:read nc:write"
LIST = "nc_notes_list_notes"
LIST_CALL = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": LIST, "arguments": {}}}


async def ok(client, name: str, args: dict) -> dict:
    result = await client.call_tool(name, args)
    assert not result.is_error, text_of(result)
    return result.structured_content


async def refused(client, name: str, args: dict, *phrases: str) -> str:
    """The call ends with a tool error (not a protocol error) whose text says what happened."""
    result = await client.call_tool(name, args)
    text = text_of(result)
    assert result.is_error, f"{name} succeeded during the fault: {text[:200]}"
    assert "failed unexpectedly" not in text and "Traceback" not in text, text
    for phrase in phrases:
        assert phrase in text, f"{phrase!r} not in {text!r}"
    return text


# --- Nextcloud slower than the timeouts ----------------------------------------------------------

@pytest.mark.parametrize(("setting", "value", "phrase"), [
    ("http_timeout", 0.5, "Nextcloud did not answer in time"),  # one request too slow
    ("tool_timeout", 0.8, "took longer than 0.8 s and was stopped"),  # the whole call too slow
])
async def test_nextcloud_slower_than_the_timeout(idp: TestIdP, oauth_sandbox: SandboxProcess, setting: str, value: float,
                                                 phrase: str) -> None:
    with oauth_server_for(idp, oauth_sandbox, **{setting: value}) as server, faults_cleared(oauth_sandbox):
        async with connect(server.url, server.token(unique_user("slow"), RW)) as client:
            note = await ok(client, "nc_notes_create_note", {"title": "before", "content": "x"})  # warm: user id cached
            oauth_sandbox.add_fault(path=NOTES_API, delay=3.0)  # Notes answers, but only after 3 s
            before = oauth_sandbox.stats()
            for name, args in [(LIST, {}), ("nc_notes_get_note", {"note_id": note["id"]}),
                               ("nc_notes_create_note", {"title": "during", "content": "y"}),
                               ("nc_notes_update_note", {"note_id": note["id"], "etag": note["etag"], "content": "z"})]:
                began = time.monotonic()
                await refused(client, name, args, phrase)
                assert time.monotonic() - began < 2.5, f"{name} waited for the slow answer instead of timing out"
            sent = requests_between(before, oauth_sandbox.stats())
            # A timeout is not retried, for reads or writes: one request each.
            assert count_matching(sent, "GET", NOTES_API) == 2 and count_matching(sent, "POST", NOTES_API) == 1
            assert count_matching(sent, "PUT", NOTES_API) == 1, sent
            oauth_sandbox.clear_faults()
            assert note["id"] in {n["id"] for n in (await ok(client, LIST, {}))["notes"]}  # recovered by itself


# --- 500 -----------------------------------------------------------------------------------------

async def test_upstream_500_is_a_clear_error_and_not_retried(oauth_server: OAuthServer, oauth_sandbox: SandboxProcess) -> None:
    async with connect(oauth_server.url, oauth_server.token(unique_user("five"), RW)) as client:
        note = await ok(client, "nc_notes_create_note", {"title": "n", "content": "c"})
        with faults_cleared(oauth_sandbox):
            oauth_sandbox.add_fault(path=NOTES_API, status=500)
            before = oauth_sandbox.stats()
            await refused(client, LIST, {}, "Nextcloud failed with HTTP 500")
            await refused(client, "nc_notes_create_note", {"title": "m"}, "HTTP 500")
            await refused(client, "nc_notes_update_note", {"note_id": note["id"], "etag": note["etag"], "title": "t"}, "HTTP 500")
            await refused(client, "nc_notes_append_content", {"note_id": note["id"], "content": "more"}, "HTTP 500")
            sent = requests_between(before, oauth_sandbox.stats())
            assert count_matching(sent, "GET", NOTES_API) == 2  # list, and append's read (a 500 is not retried)
            assert count_matching(sent, "POST", NOTES_API) == 1 and count_matching(sent, "PUT", NOTES_API) == 1, sent
        got = await ok(client, "nc_notes_get_note", {"note_id": note["id"]})
        assert got["etag"] == note["etag"] and got["content"] == "c"  # nothing was written during the fault


# --- 429 / 503 with Retry-After --------------------------------------------------------------------

@pytest.mark.parametrize(("status", "phrase"), [(429, "rate limiting"), (503, "temporarily unavailable (503)")])
async def test_transient_refusal_retries_reads_only(oauth_server: OAuthServer, oauth_sandbox: SandboxProcess, status: int,
                                                    phrase: str) -> None:
    async with connect(oauth_server.url, oauth_server.token(unique_user(f"r{status}"), RW)) as client:
        note = await ok(client, "nc_notes_create_note", {"title": "n", "content": "c"})
        with faults_cleared(oauth_sandbox):
            # A read refused once is retried after Retry-After, and succeeds.
            oauth_sandbox.add_fault(path=NOTES_API, status=status, retry_after="1", times=1, method="GET")
            before, began = oauth_sandbox.stats(), time.monotonic()
            assert [n["id"] for n in (await ok(client, LIST, {}))["notes"]] == [note["id"]]
            assert time.monotonic() - began >= 0.95, "Retry-After: 1 was not honoured"
            assert count_matching(requests_between(before, oauth_sandbox.stats()), "GET", NOTES_API) == 2

            # Writes refused once are not retried: one request, a clear error, nothing written.
            for method, name, args in [
                ("POST", "nc_notes_create_note", {"title": "never"}),
                ("PUT", "nc_notes_update_note", {"note_id": note["id"], "etag": note["etag"], "content": "never"}),
                ("DELETE", "nc_notes_delete_note", {"note_id": note["id"]}),
            ]:
                oauth_sandbox.add_fault(path=NOTES_API, status=status, retry_after="1", times=1, method=method)
                before = oauth_sandbox.stats()
                await refused(client, name, args, phrase)
                assert count_matching(requests_between(before, oauth_sandbox.stats()), method, NOTES_API) == 1, method
            listed = (await ok(client, LIST, {}))["notes"]
            assert [(n["id"], n["etag"]) for n in listed] == [(note["id"], note["etag"])]

            # A read refused every time: bounded attempts (3), then a clear error.
            oauth_sandbox.add_fault(path=NOTES_API, status=status, retry_after="0", method="GET")
            before = oauth_sandbox.stats()
            await refused(client, LIST, {}, phrase)
            assert count_matching(requests_between(before, oauth_sandbox.stats()), "GET", NOTES_API) == 3
            oauth_sandbox.clear_faults()

            # A Retry-After longer than the client will wait is not slept through: one request, at once.
            oauth_sandbox.add_fault(path=NOTES_API, status=status, retry_after="3600", method="GET")
            before, began = oauth_sandbox.stats(), time.monotonic()
            text = await refused(client, LIST, {}, phrase)
            assert time.monotonic() - began < 1.0
            assert count_matching(requests_between(before, oauth_sandbox.stats()), "GET", NOTES_API) == 1
            if status == 429:
                assert '"retry_after": "3600"' in text  # the caller learns when to come back
        assert (await ok(client, LIST, {}))["notes"]  # recovered by itself


# --- maintenance mode ----------------------------------------------------------------------------

async def test_maintenance_mode(oauth_server: OAuthServer, oauth_sandbox: SandboxProcess) -> None:
    warm, fresh = unique_user("maint"), unique_user("maintnew")
    async with connect(oauth_server.url, oauth_server.token(warm, RW)) as client, \
            connect(oauth_server.url, oauth_server.token(fresh, RW)) as newcomer:
        note = await ok(client, "nc_notes_create_note", {"title": "n", "content": "c"})
        with faults_cleared(oauth_sandbox):
            oauth_sandbox.add_fault(status=503, maintenance=True, retry_after="120")  # every path, until cleared
            before = oauth_sandbox.stats()
            await refused(client, LIST, {}, "maintenance mode")
            await refused(client, "nc_notes_create_note", {"title": "m"}, "maintenance mode", '"error": "maintenance"')
            await refused(client, "nc_notes_update_note", {"note_id": note["id"], "etag": note["etag"], "content": "x"},
                          "maintenance mode")
            # A user whose id is not known yet: the id lookup itself meets maintenance mode.
            await refused(newcomer, LIST, {}, "maintenance mode")
            sent = requests_between(before, oauth_sandbox.stats())
            assert count_matching(sent, "POST", NOTES_API) == 1 and count_matching(sent, "PUT", NOTES_API) == 1, sent
            assert count_matching(sent, "GET", NOTES_API) == 1  # Retry-After 120 s is beyond the client's patience
            ready = probe(f"{oauth_server.url}/readyz")
            assert ready.status_code == 503 and ready.json()["checks"]["nextcloud"] != "ok", ready.text
            assert probe(f"{oauth_server.url}/healthz").status_code == 200
        # Maintenance over: both users work again, nothing was written meanwhile.
        assert [(n["id"], n["etag"]) for n in (await ok(client, LIST, {}))["notes"]] == [(note["id"], note["etag"])]
        assert (await ok(newcomer, LIST, {}))["notes"] == []
        assert probe(f"{oauth_server.url}/readyz").status_code == 200


# --- Nextcloud unreachable -------------------------------------------------------------------------

async def test_connection_refused_then_nextcloud_comes_up(idp: TestIdP) -> None:
    port = closed_port()
    nowhere = SimpleNamespace(url=f"http://127.0.0.1:{port}")
    with oauth_server_for(idp, nowhere) as server:  # starts although Nextcloud is down
        token = server.token(unique_user("refused"), RW)
        async with connect(server.url, token) as client:
            listed = {t.name for t in (await client.list_tools()).tools}
            assert listed == set(server.host.tools)  # capabilities never read: nothing hidden, calls will say why
            for _ in range(2):  # and again: the server keeps answering
                await refused(client, LIST, {}, "Nextcloud is unreachable")
                await refused(client, "nc_notes_create_note", {"title": "x"}, "Nextcloud is unreachable")
        ready = probe(f"{server.url}/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["nextcloud"].startswith("unreachable"), ready.text
        assert probe(f"{server.url}/healthz").status_code == 200

        with SandboxProcess(port=port, issuer=idp.issuer) as sandbox:  # Nextcloud comes up where the server points
            assert sandbox.url == nowhere.url
            async with connect(server.url, token) as client:
                note = await ok(client, "nc_notes_create_note", {"title": "after", "content": "up"})
                assert [n["id"] for n in (await ok(client, LIST, {}))["notes"]] == [note["id"]]
            assert probe(f"{server.url}/readyz").status_code == 200


# --- the IdP's endpoints gone ----------------------------------------------------------------------

async def test_jwks_gone_after_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """JWTs keep verifying from the cached keys when the IdP (JWKS included) disappears.

    Choice documented: the sandbox here trusts this dedicated IdP, like Nextcloud with user_oidc. It
    fetched the IdP's keys for the first call and, like Nextcloud, keeps them, so tool calls that reach
    Nextcloud still work once the IdP is gone; tools/list needs no Nextcloud call at all. The JWT used
    after the IdP stopped was minted before but never shown to ncmcp, so it is verified from the JWKS
    cache, not answered from the verified-token cache.
    """
    oidc_log = LogRecorder(ncmcp.auth.oidc.log)
    monkeypatch.setattr(ncmcp.auth.oidc, "log", oidc_log)
    with TestIdP() as own, SandboxProcess(issuer=own.issuer) as sandbox, \
            oauth_server_for(own, sandbox, jwks_refetch_interval=0) as server:
        seen, unseen = server.token(unique_user("jwks"), RW), server.token(unique_user("jwks"), RW)
        async with connect(server.url, seen) as client:
            await ok(client, "nc_notes_create_note", {"title": "before", "content": "x"})
        own.stop()

        # An unknown kid makes ncmcp try the JWKS again: the fetch fails, the old keys are kept, the token is refused.
        stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        forged = jwt.encode({"iss": own.issuer, "sub": "x", "aud": server.resource, "exp": int(time.time()) + 60},
                            stranger, algorithm="RS256", headers={"typ": "at+jwt", "kid": secrets.token_hex(8)})
        assert server.post(forged, {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).status_code == 401
        failed = oidc_log.named("jwks_fetch_failed")
        assert failed and failed[-1]["kept_keys"] == 1, oidc_log.events

        async with connect(server.url, unseen) as client:
            assert {t.name for t in (await client.list_tools()).tools} == set(server.host.tools)
            assert (await ok(client, LIST, {}))["notes"] == []
            await ok(client, "nc_notes_create_note", {"title": "after", "content": "y"})
        ready = probe(f"{server.url}/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["identity_provider"] != "ok", ready.text


async def test_introspection_gone_fails_closed(monkeypatch: pytest.MonkeyPatch, oauth_sandbox: SandboxProcess) -> None:
    """Opaque tokens cannot be verified without introspection: 401, and the log says why."""
    http_log, auth_log = LogRecorder(ncmcp.http_app.log), LogRecorder(ncmcp.auth.verify.log)
    monkeypatch.setattr(ncmcp.http_app, "log", http_log)
    monkeypatch.setattr(ncmcp.auth.verify, "log", auth_log)
    tools_list = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    # Only the gate is exercised (no call reaches Nextcloud), so the session sandbox is fine as Nextcloud.
    with TestIdP() as own, oauth_server_for(own, oauth_sandbox) as server:
        verified = server.token(unique_user("intro"), "nc:read", opaque=True)
        assert server.post(verified, tools_list).status_code == 200  # introspection works while the IdP is up
        assert server.post(server.token(unique_user("intro"), "nc:read"), tools_list).status_code == 200  # JWKS fetched
        unverified = server.token(unique_user("intro"), "nc:read", opaque=True)
        a_jwt = server.token(unique_user("intro"), "nc:read")  # minted now, first shown to ncmcp after the outage
        own.stop()

        r = server.post(unverified, tools_list)
        assert r.status_code == 401 and 'error="invalid_token"' in r.headers["www-authenticate"], r.text
        rejected = [e for e in http_log.named("token_rejected") if e["reason"] == "introspection endpoint unreachable"]
        assert rejected, http_log.events
        assert auth_log.named("introspection_unavailable")[-1]["effect"] == "opaque tokens refused"
        assert server.post(unverified, LIST_CALL).status_code == 401  # and again (remembered briefly, still refused)

        # Unaffected: a new JWT verifies from the cached JWKS; an opaque token verified before the outage
        # is answered from the verified-token cache until its cache entry expires (token_cache_ttl).
        assert server.post(a_jwt, tools_list).status_code == 200
        assert server.post(verified, tools_list).status_code == 200


# --- key rotation during a run ---------------------------------------------------------------------

async def test_signing_key_rotation_mid_run() -> None:
    """Clients keep calling while the IdP rotates its key: tokens minted before and after the rotation
    all work (the IdP publishes both keys for a while). After a second rotation that drops the old key,
    fresh tokens work and old ones never seen before are refused."""
    with TestIdP() as own, SandboxProcess(issuer=own.issuer) as sandbox, \
            oauth_server_for(own, sandbox, jwks_refetch_interval=0.2) as server:
        users = [unique_user("rot") for _ in range(6)]
        first_kid = jwt.get_unverified_header(server.token(users[0], RW))["kid"]
        failures: list[str] = []
        kids_used: dict[str, int] = {}
        rotated = anyio.Event()
        deadline = time.monotonic() + 3.0

        async def worker(user: str) -> None:
            while time.monotonic() < deadline:
                token = await anyio.to_thread.run_sync(server.token, user, RW)
                kid = jwt.get_unverified_header(token)["kid"]
                async with connect(server.url, token) as client:
                    for _ in range(2):
                        result = await client.call_tool(LIST, {})
                        if result.is_error:
                            failures.append(f"{user} kid={kid} rotated={rotated.is_set()}: {text_of(result)}")
                kids_used[kid] = kids_used.get(kid, 0) + 1

        async def rotator() -> None:
            await anyio.sleep(1.2)
            await anyio.to_thread.run_sync(lambda: own.rotate_keys(keep_old=True))
            rotated.set()

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(rotator)
                for user in users:
                    tg.start_soon(worker, user)
        assert not failures, failures[:5]
        assert first_kid in kids_used and len(kids_used) == 2, kids_used  # both keys were really used

        old_unseen = server.token(unique_user("rot"), RW)
        new_kid = own.rotate_keys(keep_old=False)
        await anyio.sleep(0.3)  # the refetch interval
        fresh = server.token(unique_user("rot"), RW)
        assert jwt.get_unverified_header(fresh)["kid"] == new_kid
        async with connect(server.url, fresh) as client:
            assert (await ok(client, LIST, {}))["notes"] == []
        r = server.post(old_unseen, LIST_CALL)
        assert r.status_code == 401, r.text  # its key was withdrawn: fail closed
