"""Nextcloud capabilities (``/ocs/v2.php/cloud/capabilities``), read at start-up and refreshed.

A plugin whose app is missing or too old has its tools hidden and refused. While the capabilities
have never been read (Nextcloud unreachable), plugins are not hidden: the calls themselves will then
report the upstream error, which says more than "app missing" would.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
import structlog
from packaging.version import InvalidVersion, Version

from ncmcp.nextcloud.client import NextcloudClient
from ncmcp.plugin.types import AppRequirement

log = structlog.get_logger("ncmcp.capabilities")


class Capabilities:
    def __init__(self, refresh_after: float = 300.0) -> None:
        self.data: dict[str, Any] | None = None
        self.version: str | None = None
        self._fetched_at = 0.0
        self._refresh_after = refresh_after
        self._lock = anyio.Lock()

    def stale(self) -> bool:
        return time.monotonic() - self._fetched_at >= self._refresh_after

    async def refresh(self, client: NextcloudClient) -> None:
        async with self._lock:
            if not self.stale() and self.data is not None:
                return
            self._fetched_at = time.monotonic()
            try:
                data = await client.ocs("/ocs/v2.php/cloud/capabilities")
            except Exception as exc:  # any failure keeps what we knew; logged, never raised
                log.warning("capabilities_unavailable", error=f"{type(exc).__name__}: {exc}")
                return
            self.data = data.get("capabilities", {}) if isinstance(data, dict) else {}
            self.version = ((data.get("version") or {}) if isinstance(data, dict) else {}).get("string")

    def check(self, requirement: AppRequirement | None) -> str | None:
        """``None`` when the requirement is met (or unknown yet), else the reason it is not."""
        if requirement is None or self.data is None:
            return None
        key = requirement.capability_key or requirement.app_id
        app = self.data.get(key)
        if app is None:
            return f"the Nextcloud app '{requirement.app_id}' is not installed or not enabled"
        if requirement.min_version:
            have = app.get("version") if isinstance(app, dict) else None
            try:
                if have is None or Version(str(have)) < Version(requirement.min_version):
                    return f"the Nextcloud app '{requirement.app_id}' is version {have}, {requirement.min_version} or newer is needed"
            except InvalidVersion:
                return f"the Nextcloud app '{requirement.app_id}' reports an unreadable version {have!r}"
        return None
