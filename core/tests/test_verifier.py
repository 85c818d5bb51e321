"""Token verification against the real test IdP: introspection, userinfo fallback, caching,
single-flight, and this server's own client registration."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from ncmcp.auth.oidc import ClientCredentials, resolve_client_credentials
from ncmcp.auth.verify import InvalidToken, TokenVerifier
from ncmcp.config import load_settings
from ncmcp.testing.idp import TEST_CLIENT_ID, TEST_CLIENT_SECRET, TestIdP

pytestmark = pytest.mark.anyio
RESOURCE_BASE = "http://127.0.0.1:9"


@pytest.fixture(scope="module")
def idp() -> Iterator[TestIdP]:
    with TestIdP() as provider:
        yield provider


def settings_for(idp: TestIdP, **extra: object):  # noqa: ANN201
    return load_settings({}, oauth=True, server_url=RESOURCE_BASE, issuer_url=idp.issuer, **extra)


async def test_jwt_scopes_and_client_id(idp: TestIdP) -> None:
    async with httpx.AsyncClient() as http:
        verifier = TokenVerifier(settings_for(idp), http)
        access = await verifier.verify(idp.token("ann", "nc:read notes.write", resource=f"{RESOURCE_BASE}/mcp"))
        assert sorted(access.scopes) == ["nc:read", "notes.write"] and access.subject == "ann"
        assert access.client_id == TEST_CLIENT_ID and access.resource == f"{RESOURCE_BASE}/mcp"


async def test_cached_jwt_needs_no_second_verification(idp: TestIdP) -> None:
    async with httpx.AsyncClient() as http:
        verifier = TokenVerifier(settings_for(idp), http)
        token = idp.token("ann", "nc:read", resource=f"{RESOURCE_BASE}/mcp")
        first = await verifier.verify(token)
        idp.stats(reset=True)
        assert await verifier.verify(token) is first
        assert idp.stats()["total"] == 0


async def test_concurrent_first_sight_shares_one_introspection(idp: TestIdP) -> None:
    async with httpx.AsyncClient() as http:
        verifier = TokenVerifier(settings_for(idp), http, credentials=ClientCredentials(TEST_CLIENT_ID, TEST_CLIENT_SECRET))
        token = idp.token("bea", "nc:read", resource=f"{RESOURCE_BASE}/mcp", opaque=True)
        await verifier.discovery.document()
        idp.stats(reset=True)
        results = []

        async def one() -> None:
            results.append(await verifier.verify(token))

        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(one)
        assert len(results) == 20 and all(r is results[0] for r in results)
        assert idp.stats()["requests"].get("/token/introspection") == 1


async def test_userinfo_fallback_proves_the_user_but_grants_no_scope(idp: TestIdP) -> None:
    async with httpx.AsyncClient() as http:
        verifier = TokenVerifier(settings_for(idp), http, credentials=None)
        token = idp.token("cyd", "openid profile email")  # no resource: opaque, accepted by userinfo
        access = await verifier.verify(token)
        assert access.subject == "cyd" and access.scopes == []


async def test_introspection_unreachable_fails_closed(idp: TestIdP) -> None:
    async with httpx.AsyncClient() as http:
        verifier = TokenVerifier(settings_for(idp), http, credentials=ClientCredentials(TEST_CLIENT_ID, TEST_CLIENT_SECRET))
        doc = dict(await verifier.discovery.document())
        doc["introspection_endpoint"] = "http://127.0.0.1:9/introspect"  # nothing listens there
        verifier.discovery._doc = doc
        token = idp.token("dan", "nc:read", resource=f"{RESOURCE_BASE}/mcp", opaque=True)
        with pytest.raises(InvalidToken, match="introspection endpoint unreachable"):
            await verifier.verify(token)


async def test_dynamic_client_registration_is_saved_private(idp: TestIdP, tmp_path: Path) -> None:
    storage = tmp_path / "client.json"
    settings = settings_for(idp, oidc_client_storage=str(storage))
    async with httpx.AsyncClient() as http:
        verifier = TokenVerifier(settings, http)
        creds = await resolve_client_credentials(settings, verifier.discovery, http)
        assert creds is not None and creds.client_id and creds.client_secret
        assert stat.S_IMODE(os.stat(storage).st_mode) == 0o600
        again = await resolve_client_credentials(settings, verifier.discovery, http)  # read back from the file
        assert again == creds
        verifier.credentials = creds
        token = idp.token("eve", "nc:write", resource=f"{RESOURCE_BASE}/mcp", opaque=True)
        assert (await verifier.verify(token)).scopes == ["nc:write"]
