"""The streamable-HTTP application: the MCP endpoint behind one gate, RFC 9728 metadata, health.

The gate answers before the SDK sees a request: 401 for a missing or bad token, and 403
``insufficient_scope`` for a ``tools/call`` or ``resources/read`` the token's scopes do not grant (the
SDK can only answer JSON-RPC errors with HTTP 200, which clients cannot step up from).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import structlog
from mcp.server.auth.middleware.auth_context import auth_context_var
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ncmcp.auth import challenges
from ncmcp.auth.oidc import resolve_client_credentials
from ncmcp.auth.verify import InvalidToken, TokenVerifier
from ncmcp.host import INSUFFICIENT_SCOPE, Host
from ncmcp.nextcloud.client import NoCookies, token_fingerprint
from ncmcp.server import build_server

log = structlog.get_logger("ncmcp.http")

PRM_PATH = "/.well-known/oauth-protected-resource"


async def _send_json(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] = ()) -> None:  # type: ignore[assignment]
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})


class McpGate:
    """Authentication and per-operation scope checks in front of the SDK's transport."""

    def __init__(self, app: ASGIApp, host: Host, verifier: TokenVerifier | None) -> None:
        self.app = app
        self.host = host
        self.verifier = verifier
        self.metadata_url = host.settings.public_base_url + PRM_PATH + "/mcp"
        self.unauthorized_scopes = host.settings.unauthorized_scopes or host.challenge_scopes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] == "OPTIONS":
            return await self.app(scope, receive, send)
        if not self.host.oauth:
            return await self.app(scope, receive, send)
        assert self.verifier is not None
        header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return await self._unauthorized(send, None)
        token = token.strip()
        try:
            access = await self.verifier.verify(token)
        except InvalidToken as exc:
            log.warning("token_rejected", reason=exc.reason, token=token_fingerprint(token))
            return await self._unauthorized(send, "The access token is invalid, expired or not issued for this server")
        user = AuthenticatedUser(access)
        scope["user"] = user
        reset = auth_context_var.set(user)
        try:
            if scope["method"] == "POST":
                body = await _read_body(receive, self.host.settings.max_body_bytes)
                if body is None:
                    return await _send_json(send, 413, challenges.jsonrpc_error_body(None, -32600, "request body too large"))
                if await self._refused(body, send):
                    return
                receive = _replay(body, receive)
            await self.app(scope, receive, send)
        finally:
            auth_context_var.reset(reset)

    async def _unauthorized(self, send: Send, description: str | None) -> None:
        www = challenges.bearer(
            resource_metadata=self.metadata_url,
            scopes=self.unauthorized_scopes,
            error="invalid_token" if description else None,
            description=description,
        )
        body = json.dumps({"error": "invalid_token" if description else "unauthorized",
                           "error_description": description or "Authorization required"}).encode()
        await _send_json(send, 401, body, [(b"www-authenticate", www.encode())])

    async def _refused(self, body: bytes, send: Send) -> bool:
        try:
            message = json.loads(body)
        except (ValueError, RecursionError):
            return False  # the SDK answers malformed (or absurdly nested) JSON itself, with a 400
        if not isinstance(message, dict):
            return False  # batches: the SDK rejects them with 400
        params = message.get("params") if isinstance(message.get("params"), dict) else {}
        req = self.host.requirement(str(message.get("method")), params)
        principal = self.host.principal()
        if req is None or principal is None or self.host.granted(req, principal):
            return False
        needed = self.host.challenge(req, principal)
        scope_text = " ".join(needed)
        log.warning("missing_scopes", method=message.get("method"), target=params.get("name") or params.get("uri"),
                    needed=scope_text, user=principal.subject)
        www = challenges.bearer(resource_metadata=self.metadata_url, scopes=needed, error="insufficient_scope",
                                description=f"This operation needs one of the scopes granting {req.plugin} {req.access.value} access")
        out = challenges.jsonrpc_error_body(message.get("id"), INSUFFICIENT_SCOPE, f"insufficient_scope: {scope_text} required",
                                            {"scope": scope_text})
        await _send_json(send, 403, out, [(b"www-authenticate", www.encode())])
        return True


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    chunks = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b""
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def protected_resource_metadata(host: Host, resource: str) -> dict[str, Any]:
    """RFC 9728 metadata; ``scopes_supported`` comes from the loaded plugins."""
    return {
        "resource": resource,
        "authorization_servers": [host.settings.issuer],
        "scopes_supported": host.challenge_scopes,
        "bearer_methods_supported": ["header"],
        "resource_signing_alg_values_supported": host.settings.jwt_algorithms,
        "resource_name": "ncmcp (Nextcloud MCP server)",
    }


def create_app(host: Host, *, verifier: TokenVerifier | None = None, idp_http: httpx.AsyncClient | None = None) -> Starlette:
    settings = host.settings
    manager = StreamableHTTPSessionManager(
        app=build_server(host),
        stateless=not settings.stateful,
        json_response=not settings.stateful,
        security_settings=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        max_request_body_size=settings.max_body_bytes,
    )
    if settings.oauth and verifier is None:
        idp_http = idp_http or httpx.AsyncClient(timeout=10.0, cookies=NoCookies())
        verifier = TokenVerifier(settings, idp_http)
    endpoint = McpGate(StreamableHTTPASGIApp(manager), host, verifier)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        log.info("server_starting", auth_mode="oauth" if settings.oauth else "basic",
                 plugins=[r.name for r in host.registry.loaded], tools=len(host.tools),
                 nextcloud=settings.nextcloud_host, resource=settings.resource_url if settings.oauth else None)
        if settings.oauth:
            log.info("oauth_mode", issuer=settings.issuer, audience_check=not settings.disable_audience_check,
                     scope_challenges="WWW-Authenticate scope challenges enabled")
            if settings.disable_audience_check:
                log.warning("audience_check_disabled", hint="tokens issued for other services are accepted")
            assert verifier is not None
            try:
                await verifier.discovery.document()
                verifier.credentials = verifier.credentials or await resolve_client_credentials(settings, verifier.discovery, verifier._http)
            except Exception as exc:
                log.warning("oauth_setup_incomplete", error=f"{type(exc).__name__}: {exc}")
        await host.refresh_capabilities()
        async with manager.run():
            yield
        await host.pool.aclose()
        if idp_http is not None:
            await idp_http.aclose()

    async def prm_root(request: Request) -> JSONResponse:
        return JSONResponse(protected_resource_metadata(host, settings.public_base_url))

    async def prm_mcp(request: Request) -> JSONResponse:
        return JSONResponse(protected_resource_metadata(host, settings.resource_url))

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> JSONResponse:
        checks: dict[str, str] = {}
        try:
            r = await host.pool.http.get("/status.php", timeout=5.0)
            status = r.json() if r.status_code == 200 else {}
            checks["nextcloud"] = "ok" if status.get("installed") and not status.get("maintenance") else f"HTTP {r.status_code}, maintenance={status.get('maintenance')}"
        except (httpx.HTTPError, ValueError) as exc:
            checks["nextcloud"] = f"unreachable ({type(exc).__name__})"
        if settings.oauth and verifier is not None:
            try:
                url = (await verifier.discovery.document())["issuer"]
                r = await verifier._http.get(verifier.discovery.candidates()[0], follow_redirects=True, timeout=5.0)
                checks["identity_provider"] = "ok" if r.status_code == 200 else f"HTTP {r.status_code} at {url}"
            except Exception as exc:
                checks["identity_provider"] = f"unreachable ({type(exc).__name__})"
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    routes = [
        Route("/mcp", endpoint=endpoint, methods=["GET", "POST", "DELETE", "OPTIONS"]),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
    ]
    if settings.oauth:
        routes += [Route(PRM_PATH, prm_root), Route(PRM_PATH + "/mcp", prm_mcp)]
    middleware = []
    if settings.cors_origins:
        middleware.append(Middleware(
            CORSMiddleware, allow_origins=settings.cors_origins, allow_credentials=False,
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "Accept", "Mcp-Session-Id", "MCP-Protocol-Version", "Last-Event-ID", "Mcp-Name", "Mcp-Method"],
            expose_headers=["WWW-Authenticate", "Mcp-Session-Id"],
        ))
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.host = host
    app.state.verifier = verifier
    return app

