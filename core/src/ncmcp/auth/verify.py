"""Access-token verification: RFC 9068 JWTs locally against the JWKS, opaque tokens by RFC 7662
introspection (or, weaker, the userinfo endpoint). Results are cached by SHA-256 of the token."""

from __future__ import annotations

import base64
import json
import re
import time
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import structlog
from mcp.server.auth.provider import AccessToken

from ncmcp.auth.cache import TokenCache, token_key
from ncmcp.auth.oidc import AuthServerUnavailable, ClientCredentials, Discovery, JwksCache
from ncmcp.config import Settings

log = structlog.get_logger("ncmcp.auth")

MAX_TOKEN_BYTES = 16 * 1024
_TOKEN_CHARS = re.compile(r"^[A-Za-z0-9\-._~+/]+=*$")  # RFC 6750 b64token
_JWT_TYPES = frozenset({"at+jwt", "application/at+jwt"})
_NEGATIVE_TTL = 5.0  # a refused token is remembered briefly, so a replayed bad token costs no upstream call


class InvalidToken(Exception):
    """The token is not acceptable; ``reason`` goes to the log (never the token itself)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class _Refused:
    reason: str


def _b64json(segment: str) -> dict[str, Any]:
    padded = segment + "=" * (-len(segment) % 4)
    value = json.loads(base64.urlsafe_b64decode(padded))
    if not isinstance(value, dict):
        raise ValueError("not an object")
    return value


def scopes_of(claims: dict[str, Any]) -> list[str]:
    scope = claims.get("scope")
    if isinstance(scope, str):
        return scope.split()
    scp = claims.get("scp")
    if isinstance(scp, list):
        return [str(s) for s in scp]
    if isinstance(scp, str):
        return scp.split()
    return []


class TokenVerifier:
    """Implements the MCP SDK's ``TokenVerifier`` protocol, plus :meth:`verify` with a reason."""

    def __init__(
        self,
        settings: Settings,
        http: httpx.AsyncClient,
        *,
        discovery: Discovery | None = None,
        jwks: JwksCache | None = None,
        credentials: ClientCredentials | None = None,
    ) -> None:
        self.settings = settings
        self._http = http
        self.discovery = discovery or Discovery(settings.issuer, http)
        self.jwks = jwks or JwksCache(self.discovery, http, min_refetch=settings.jwks_refetch_interval)
        self.credentials = credentials
        self._cache: TokenCache[AccessToken | _Refused] = TokenCache(max_size=settings.token_cache_size)
        base = settings.public_base_url
        self.audiences = [base, f"{base}/mcp", *settings.extra_audiences]

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            return await self.verify(token)
        except InvalidToken:
            return None

    async def verify(self, token: str) -> AccessToken:
        # Cheap checks first: no parsing, hashing or network work for oversized or malformed input.
        if len(token) > MAX_TOKEN_BYTES:
            raise InvalidToken("token longer than 16 KiB")
        if not _TOKEN_CHARS.match(token):
            raise InvalidToken("token is not a valid bearer token string")
        result = await self._cache.get_or_load(token_key(token), lambda: self._verify_uncached(token))
        if isinstance(result, _Refused):
            raise InvalidToken(result.reason)
        if result.expires_at is not None and result.expires_at < time.time():
            raise InvalidToken("token expired")
        return result

    async def _verify_uncached(self, token: str) -> tuple[AccessToken | _Refused, float]:
        try:
            if token.count(".") == 2:
                access = await self._verify_jwt(token)
            else:
                access = await self._verify_opaque(token)
        except InvalidToken as exc:
            return _Refused(exc.reason), _NEGATIVE_TTL
        ttl = self.settings.token_cache_ttl
        if access.expires_at is not None:
            ttl = min(ttl, access.expires_at - time.time())
        log.info("token_verified", kind="jwt" if token.count(".") == 2 else "opaque", user=access.subject,
                 client_id=access.client_id, scopes=sorted(access.scopes))
        return access, ttl

    async def _verify_jwt(self, token: str) -> AccessToken:
        head_b64, payload_b64, _ = token.split(".")
        try:
            header = _b64json(head_b64)
            _b64json(payload_b64)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidToken("malformed JWT") from exc
        alg = header.get("alg")
        if alg not in self.settings.jwt_algorithms:
            raise InvalidToken(f"JWT algorithm {alg!r} is not allowed")
        typ = str(header.get("typ", "")).lower()
        if typ not in _JWT_TYPES and not (self.settings.allow_plain_jwt_typ and typ in ("jwt", "")):
            raise InvalidToken(f"JWT typ {header.get('typ')!r} is not at+jwt (RFC 9068)")
        kid = header.get("kid")
        try:
            key = await self.jwks.key(kid)
        except AuthServerUnavailable as exc:
            raise InvalidToken(f"signing keys unavailable: {exc}") from exc
        if key is None:
            raise InvalidToken(f"unknown signing key id {kid!r}")
        issuer = self.settings.issuer_url or await self._discovered_issuer()
        check_aud = not self.settings.disable_audience_check
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                issuer=issuer,
                audience=self.audiences if check_aud else None,
                leeway=self.settings.jwt_leeway,
                options={"require": ["exp", "iss", "sub"], "verify_aud": check_aud},
            )
        except jwt.InvalidIssuerError as exc:
            log.warning("jwt_issuer_mismatch", expected=issuer, hint="set NEXTCLOUD_PUBLIC_ISSUER_URL to the IdP's issuer")
            raise InvalidToken("JWT issuer mismatch") from exc
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"JWT rejected: {type(exc).__name__}: {exc}") from exc
        return self._access(token, claims)

    async def _discovered_issuer(self) -> str:
        try:
            return str((await self.discovery.document())["issuer"]).rstrip("/")
        except AuthServerUnavailable as exc:
            raise InvalidToken(f"issuer unknown: {exc}") from exc

    def _access(self, token: str, claims: dict[str, Any]) -> AccessToken:
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else list(aud or [])
        resource = next((a for a in audiences if a in self.audiences), None)
        return AccessToken(
            token=token,
            client_id=str(claims.get("client_id") or claims.get("azp") or ""),
            scopes=scopes_of(claims),
            expires_at=int(claims["exp"]) if claims.get("exp") is not None else None,
            resource=resource,
            subject=str(claims.get("sub")) if claims.get("sub") is not None else None,
            claims={k: v for k, v in claims.items() if k in ("iss", "sub", "aud", "exp", "iat", "client_id", "azp", "scope")},
        )

    async def _verify_opaque(self, token: str) -> AccessToken:
        try:
            doc = await self.discovery.document()
        except AuthServerUnavailable as exc:
            raise InvalidToken(f"opaque token cannot be verified: {exc}") from exc
        if doc.get("introspection_endpoint") and self.credentials is not None:
            return await self._introspect(token, doc["introspection_endpoint"])
        if doc.get("userinfo_endpoint"):
            return await self._userinfo(token, doc["userinfo_endpoint"])
        raise InvalidToken("opaque token, and the IdP offers neither introspection (with our client) nor userinfo")

    async def _introspect(self, token: str, endpoint: str) -> AccessToken:
        assert self.credentials is not None
        try:
            response = await self._http.post(
                endpoint,
                data={"token": token, "token_type_hint": "access_token"},
                auth=(self.credentials.client_id, self.credentials.client_secret),
            )
        except httpx.HTTPError as exc:
            log.warning("introspection_unavailable", error=type(exc).__name__, effect="opaque tokens refused")
            raise InvalidToken("introspection endpoint unreachable") from exc
        if response.status_code != 200:
            log.warning("introspection_failed", status=response.status_code, effect="opaque tokens refused")
            raise InvalidToken(f"introspection answered HTTP {response.status_code}")
        data = response.json()
        if not data.get("active"):
            raise InvalidToken("token is not active (introspection)")
        if data.get("exp") is not None and int(data["exp"]) < time.time() - self.settings.jwt_leeway:
            raise InvalidToken("token expired (introspection)")
        if not self.settings.disable_audience_check:
            aud = data.get("aud") or data.get("resource")
            if aud is not None:
                audiences = [aud] if isinstance(aud, str) else list(aud)
                if not any(a in self.audiences for a in audiences):
                    raise InvalidToken("token audience is not this server (introspection)")
        return self._access(token, data)

    async def _userinfo(self, token: str, endpoint: str) -> AccessToken:
        try:
            response = await self._http.get(endpoint, headers={"Authorization": f"Bearer {token}"})
        except httpx.HTTPError as exc:
            log.warning("userinfo_unavailable", error=type(exc).__name__, effect="opaque tokens refused")
            raise InvalidToken("userinfo endpoint unreachable") from exc
        if response.status_code != 200:
            raise InvalidToken(f"userinfo refused the token (HTTP {response.status_code})")
        data = response.json()
        if not data.get("sub"):
            raise InvalidToken("userinfo returned no subject")
        access = self._access(token, data)
        if not access.scopes:
            log.warning("opaque_token_without_scopes", user=access.subject,
                        hint="userinfo proves only that the token is valid; configure introspection for scoped access")
        return access
