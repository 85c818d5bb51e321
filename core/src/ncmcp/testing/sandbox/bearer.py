"""Bearer tokens at the sandbox, the way Nextcloud with ``user_oidc`` bearer validation accepts them:
any valid token of the configured issuer (JWT via its JWKS, opaque via introspection); audience and
scope are not checked, just as Nextcloud does not check them."""

from __future__ import annotations

import time

import httpx
import jwt

from ncmcp.testing.idp import TEST_CLIENT_ID, TEST_CLIENT_SECRET


class BearerValidator:
    def __init__(self, issuer: str, http: httpx.AsyncClient) -> None:
        self.issuer = issuer.rstrip("/")
        self._http = http
        self._doc: dict | None = None
        self._keys: dict[str, jwt.PyJWK] = {}
        self._cache: dict[str, tuple[float, str | None]] = {}

    async def _discovery(self) -> dict:
        if self._doc is None:
            self._doc = (await self._http.get(f"{self.issuer}/.well-known/openid-configuration")).json()
        return self._doc

    async def _key(self, kid: str) -> jwt.PyJWK | None:
        if kid not in self._keys:
            jwks = (await self._http.get((await self._discovery())["jwks_uri"])).json()
            self._keys = {k["kid"]: jwt.PyJWK(k) for k in jwks.get("keys", []) if "kid" in k}
        return self._keys.get(kid)

    async def user_for(self, token: str) -> str | None:
        now = time.monotonic()
        hit = self._cache.get(token)
        if hit and hit[0] > now:
            return hit[1]
        user = await self._validate(token)
        self._cache[token] = (now + 5.0, user)
        if len(self._cache) > 10_000:
            self._cache.clear()
        return user

    async def _validate(self, token: str) -> str | None:
        try:
            if token.count(".") == 2:
                header = jwt.get_unverified_header(token)
                key = await self._key(str(header.get("kid")))
                if key is None:
                    return None
                claims = jwt.decode(token, key.key, algorithms=["RS256"], issuer=self.issuer, options={"verify_aud": False})
                return str(claims["sub"])
            response = await self._http.post((await self._discovery())["introspection_endpoint"], data={"token": token},
                                             auth=(TEST_CLIENT_ID, TEST_CLIENT_SECRET))
            data = response.json()
            return str(data["sub"]) if data.get("active") and data.get("sub") else None
        except (jwt.PyJWTError, httpx.HTTPError, ValueError, KeyError):
            return None
