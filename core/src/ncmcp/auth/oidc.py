"""The authorization server as seen from here: discovery, JWKS, and this server's own client.

Discovery tries the issuer's ``/.well-known/openid-configuration`` (following redirects), then
Nextcloud's ``/index.php/.well-known/openid-configuration``, then RFC 8414 metadata, so the IdP may be
Nextcloud's ``oidc`` app or a separate provider.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import jwt
import structlog

from ncmcp.config import Settings

log = structlog.get_logger("ncmcp.auth")

JWKS_MIN_REFETCH = 30.0  # an unknown kid triggers at most one refetch per this many seconds


class AuthServerUnavailable(RuntimeError):
    """The authorization server could not be reached or described itself badly."""


class Discovery:
    def __init__(self, issuer_url: str, http: httpx.AsyncClient) -> None:
        self.issuer_url = issuer_url.rstrip("/")
        self._http = http
        self._doc: dict[str, Any] | None = None
        self._lock = anyio.Lock()

    def candidates(self) -> list[str]:
        base = self.issuer_url
        return [
            f"{base}/.well-known/openid-configuration",
            f"{base}/index.php/.well-known/openid-configuration",
            f"{base}/.well-known/oauth-authorization-server",
        ]

    async def document(self) -> dict[str, Any]:
        if self._doc is not None:
            return self._doc
        async with self._lock:
            if self._doc is None:
                self._doc = await self._fetch()
        return self._doc

    async def _fetch(self) -> dict[str, Any]:
        errors = []
        for url in self.candidates():
            try:
                response = await self._http.get(url, follow_redirects=True)
                if response.status_code == 200:
                    doc = response.json()
                    if isinstance(doc, dict) and doc.get("issuer"):
                        log.info("oidc_discovered", url=url, issuer=doc["issuer"])
                        return doc
                errors.append(f"{url}: HTTP {response.status_code}")
            except (httpx.HTTPError, ValueError) as exc:
                errors.append(f"{url}: {type(exc).__name__}")
        raise AuthServerUnavailable("OIDC discovery failed: " + "; ".join(errors))


class JwksCache:
    """Signing keys by ``kid``. Unknown kids refetch at most once per 30 s; a failed fetch keeps the
    old keys, so verification survives an IdP outage and a rotation needs no restart."""

    def __init__(self, discovery: Discovery, http: httpx.AsyncClient, *, min_refetch: float = JWKS_MIN_REFETCH) -> None:
        self._discovery = discovery
        self._http = http
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._min_refetch = min_refetch
        self._lock = anyio.Lock()

    async def key(self, kid: str | None) -> jwt.PyJWK | None:
        found = self._lookup(kid)
        if found is not None:
            return found
        async with self._lock:
            found = self._lookup(kid)
            if found is None and self._may_refetch():
                await self._refresh()
                found = self._lookup(kid)
        return found

    def _lookup(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        return self._keys.get(kid)

    def _may_refetch(self) -> bool:
        return self._fetched_at is None or time.monotonic() - self._fetched_at >= self._min_refetch

    async def _refresh(self) -> None:
        self._fetched_at = time.monotonic()
        try:
            uri = (await self._discovery.document()).get("jwks_uri")
            if not uri:
                raise AuthServerUnavailable("the discovery document has no jwks_uri")
            response = await self._http.get(uri)
            response.raise_for_status()
            keys: dict[str | None, jwt.PyJWK] = {}
            for data in response.json().get("keys", []):
                if data.get("use", "sig") != "sig":
                    continue
                try:
                    keys[data.get("kid")] = jwt.PyJWK(data)
                except jwt.PyJWKError:
                    continue  # an unsupported key type must not hide the usable ones
            self._keys = keys
            log.info("jwks_fetched", keys=len(keys))
        except (httpx.HTTPError, ValueError, AuthServerUnavailable) as exc:
            log.warning("jwks_fetch_failed", error=f"{type(exc).__name__}: {exc}", kept_keys=len(self._keys))


@dataclass(frozen=True, slots=True)
class ClientCredentials:
    client_id: str
    client_secret: str


async def resolve_client_credentials(settings: Settings, discovery: Discovery, http: httpx.AsyncClient) -> ClientCredentials | None:
    """This server's own OAuth client (used for introspection).

    Order: environment (``NEXTCLOUD_OIDC_CLIENT_ID``/``_SECRET``), then the JSON file at
    ``NEXTCLOUD_OIDC_CLIENT_STORAGE``, then dynamic client registration (RFC 7591), saved to that file
    with mode 0600. Secrets never reach the logs.
    """
    if settings.oidc_client_id and settings.oidc_client_secret:
        return ClientCredentials(settings.oidc_client_id, settings.oidc_client_secret)
    path = Path(settings.oidc_client_storage) if settings.oidc_client_storage else None
    if path is not None and path.exists():
        data = json.loads(await anyio.Path(path).read_text())
        log.info("oidc_client_loaded", source=str(path), client_id=data.get("client_id"))
        return ClientCredentials(data["client_id"], data["client_secret"])
    doc = await discovery.document()
    endpoint = doc.get("registration_endpoint")
    if not endpoint:
        log.warning("oidc_client_missing", reason="no client id/secret, no storage file, and the IdP offers no registration")
        return None
    body = {
        "client_name": "ncmcp",
        "redirect_uris": [f"{settings.public_base_url}/oauth/callback"],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "client_secret_basic",
        "scope": settings.oidc_scopes,
        "token_type": settings.oidc_token_type,
    }
    response = await http.post(endpoint, json=body)
    if response.status_code not in (200, 201):
        log.warning("oidc_client_registration_failed", status=response.status_code)
        return None
    data = response.json()
    if path is not None:
        await anyio.to_thread.run_sync(_write_private, path, data)
        log.info("oidc_client_registered", client_id=data.get("client_id"), saved_to=str(path))
    else:
        log.warning("oidc_client_registered", client_id=data.get("client_id"), saved_to=None,
                    hint="set NEXTCLOUD_OIDC_CLIENT_STORAGE to keep it across restarts")
    return ClientCredentials(data["client_id"], data["client_secret"])


def _write_private(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2)
    os.chmod(path, 0o600)
