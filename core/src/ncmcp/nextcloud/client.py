"""The Nextcloud HTTP layer shared by every plugin.

One ``httpx.AsyncClient`` (one connection pool) serves all users; credentials are attached per
request, and cookies are never stored, so one user's session can never leak into another's request.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx
import structlog

from ncmcp.errors import (
    Conflict,
    InvalidArgument,
    Locked,
    Maintenance,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
    RateLimited,
    ToolError,
    UpstreamAuthFailed,
    UpstreamError,
    UpstreamTimeout,
)
from ncmcp.nextcloud import xml

log = structlog.get_logger("ncmcp.nextcloud")

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PROPFIND", "REPORT", "SEARCH"})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries apply to idempotent requests answered 429 or 503 only (never to writes)."""

    attempts: int = 3
    max_wait: float = 10.0  # never sleep longer than this, whatever Retry-After says
    default_wait: float = 0.5


class _RefuseAll(DefaultCookiePolicy):
    def set_ok(self, cookie: object, request: object) -> bool:  # type: ignore[override]
        return False

    def return_ok(self, cookie: object, request: object) -> bool:  # type: ignore[override]
        return False


class NoCookies(CookieJar):
    """A jar that refuses every cookie: Nextcloud starts a session per bearer login, and reusing it
    across requests or users would be a credential leak."""

    def __init__(self) -> None:
        super().__init__(policy=_RefuseAll())


class NextcloudPool:
    """Owns the one connection pool. Create once per process; close on shutdown."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        max_connections: int = 100,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        split = urlsplit(self.base_url)
        self.origin = f"{split.scheme}://{split.netloc}"
        self.base_path = split.path  # e.g. "/nextcloud" for an install below the web root
        self.retry = retry or RetryPolicy()
        # Small per-user facts worth keeping between calls (e.g. DAV home sets), keyed by
        # (client identity, name); bounded by clearing when it grows past a limit.
        self.cache: dict[tuple[str, str], tuple[float, object]] = {}
        self.http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            cookies=NoCookies(),  # the jar itself: httpx would copy a Cookies object into a fresh jar
            follow_redirects=False,
            transport=transport,
            headers={"User-Agent": "ncmcp"},
        )

    def bind(self, authorization: str, *, user_hint: str = "") -> NextcloudClient:
        """A client that sends ``authorization`` (a full ``Authorization`` header value)."""
        return NextcloudClient(self, authorization, user_hint)

    async def aclose(self) -> None:
        await self.http.aclose()


class NextcloudClient:
    """Nextcloud requests on behalf of one user. Plugins get one in ``ctx.http``."""

    def __init__(self, pool: NextcloudPool, authorization: str, user_hint: str = "") -> None:
        self._pool = pool
        self._auth = authorization
        self.user_hint = user_hint

    @property
    def base_url(self) -> str:
        return self._pool.base_url

    @property
    def identity(self) -> str:
        """A stable, non-reversible key for the credentials this client sends."""
        return token_fingerprint(self._auth)

    @property
    def pool_cache(self) -> dict[tuple[str, str], tuple[float, object]]:
        cache = self._pool.cache
        if len(cache) > 10_000:
            cache.clear()
        return cache

    def url(self, path: str) -> str:
        """The absolute URL for ``path``: relative to the Nextcloud base URL (``/remote.php/...``), or
        origin-absolute as DAV hrefs are (they already include a sub-path such as ``/nextcloud``)."""
        base_path = self._pool.base_path
        if base_path and (path == base_path or path.startswith(base_path + "/")):
            return self._pool.origin + path
        return self._pool.base_url + path

    def _headers(self, headers: Mapping[str, str] | None, path: str) -> dict[str, str]:
        for name, value in (headers or {}).items():
            # Header values come from tool arguments (ETags, destinations): never let one carry a
            # line break (header injection) or characters HTTP cannot encode.
            if not value.isascii() or any(ord(c) < 32 or ord(c) == 127 for c in value):
                raise InvalidArgument(f"{name} must be printable ASCII")
        out = {"Authorization": self._auth}
        base_path = self._pool.base_path
        if base_path and path.startswith(base_path + "/"):
            path = path[len(base_path):]
        if path.startswith(("/ocs/", "/index.php/", "/apps/")):
            # Needed for OCS, and it lets bearer/Basic requests pass Nextcloud's CSRF check on app routes.
            out["OCS-APIRequest"] = "true"
        if headers:
            out.update(headers)
        return out

    async def request(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        content: bytes | str | None = None,
        json_body: Any = None,
        ok: tuple[int, ...] = (),
        timeout: float | None = None,
    ) -> httpx.Response:
        """Send one request; return the response when it is 2xx or its status is in ``ok``.

        Any other status raises the matching :class:`~ncmcp.errors.ToolError`. Idempotent methods
        are retried on 429/503 honouring ``Retry-After`` (bounded); writes are never retried.
        """
        method = method.upper()
        policy = self._pool.retry
        idempotent = method in IDEMPOTENT
        attempts = policy.attempts if idempotent else 1
        kwargs: dict[str, Any] = {"headers": self._headers(headers, path), "params": params}
        if json_body is not None:
            kwargs["json"] = json_body
        elif content is not None:
            kwargs["content"] = content
        if timeout is not None:
            kwargs["timeout"] = timeout
        for attempt in range(1, attempts + 1):
            response = await self._send(method, path, kwargs, idempotent)
            if response.status_code in (429, 503) and attempt < attempts:
                wait = retry_after_seconds(response.headers.get("Retry-After"), policy.default_wait * attempt)
                if wait <= policy.max_wait:
                    log.info("nextcloud_retry", method=method, path=path, status=response.status_code, wait=wait)
                    await anyio.sleep(wait)
                    continue
            break
        if response.is_success or response.status_code in ok:
            return response
        raise error_for(response)

    async def _send(self, method: str, path: str, kwargs: dict[str, Any], idempotent: bool) -> httpx.Response:
        try:
            try:
                return await self._pool.http.request(method, self.url(path), **kwargs)
            except (httpx.ReadError, httpx.RemoteProtocolError, httpx.WriteError):
                # A kept-alive connection the server (or a proxy) closed meanwhile: one more try on a
                # fresh connection is safe for reads; a write may have been received, so it is not repeated.
                if not idempotent:
                    raise
                return await self._pool.http.request(method, self.url(path), **kwargs)
        except httpx.TimeoutException as exc:
            if idempotent:
                raise UpstreamTimeout("Nextcloud did not answer in time; try again later") from exc
            raise UpstreamTimeout("Nextcloud did not answer in time; the change may still have been applied, "
                                  "so read the object again before retrying") from exc
        except httpx.TransportError as exc:
            raise UpstreamError(f"Nextcloud is unreachable ({type(exc).__name__})") from exc

    @asynccontextmanager
    async def stream(
        self, method: str, path: str, *, headers: Mapping[str, str] | None = None, ok: tuple[int, ...] = ()
    ) -> AsyncIterator[httpx.Response]:
        """Stream a response body (large downloads): memory does not grow with the size."""
        request = self._pool.http.build_request(method.upper(), self.url(path), headers=self._headers(headers, path))
        try:
            response = await self._pool.http.send(request, stream=True)
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout("Nextcloud did not answer in time; try again later") from exc
        except httpx.TransportError as exc:
            raise UpstreamError(f"Nextcloud is unreachable ({type(exc).__name__})") from exc
        try:
            if not (response.is_success or response.status_code in ok):
                await response.aread()
                raise error_for(response)
            yield response
        finally:
            await response.aclose()

    async def ocs(self, path: str, *, method: str = "GET", params: Mapping[str, Any] | None = None) -> Any:
        """Call an OCS endpoint and return ``ocs.data``."""
        query = {"format": "json", **(params or {})}
        response = await self.request(method, path, params=query, headers={"Accept": "application/json"})
        try:
            return response.json()["ocs"]["data"]
        except (ValueError, KeyError, TypeError) as exc:
            raise UpstreamError("Nextcloud answered an OCS request with an unexpected body") from exc


def retry_after_seconds(value: str | None, default: float) -> float:
    """Parse ``Retry-After`` (delta-seconds or an HTTP date)."""
    if not value:
        return default
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    return max(0.0, when.timestamp() - time.time())


def upstream_message(response: httpx.Response) -> str:
    """The human message in a Nextcloud error body (Sabre XML, OCS or JSON), shortened."""
    text = ""
    ctype = response.headers.get("content-type", "")
    try:
        if "xml" in ctype:
            text = xml.sabre_message(response.content) or ""
        elif "json" in ctype:
            body = response.json()
            if isinstance(body, dict):
                text = str(
                    body.get("message")
                    or (body.get("ocs", {}).get("meta", {}) or {}).get("message")
                    or body.get("errorType")
                    or ""
                )
    except (ValueError, AttributeError):
        text = ""
    text = " ".join(text.split())
    return text[:300]


def error_for(response: httpx.Response) -> ToolError:
    """Map an unexpected Nextcloud response to a clear tool error."""
    status = response.status_code
    detail = upstream_message(response)
    suffix = f": {detail}" if detail else ""
    if status == 401:
        return UpstreamAuthFailed("Nextcloud refused the credentials (401); the app password or token may be revoked")
    if status == 403:
        return PermissionDenied(f"Nextcloud refused the operation (403){suffix}")
    if status == 404:
        return NotFound(f"Not found in Nextcloud{suffix}")
    if status == 412:
        etag = response.headers.get("ETag")
        return Conflict(f"The object changed on the server since it was read (412){suffix}", current_etag=etag)
    if status == 423:
        return Locked(f"The object is locked in Nextcloud; try again later{suffix}")
    if status == 507:
        return QuotaExceeded("Not enough storage quota in Nextcloud (507)")
    if status == 429:
        return RateLimited("Nextcloud is rate limiting requests (429); wait and retry",
                           retry_after=response.headers.get("Retry-After"))
    if status == 503:
        if response.headers.get("X-Nextcloud-Maintenance-Mode") == "1" or "maintenance" in detail.lower():
            return Maintenance("Nextcloud is in maintenance mode; try again later",
                               retry_after=response.headers.get("Retry-After"))
        return UpstreamError("Nextcloud is temporarily unavailable (503)")
    if status >= 500:
        return UpstreamError(f"Nextcloud failed with HTTP {status}")
    return UpstreamError(f"Nextcloud answered HTTP {status}{suffix}")


def token_fingerprint(token: str) -> str:
    """A short, non-reversible tag for logs. Tokens themselves are never logged."""
    return hashlib.sha256(token.encode()).hexdigest()[:12]


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
