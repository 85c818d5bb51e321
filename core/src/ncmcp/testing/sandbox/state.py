"""Sandbox state: users with app passwords, request counters and injected faults."""

from __future__ import annotations

import secrets
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class SandboxUser:
    user_id: str
    app_password: str
    display_name: str
    email: str


@dataclass(slots=True)
class Fault:
    """An injected failure for requests whose path starts with ``path`` (``""`` = every path).

    ``status`` 0 means no status change (only ``delay``); ``times`` < 0 means until cleared.
    """

    path: str = ""
    status: int = 0
    delay: float = 0.0
    retry_after: str | None = None
    maintenance: bool = False
    times: int = -1
    method: str | None = None

    def matches(self, method: str, path: str) -> bool:
        return path.startswith(self.path) and (self.method is None or self.method == method) and self.times != 0


@dataclass(slots=True)
class SandboxState:
    users: dict[str, SandboxUser] = field(default_factory=dict)
    requests: Counter[str] = field(default_factory=Counter)
    by_user: Counter[str] = field(default_factory=Counter)
    faults: list[Fault] = field(default_factory=list)
    maintenance: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add_user(self, user_id: str, app_password: str | None = None) -> SandboxUser:
        with self.lock:
            user = self.users.get(user_id)
            if user is None:
                user = SandboxUser(user_id=user_id, app_password=app_password or secrets.token_urlsafe(24),
                                   display_name=user_id.capitalize(), email=f"{user_id}@example.test")
                self.users[user_id] = user
            elif app_password:
                user.app_password = app_password
            return user

    def count(self, method: str, path: str, user: str | None) -> None:
        with self.lock:
            self.requests[f"{method} {path}"] += 1
            if user:
                self.by_user[user] += 1

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.matches(method, path):
                    if fault.times > 0:
                        fault.times -= 1
                    return fault
        return None

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {"requests": dict(self.requests), "total": sum(self.requests.values()), "by_user": dict(self.by_user)}

    def reset_stats(self) -> None:
        with self.lock:
            self.requests.clear()
            self.by_user.clear()
