"""Which scopes grant what: one predicate, used for listing and for calling alike.

A read tool is granted by ``nc:read`` or ``<plugin>.read``; a write tool by ``nc:write`` or
``<plugin>.write``. ``nc:write`` does not imply ``nc:read`` (the reference deployment's write-only
token lists write tools only).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from ncmcp.plugin.types import Access

COARSE = {Access.READ: "nc:read", Access.WRITE: "nc:write"}


def granting_scopes(plugin: str, access: Access) -> tuple[str, str]:
    """The scopes that grant an operation: (coarse, per-plugin)."""
    return COARSE[access], f"{plugin}.{access.value}"


def is_granted(plugin: str, access: Access, held: Collection[str] | None) -> bool:
    """``held is None`` means Basic mode (single user, no scopes): everything is granted."""
    if held is None:
        return True
    return any(scope in held for scope in granting_scopes(plugin, access))


def challenge_scope(plugin: str, access: Access, style: str) -> str:
    """The scope a challenge names for an operation (``style``: ``coarse`` or ``plugin``)."""
    coarse, per_plugin = granting_scopes(plugin, access)
    return coarse if style == "coarse" else per_plugin


def supported_scopes(plugins: Iterable[str], style: str) -> list[str]:
    """Scopes advertised in metadata and 401 challenges (never ``offline_access``)."""
    if style == "coarse":
        return ["nc:read", "nc:write"]
    return [f"{p}.{a.value}" for p in sorted(plugins) for a in (Access.READ, Access.WRITE)]


def step_up_scopes(needed: str, held: Iterable[str], ours: Iterable[str]) -> list[str]:
    """The scope list for a 403: the needed scope plus the server's scopes the token already holds.

    Clients that re-authorize with exactly the challenged scopes would otherwise lose what they had.
    """
    ours_set = set(ours)
    kept = [s for s in held if s in ours_set and s != needed]
    return sorted(set(kept)) + [needed]
