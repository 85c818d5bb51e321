"""Verifier options and IdP dialects (pytest-httpx stands in for IdPs other than the test one)."""

from __future__ import annotations

import json
import time

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from pytest_httpx import HTTPXMock

from ncmcp.auth.verify import InvalidToken, TokenVerifier
from ncmcp.config import load_settings

pytestmark = pytest.mark.anyio
ISSUER = "https://idp.test"
SERVER = "https://mcp.test"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwks() -> dict:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(KEY.public_key()))
    return {"keys": [{**jwk, "kid": "k1", "use": "sig"}]}


def token(typ: str = "at+jwt", **claims: object) -> str:
    payload = {"iss": ISSUER, "sub": "u", "aud": f"{SERVER}/mcp", "exp": int(time.time()) + 300, **claims}
    return jwt.encode(payload, KEY, algorithm="RS256", headers={"typ": typ, "kid": "k1"})


@pytest.fixture
def idp(httpx_mock: HTTPXMock) -> HTTPXMock:
    httpx_mock.add_response(url=f"{ISSUER}/.well-known/openid-configuration",
                            json={"issuer": ISSUER, "jwks_uri": f"{ISSUER}/jwks"}, is_optional=True, is_reusable=True)
    httpx_mock.add_response(url=f"{ISSUER}/jwks", json=jwks(), is_optional=True, is_reusable=True)
    return httpx_mock


async def verify(tok: str, **settings: object):  # noqa: ANN201
    async with httpx.AsyncClient() as http:
        verifier = TokenVerifier(load_settings({}, oauth=True, server_url=SERVER, issuer_url=ISSUER, **settings), http)
        return await verifier.verify(tok)


async def test_scp_list_and_azp(idp: HTTPXMock) -> None:
    access = await verify(token(scp=["nc:read", "notes.write"], azp="keycloak-client"))
    assert access.scopes == ["nc:read", "notes.write"] and access.client_id == "keycloak-client"


async def test_plain_jwt_typ_only_when_allowed(idp: HTTPXMock) -> None:
    with pytest.raises(InvalidToken, match="typ"):
        await verify(token(typ="JWT"))
    assert (await verify(token(typ="JWT"), allow_plain_jwt_typ=True)).subject == "u"
    assert (await verify(token(typ="application/AT+JWT"))).subject == "u"  # compared case-insensitively


async def test_extra_audience_and_disabled_audience_check(idp: HTTPXMock) -> None:
    other = token(aud="api://nextcloud")
    with pytest.raises(InvalidToken, match="Audience"):
        await verify(other)
    assert (await verify(other, extra_audiences="api://nextcloud")).subject == "u"
    assert (await verify(other, disable_audience_check=True)).subject == "u"
    assert (await verify(token(aud=SERVER))).subject == "u"  # the root resource is ours too


async def test_discovery_falls_back_to_nextcloud_index_php(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{ISSUER}/.well-known/openid-configuration", status_code=404)
    httpx_mock.add_response(url=f"{ISSUER}/index.php/.well-known/openid-configuration",
                            json={"issuer": ISSUER, "jwks_uri": f"{ISSUER}/index.php/apps/oidc/jwks"})
    httpx_mock.add_response(url=f"{ISSUER}/index.php/apps/oidc/jwks", json=jwks())
    async with httpx.AsyncClient() as http:
        verifier = TokenVerifier(load_settings({}, oauth=True, server_url=SERVER), http)  # issuer from discovery
        verifier.discovery.issuer_url = ISSUER
        assert (await verifier.verify(token())).subject == "u"


async def test_failed_jwks_fetch_keeps_the_old_keys(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{ISSUER}/.well-known/openid-configuration", json={"issuer": ISSUER, "jwks_uri": f"{ISSUER}/jwks"})
    httpx_mock.add_response(url=f"{ISSUER}/jwks", json=jwks())
    httpx_mock.add_response(url=f"{ISSUER}/jwks", status_code=500)
    async with httpx.AsyncClient() as http:
        verifier = TokenVerifier(load_settings({}, oauth=True, server_url=SERVER, issuer_url=ISSUER, jwks_refetch_interval=0), http)
        assert (await verifier.verify(token())).subject == "u"
        other_kid = jwt.encode({"iss": ISSUER, "sub": "x", "aud": f"{SERVER}/mcp", "exp": int(time.time()) + 60}, KEY,
                               algorithm="RS256", headers={"typ": "at+jwt", "kid": "k2"})
        with pytest.raises(InvalidToken, match="unknown signing key"):
            await verifier.verify(other_kid)  # refetch fails with 500 ...
        assert (await verifier.verify(token(jti="fresh"))).subject == "u"  # ... and k1 still verifies
