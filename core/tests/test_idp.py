"""Tests for the real test IdP (idp/server.mjs) and its launcher ncmcp.testing.idp."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest

from ncmcp.testing.idp import PUBLIC_CLIENT_ID, IdPError, TestIdP

RS = "http://127.0.0.1:8080/mcp"


@pytest.fixture(scope="module")
def idp() -> Iterator[TestIdP]:
    with TestIdP() as server:
        yield server


def verify(idp: TestIdP, token: str, audience: str = RS) -> dict[str, Any]:
    """Verify an at+jwt against the IdP's current JWKS with pyjwt."""
    kid = jwt.get_unverified_header(token)["kid"]
    key = jwt.PyJWKSet.from_dict(idp.jwks())[kid]  # KeyError if the kid is not published
    return jwt.decode(token, key.key, algorithms=["RS256"], audience=audience, issuer=idp.issuer)


def test_discovery(idp: TestIdP) -> None:
    d = idp.discovery
    assert d["issuer"] == idp.issuer and idp.issuer.startswith("http://127.0.0.1:")
    for key in ("jwks_uri", "token_endpoint", "introspection_endpoint", "revocation_endpoint", "registration_endpoint"):
        assert d[key].startswith(idp.issuer)
    assert {"nc:read", "notes.write", "offline_access"} <= set(d["scopes_supported"])
    assert idp.pid is not None


def test_jwt_access_token(idp: TestIdP) -> None:
    token = idp.token("user17", ["nc:read", "nc:write", "unknown:scope"], resource=RS)
    assert jwt.get_unverified_header(token)["typ"] == "at+jwt"
    claims = verify(idp, token)
    assert claims["sub"] == "user17"
    assert claims["aud"] == RS
    assert claims["client_id"] == "test-client"
    assert claims["scope"].split() == ["nc:read", "nc:write"]  # unknown scope dropped
    assert {"exp", "iat", "jti"} <= claims.keys()


def test_token_without_nc_scope_has_no_scope_claim(idp: TestIdP) -> None:
    resp = idp.token_response("alice", "openid bogus", resource=RS)
    assert "scope" not in resp
    assert "scope" not in verify(idp, resp["access_token"])


def test_short_ttl(idp: TestIdP) -> None:
    claims = verify(idp, idp.token("alice", "nc:read", resource=RS, ttl=5))
    assert claims["exp"] - claims["iat"] == 5


def test_opaque_token_with_resource_introspects(idp: TestIdP) -> None:
    token = idp.token("bob", "nc:read notes.read", resource=RS, opaque=True)
    assert token.count(".") == 0
    info = idp.introspect(token)
    assert info["active"] is True
    assert info["sub"] == "bob" and info["aud"] == RS and info["client_id"] == "test-client"
    assert info["scope"] == "nc:read notes.read" and info["exp"] > time.time()


def test_opaque_token_without_resource_userinfo(idp: TestIdP) -> None:
    token = idp.token("carol", "openid email nc:read")
    assert idp.userinfo(token)["email"] == "carol@example.test"
    assert idp.introspect(token)["scope"] == "openid email nc:read"


def test_revocation(idp: TestIdP) -> None:
    token = idp.token("alice", "nc:read", resource=RS, opaque=True)
    assert idp.introspect(token)["active"] is True
    idp.revoke(token)
    assert idp.introspect(token) == {"active": False}


def test_wrong_password_and_jwt_introspection_errors(idp: TestIdP) -> None:
    with pytest.raises(IdPError) as err:
        idp.post_token({"grant_type": "password", "username": "alice", "password": "nope", "scope": "nc:read"})
    assert err.value.status_code == 400 and err.value.body["error"] == "invalid_grant"
    with pytest.raises(IdPError) as err:
        idp.introspect(idp.token("alice", "nc:read", resource=RS))
    assert err.value.body["error"] == "unsupported_token_type"


def test_rotate_keys(idp: TestIdP) -> None:
    old_jwt = idp.token("alice", "nc:read", resource=RS)
    old_opaque = idp.token("alice", "nc:read", resource=RS, opaque=True)
    old_kid = jwt.get_unverified_header(old_jwt)["kid"]

    new_kid = idp.rotate_keys()
    assert new_kid != old_kid
    assert [k["kid"] for k in idp.jwks()["keys"]] == [new_kid]
    new_jwt = idp.token("alice", "nc:read", resource=RS)
    assert jwt.get_unverified_header(new_jwt)["kid"] == new_kid
    assert verify(idp, new_jwt)["sub"] == "alice"
    with pytest.raises(KeyError):
        verify(idp, old_jwt)  # like Nextcloud: the old key is gone at once
    assert idp.introspect(old_opaque)["active"] is True  # stored tokens survive the rotation

    newer_kid = idp.rotate_keys(keep_old=True)
    assert [k["kid"] for k in idp.jwks()["keys"]] == [newer_kid, new_kid]
    assert verify(idp, new_jwt)["sub"] == "alice"


def test_stats_counts_jwks_fetches(idp: TestIdP) -> None:
    idp.stats(reset=True)
    for _ in range(3):
        idp.jwks()
    stats = idp.stats()
    assert stats["requests"]["/jwks"] == 3
    assert idp.stats(reset=True)["total"] == 3
    assert idp.stats()["total"] == 0


def test_auth_code_flow_public_client_with_refresh(idp: TestIdP) -> None:
    resp = idp.auth_code_flow(PUBLIC_CLIENT_ID, "alice", "openid nc:read offline_access", resource=RS)
    claims = verify(idp, resp["access_token"])
    assert claims["sub"] == "alice" and claims["scope"] == "nc:read" and claims["client_id"] == PUBLIC_CLIENT_ID
    assert "id_token" in resp
    refreshed = idp.refresh(resp["refresh_token"], client_id=PUBLIC_CLIENT_ID, client_secret=None, resource=RS)
    assert verify(idp, refreshed["access_token"])["sub"] == "alice"
    assert refreshed["refresh_token"] != resp["refresh_token"]  # rotated, like Nextcloud


def test_dcr_then_auth_code_flow(idp: TestIdP) -> None:
    client = idp.register_client(
        redirect_uris=["http://127.0.0.1:33418/callback"],
        token_endpoint_auth_method="none",
        application_type="native",
        grant_types=["authorization_code", "refresh_token"],
        response_types=["code"],
    )
    assert client["client_id"] and "client_secret" not in client
    resp = idp.auth_code_flow(
        client["client_id"],
        "user42",
        "nc:write",
        resource=RS,
        redirect_uri="http://127.0.0.1:33418/callback",
        opaque=True,
    )
    info = idp.introspect(resp["access_token"])
    assert info["active"] and info["sub"] == "user42" and info["aud"] == RS and info["scope"] == "nc:write"
