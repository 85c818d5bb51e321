"""OCS and status routes of the sandbox: ``status.php``, capabilities, the current user, unified search."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ncmcp.testing.sandbox.notes import NOTES_APP_VERSION, NotesStore, search_notes
from ncmcp.testing.sandbox.state import SandboxState

NEXTCLOUD_VERSION = {"major": 31, "minor": 0, "micro": 0, "string": "31.0.0", "edition": "", "extendedSupport": False}


def envelope(data: Any, status: int = 200, message: str = "OK") -> JSONResponse:
    meta = {"status": "ok" if status < 400 else "failure", "statuscode": status, "message": message}
    return JSONResponse({"ocs": {"meta": meta, "data": data}}, status_code=status)


def capabilities(apps: dict[str, Any]) -> dict[str, Any]:
    caps: dict[str, Any] = {
        "core": {"pollinterval": 60, "webdav-root": "remote.php/webdav"},
        "dav": {"chunking": "1.0", "bulkupload": "1.0"},
        "files": {"bigfilechunking": True, "undelete": True, "versioning": True},
    }
    caps.update(apps)
    return {"version": NEXTCLOUD_VERSION, "capabilities": caps}


def build_ocs_routes(state: SandboxState, store: NotesStore, apps: dict[str, Any]) -> list[Route]:
    async def status(request: Request) -> Response:
        return JSONResponse({"installed": True, "maintenance": state.maintenance, "needsDbUpgrade": False,
                             "version": "31.0.0.18", "versionstring": "31.0.0", "edition": "",
                             "productname": "Nextcloud", "extendedSupport": False},
                            headers={"Access-Control-Allow-Origin": "*"})

    async def caps(request: Request) -> Response:
        return envelope(capabilities(apps))

    async def user(request: Request) -> Response:
        uid = request.scope.get("sandbox.user")
        if uid is None:
            return envelope(None, 401, "Current user is not logged in")
        u = state.users[uid]
        return envelope({"id": u.user_id, "display-name": u.display_name, "email": u.email, "enabled": True,
                         "quota": {"free": 10**9, "used": 0, "total": 10**9, "relative": 0, "quota": -3},
                         "groups": [], "language": "en", "locale": "en_US"})

    async def providers(request: Request) -> Response:
        return envelope([{"id": "notes", "appId": "notes", "name": "Notes", "order": 10}] if "notes" in apps else [])

    async def search(request: Request) -> Response:
        if request.path_params["provider"] != "notes" or "notes" not in apps:
            return envelope(None, 404, "Provider not found")
        uid = request.scope["sandbox.user"]
        entries = search_notes(store, uid, request.query_params.get("term", ""), str(request.base_url).rstrip("/"))
        return envelope({"name": "Notes", "isPaginated": False, "entries": entries, "cursor": None})

    return [
        Route("/status.php", status),
        Route("/ocs/v2.php/cloud/capabilities", caps),
        Route("/ocs/v1.php/cloud/capabilities", caps),
        Route("/ocs/v2.php/cloud/user", user),
        Route("/ocs/v2.php/search/providers", providers),
        Route("/ocs/v2.php/search/providers/{provider}/search", search),
    ]


def notes_capability() -> dict[str, Any]:
    return {"notes": {"api_version": ["0.2", "1.3", "1.4"], "version": NOTES_APP_VERSION, "notes_path": "Notes"}}
