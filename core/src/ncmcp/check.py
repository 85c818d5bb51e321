"""``ncmcp check``: validate the configuration and reach every dependency, step by step."""

from __future__ import annotations

import httpx

from ncmcp.auth.oidc import Discovery, resolve_client_credentials
from ncmcp.config import Settings
from ncmcp.nextcloud.capabilities import Capabilities
from ncmcp.nextcloud.client import NextcloudPool, NoCookies
from ncmcp.plugin.manager import load_plugins


class _Report:
    def __init__(self) -> None:
        self.failed = 0

    def step(self, ok: bool, what: str, detail: str = "") -> None:
        self.failed += 0 if ok else 1
        print(f"[{'ok' if ok else 'FAIL'}] {what}" + (f": {detail}" if detail else ""))


async def run_check(settings: Settings) -> int:
    report = _Report()
    report.step(True, "configuration", f"{'OAuth' if settings.oauth else 'Basic'} mode, Nextcloud at {settings.nextcloud_host}")
    pool = NextcloudPool(settings.nextcloud_host, timeout=10.0)
    async with httpx.AsyncClient(timeout=10.0, cookies=NoCookies()) as http:
        if settings.oauth:
            discovery = Discovery(settings.issuer, http)
            try:
                doc = await discovery.document()
                report.step(True, "OIDC discovery", f"issuer {doc['issuer']}")
                if settings.issuer_url and doc["issuer"].rstrip("/") != settings.issuer_url:
                    report.step(False, "issuer", f"tokens will say {doc['issuer']!r} but NEXTCLOUD_PUBLIC_ISSUER_URL is {settings.issuer_url!r}")
                jwks = await http.get(doc["jwks_uri"])
                keys = jwks.json().get("keys", []) if jwks.status_code == 200 else []
                report.step(bool(keys), "JWKS", f"{len(keys)} key(s) at {doc['jwks_uri']}")
                creds = await resolve_client_credentials(settings, discovery, http)
                report.step(creds is not None or not doc.get("introspection_endpoint"), "client credentials",
                            f"client {creds.client_id}" if creds else "none (opaque tokens fall back to userinfo)")
            except Exception as exc:
                report.step(False, "OIDC discovery", f"{type(exc).__name__}: {exc}")
        try:
            status = (await pool.http.get("/status.php")).json()
            report.step(bool(status.get("installed")) and not status.get("maintenance"), "Nextcloud status",
                        f"version {status.get('versionstring')}, maintenance={status.get('maintenance')}")
        except (httpx.HTTPError, ValueError) as exc:
            report.step(False, "Nextcloud status", f"{type(exc).__name__}")
        caps = Capabilities(0)
        client = pool.bind("")
        if not settings.oauth and settings.username and settings.password:
            import base64

            client = pool.bind("Basic " + base64.b64encode(f"{settings.username}:{settings.password}".encode()).decode())
            try:
                me = await client.ocs("/ocs/v2.php/cloud/user")
                report.step(True, "credentials", f"Nextcloud user id {me['id']}")
            except Exception as exc:
                report.step(False, "credentials", str(exc))
        await caps.refresh(client)
        report.step(caps.data is not None, "capabilities", f"Nextcloud {caps.version}" if caps.data is not None else "unreadable")
        registry = load_plugins(allow=settings.plugins)
        if not registry.records:
            report.step(True, "plugins", "none installed: the server will offer zero tools")
        for record in registry.records.values():
            if record.status != "loaded":
                report.step(False, f"plugin {record.name}", str(record.error))
                continue
            problem = caps.check(record.manifest.requires if record.manifest else None)
            report.step(problem is None, f"plugin {record.name}", problem or f"{len(record.tools)} tools available")
    await pool.aclose()
    print("All checks passed." if not report.failed else f"{report.failed} check(s) failed.")
    return 0 if not report.failed else 1
