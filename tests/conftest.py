"""Integration fixtures across distributions: the real IdP, the sandbox trusting it, and ncmcp servers
in OAuth mode over real HTTP. Servers start once per session; every test uses its own user names."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from ncmcp.testing.idp import TestIdP
from ncmcp.testing.sandbox import SandboxProcess
from support import OAuthServer, oauth_server_for


@pytest.fixture(scope="session")
def idp() -> Iterator[TestIdP]:
    scopes = "nc:read nc:write notes.read notes.write calendar.read calendar.write contacts.read contacts.write files.read files.write hello.read hello.write"
    with TestIdP(scopes=scopes.split()) as provider:
        yield provider


@pytest.fixture(scope="session")
def oauth_sandbox(idp: TestIdP) -> Iterator[SandboxProcess]:
    """A sandbox that accepts the IdP's bearer tokens, as Nextcloud with user_oidc bearer validation does."""
    with SandboxProcess(issuer=idp.issuer) as process:
        yield process


@pytest.fixture(scope="session")
def oauth_server(idp: TestIdP, oauth_sandbox: SandboxProcess) -> Iterator[OAuthServer]:
    """An ncmcp server in OAuth mode with every installed plugin, JWT and opaque tokens from the IdP."""
    with oauth_server_for(idp, oauth_sandbox) as server:
        yield server
