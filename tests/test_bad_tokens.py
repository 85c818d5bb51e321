"""The bad-token corpus: every token is answered 401 before any Nextcloud request.

Tokens with forged claims need a signing key, so a small issuer serving its own discovery document
and JWKS stands in for the IdP here; everything the real IdP can produce (wrong audience, revoked
opaque tokens, key rotation, unknown-kid floods) is tested against the real one.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
import uuid
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from ncmcp.testing.http import connect, serve_in_thread
from ncmcp.testing.idp import TestIdP
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
from support import OAuthServer, oauth_server_for, unique_user

pytestmark = pytest.mark.anyio

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
FOREIGN = rsa.generate_private_key(public_exponent=65537, key_size=2048)
KID = "forge-1"


@pytest.fixture(scope="module")
def forge_issuer() -> Iterator[str]:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(KEY.public_key()))
    jwk.update(kid=KID, use="sig", alg="RS256")

    def factory(url: str) -> Any:
        async def discovery(request: Any) -> JSONResponse:
            return JSONResponse({"issuer": url, "jwks_uri": f"{url}/jwks", "token_endpoint": f"{url}/token"})

        async def jwks(request: Any) -> JSONResponse:
            return JSONResponse({"keys": [jwk]})

        return Starlette(routes=[Route("/.well-known/openid-configuration", discovery), Route("/jwks", jwks)])

    with serve_in_thread(factory) as url:
        yield url


@pytest.fixture(scope="module")
def forge_server(forge_issuer: str, oauth_sandbox) -> Iterator[OAuthServer]:
    idp_stub = TestIdP.__new__(TestIdP)  # only used for .issuer in this module
    idp_stub.issuer = forge_issuer
    with oauth_server_for(idp_stub, oauth_sandbox, jwt_leeway=5) as server:
        yield server


def forge(server: OAuthServer, *, key: Any = KEY, alg: str = "RS256", headers: dict[str, Any] | None = None,
          drop: tuple[str, ...] = (), **claims: Any) -> str:
    now = int(time.time())
    payload = {"iss": server.host.settings.issuer, "sub": unique_user("forged"), "aud": server.resource, "iat": now,
               "exp": now + 600, "scope": "nc:read nc:write", "client_id": "c", "jti": uuid.uuid4().hex, **claims}
    for name in drop:
        payload.pop(name)
    return jwt.encode(payload, key, algorithm=alg, headers={"typ": "at+jwt", "kid": KID, **(headers or {})})


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def corpus(server: OAuthServer) -> dict[str, str]:
    now = int(time.time())
    public_pem = KEY.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    good_claims = json.loads(base64.urlsafe_b64decode(forge(server).split(".")[1] + "=="))
    hs256 = ".".join([b64({"alg": "HS256", "typ": "at+jwt", "kid": KID}), b64(good_claims)])
    import hashlib
    import hmac

    hs256 += "." + base64.urlsafe_b64encode(hmac.new(public_pem, hs256.encode(), hashlib.sha256).digest()).rstrip(b"=").decode()
    return {
        "alg_none": b64({"alg": "none", "typ": "at+jwt", "kid": KID}) + "." + b64(good_claims) + ".",
        "hs256_with_public_key": hs256,
        "right_kid_foreign_key": forge(server, key=FOREIGN),
        "expired": forge(server, exp=now - 3600, iat=now - 7200),
        "future_nbf": forge(server, nbf=now + 3600),
        "wrong_iss": forge(server, iss="https://evil.example"),
        "wrong_aud": forge(server, aud="https://other-service.example/mcp"),
        "missing_exp": forge(server, drop=("exp",)),
        "wrong_typ": forge(server, headers={"typ": "JWT"}),
        "oversized": forge(server, padding="x" * 20_000),
        "garbage_base64": "eyJhbGciOi.@@@@.####",
        "garbage_segments": "aaaa.bbbb.cccc",
        "empty_scope_but_valid_signature_from_other_issuer": jwt.encode(
            {"iss": "https://evil.example", "sub": "x", "aud": server.resource, "exp": now + 60}, FOREIGN, algorithm="RS256",
            headers={"typ": "at+jwt", "kid": "evil"}),
    }


def test_control_token_is_accepted(forge_server: OAuthServer) -> None:
    r = forge_server.post(forge(forge_server), {"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert r.status_code == 200, r.text
    assert r.json()["result"]["tools"]


def test_bad_token_corpus_is_refused_without_upstream_calls(forge_server: OAuthServer, oauth_sandbox) -> None:
    oauth_sandbox.reset_stats()
    for name, token in corpus(forge_server).items():
        r = forge_server.post(token, {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                      "params": {"name": "nc_notes_list_notes", "arguments": {}}})
        assert r.status_code == 401, (name, r.status_code, r.text)
        assert 'error="invalid_token"' in r.headers["www-authenticate"], name
    assert oauth_sandbox.stats()["total"] == 0


def test_wrong_audience_from_the_real_idp(oauth_server: OAuthServer) -> None:
    token = oauth_server.idp.token(unique_user("aud"), "nc:read", resource="http://127.0.0.1:1/other/mcp")
    assert oauth_server.post(token, {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).status_code == 401


def test_revoked_opaque_token(oauth_server: OAuthServer) -> None:
    token = oauth_server.token(unique_user("revoked"), "nc:read", opaque=True)
    oauth_server.idp.revoke(token)
    r = oauth_server.post(token, {"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert r.status_code == 401


def test_unknown_kid_flood_causes_at_most_one_jwks_refetch(idp, oauth_sandbox) -> None:
    with oauth_server_for(idp, oauth_sandbox) as server:
        assert server.post(server.token(unique_user("kid"), "nc:read"), {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).status_code == 200
        idp.stats(reset=True)
        for _ in range(40):
            token = jwt.encode({"iss": idp.issuer, "sub": "x", "aud": server.resource, "exp": int(time.time()) + 60},
                               FOREIGN, algorithm="RS256", headers={"typ": "at+jwt", "kid": secrets.token_hex(8)})
            assert server.post(token, {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).status_code == 401
        assert idp.stats()["requests"].get("/jwks", 0) <= 1


async def test_key_rotation_without_restart() -> None:
    with TestIdP() as own_idp:
        from ncmcp.testing.sandbox import SandboxProcess

        with SandboxProcess(issuer=own_idp.issuer) as sandbox, oauth_server_for(own_idp, sandbox, jwks_refetch_interval=0.2) as server:
            user = unique_user("rotate")
            async with connect(server.url, server.token(user, "nc:read nc:write")) as client:
                assert not (await client.call_tool("nc_notes_list_notes", {})).is_error
            new_kid = own_idp.rotate_keys()
            await anyio.sleep(0.3)
            fresh = server.token(user, "nc:read nc:write")
            assert jwt.get_unverified_header(fresh)["kid"] == new_kid
            async with connect(server.url, fresh) as client:
                assert not (await client.call_tool("nc_notes_list_notes", {})).is_error


def test_oversized_token_is_refused_before_parsing(oauth_server: OAuthServer) -> None:
    r = oauth_server.post("a" * (16 * 1024 + 1), {"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert r.status_code == 401


def test_non_bearer_scheme_is_treated_as_missing(oauth_server: OAuthServer) -> None:
    r = httpx.post(f"{oauth_server.url}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                   headers={"Authorization": "Basic dXNlcjpwYXNz", "Accept": "application/json, text/event-stream"})
    assert r.status_code == 401 and "error=" not in r.headers["www-authenticate"]
