"""The sandbox's front door: authentication, counters, injected faults and routing.

Every request is counted (per method and path, and per user) so tests can assert how many upstream
requests an operation made, and that a refused call made none.
"""

from __future__ import annotations

import base64
import secrets
from typing import Any

import anyio
import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ncmcp.testing.sandbox.bearer import BearerValidator
from ncmcp.testing.sandbox.notes import NotesStore, build_notes_routes
from ncmcp.testing.sandbox.ocs import build_ocs_routes, envelope, notes_capability
from ncmcp.testing.sandbox.sabre import error_body
from ncmcp.testing.sandbox.state import Fault, SandboxState

ANONYMOUS = ("/status.php", "/ocs/v2.php/cloud/capabilities", "/ocs/v1.php/cloud/capabilities")
FILES_TREES = ("/remote.php/dav/files/", "/remote.php/dav/trashbin/", "/remote.php/dav/versions/", "/remote.php/dav/uploads/")
def sabre_error(status: int, exception: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(error_body(exception, message), status_code=status, media_type="application/xml; charset=utf-8",
                    headers=headers)


class Sandbox:
    """Builds the ASGI app. ``dav`` parts are optional so the Notes/OCS core works on its own."""

    def __init__(self, state: SandboxState, *, issuer: str | None = None, caldav: Any = None, webdav: Any = None,
                 apps: dict[str, Any] | None = None) -> None:
        self.state = state
        self.store = NotesStore()
        self.caldav = caldav
        self.webdav = webdav
        self.apps = notes_capability() if apps is None else apps
        self.http = httpx.AsyncClient(timeout=10.0)
        self.bearer = BearerValidator(issuer, self.http) if issuer else None
        self._provisioned: set[str] = set()
        self.router = Starlette(routes=[*build_notes_routes(self.store), *build_ocs_routes(state, self.store, self.apps)])
        self.control = Starlette(routes=self._control_routes())

    # --- control API (tests only; the sandbox binds to 127.0.0.1) -----------------------------

    def _control_routes(self) -> list[Route]:
        state = self.state

        async def stats(request: Request) -> Response:
            if request.method == "DELETE":
                state.reset_stats()
            return JSONResponse(state.stats())

        async def faults(request: Request) -> Response:
            if request.method == "DELETE":
                state.faults.clear()
                state.maintenance = False
                return JSONResponse({"faults": 0})
            data = await request.json()
            fault = Fault(**data)
            if fault.maintenance:
                state.maintenance = True
            state.faults.append(fault)
            return JSONResponse({"faults": len(state.faults)})

        async def users(request: Request) -> Response:
            data = await request.json()
            user = state.add_user(data["user_id"], data.get("app_password"))
            await self.provision(user.user_id)
            return JSONResponse({"user_id": user.user_id, "app_password": user.app_password})

        async def apps(request: Request) -> Response:
            data = await request.json()
            self.apps.clear()
            self.apps.update(data)
            return JSONResponse(self.apps)

        return [Route("/__sandbox/stats", stats, methods=["GET", "DELETE"]),
                Route("/__sandbox/faults", faults, methods=["POST", "DELETE"]),
                Route("/__sandbox/users", users, methods=["POST"]),
                Route("/__sandbox/apps", apps, methods=["PUT"])]

    async def provision(self, user_id: str) -> None:
        if user_id in self._provisioned:
            return
        for part in (self.caldav, self.webdav):
            if part is not None:
                await anyio.to_thread.run_sync(part.provision_user, user_id)
        self._provisioned.add(user_id)

    # --- request handling ---------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            return await self.router(scope, receive, send)
        path: str = scope["path"]
        method: str = scope["method"]
        if path.startswith("/__sandbox/"):
            return await self.control(scope, receive, send)
        response = await self._gate(scope, method, path)
        if response is not None:
            return await response(scope, receive, send)
        app = self._route(method, path)
        if app is self.router:
            return await app(scope, receive, send)
        # DAV servers trust the front: the user travels in X-Remote-User, the credentials stay here.
        headers = [(k, v) for k, v in scope["headers"] if k not in (b"authorization", b"x-remote-user")]
        headers.append((b"x-remote-user", scope["sandbox.user"].encode()))
        await app({**scope, "headers": headers}, receive, send)

    def _route(self, method: str, path: str) -> ASGIApp:
        if self.webdav is not None and (path.startswith(FILES_TREES) or (method == "SEARCH" and path.rstrip("/") == "/remote.php/dav")):
            return self.webdav.app
        if self.caldav is not None and path.startswith("/remote.php/dav"):
            return self.caldav.app
        return self.router

    async def _gate(self, scope: Scope, method: str, path: str) -> Response | None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        user = await self._authenticate(headers.get("authorization", ""))
        self.state.count(method, path, user)
        # status.php answers even in maintenance mode: it is how clients detect maintenance.
        fault = None if path == "/status.php" and self.state.maintenance else self.state.take_fault(method, path)
        if fault is not None:
            if fault.delay:
                await anyio.sleep(fault.delay)
            if fault.status:
                extra = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                if fault.maintenance or fault.status == 503 and self.state.maintenance:
                    extra["X-Nextcloud-Maintenance-Mode"] = "1"
                return sabre_error(fault.status, "Sabre\\DAV\\Exception\\ServiceUnavailable" if fault.status == 503 else "Exception",
                                   "System is in maintenance mode." if fault.maintenance else f"Injected failure {fault.status}", extra)
        if self.state.maintenance and path != "/status.php":
            return sabre_error(503, "Sabre\\DAV\\Exception\\ServiceUnavailable", "System is in maintenance mode.",
                               {"X-Nextcloud-Maintenance-Mode": "1", "Retry-After": "120"})
        if path.startswith("/.well-known/caldav") or path.startswith("/.well-known/carddav"):
            return Response(status_code=301, headers={"Location": "/remote.php/dav/"})
        if path in ANONYMOUS:
            if user:
                scope["sandbox.user"] = user
            return None
        if user is None:
            return self._unauthorized(path)
        scope["sandbox.user"] = user
        await self.provision(user)
        bearer = headers.get("authorization", "").lower().startswith("bearer ")
        has_ocs_header = headers.get("ocs-apirequest", "").lower() == "true"
        if path.startswith("/index.php/apps/") and bearer and not has_ocs_header:
            # Nextcloud's CORSMiddleware logs bearer sessions out on #[CORS] routes (all Notes API routes)
            # unless the request passes the CSRF check, which OCS-APIRequest grants.
            return JSONResponse({"message": "CORS requires basic auth"}, status_code=401)
        if path.startswith(("/ocs/", "/index.php/")) and not bearer and not has_ocs_header:
            return JSONResponse({"message": "CSRF check failed"}, status_code=412)
        return None

    async def _authenticate(self, header: str) -> str | None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "basic":
            try:
                login, _, password = base64.b64decode(value).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return None
            user = self.state.users.get(login)
            return login if user and secrets.compare_digest(user.app_password, password) else None
        if scheme.lower() == "bearer" and self.bearer is not None:
            uid = await self.bearer.user_for(value.strip())
            if uid is not None:
                self.state.add_user(uid)  # like user_oidc auto-provisioning
            return uid
        return None

    def _unauthorized(self, path: str) -> Response:
        if path.startswith("/remote.php/"):
            return sabre_error(401, "Sabre\\DAV\\Exception\\NotAuthenticated", "No public access to this resource.",
                               {"WWW-Authenticate": 'Basic realm="Nextcloud", charset="UTF-8"'})
        if path.startswith("/ocs/"):
            return envelope(None, 401, "Current user is not logged in")
        return JSONResponse({"message": "Current user is not logged in"}, status_code=401)

