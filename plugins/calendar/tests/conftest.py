"""Every calendar test that touches a server runs twice: against the sandbox with Radicale and with
Xandikos. The test kit's ``sandbox`` fixture is overridden here by a parametrized one, so the kit's
``sandbox_user``, ``make_host`` (in process) and ``http_host`` (real HTTP) follow the backend."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from ncmcp.testing.sandbox import SandboxProcess

# The repository runs pytest with --import-mode=importlib, which does not put test directories on
# sys.path; the calendar tests share their helpers through this one uniquely named module.
sys.path.insert(0, str(Path(__file__).parent))

# The ncmcp test kit (sandbox, sandbox_user, make_host, http_host) is enabled for the whole repository
# by `-p ncmcp.testing` in the root pyproject.toml; a plugin kept in its own repository would enable it
# in its top-level conftest.py with pytest_plugins = ["ncmcp.testing"].


@pytest.fixture(scope="session")
def xandikos_sandbox() -> Iterator[SandboxProcess]:
    with SandboxProcess(dav_backend="xandikos") as process:
        yield process


@pytest.fixture(scope="session", params=["radicale", "xandikos"])
def sandbox(request: pytest.FixtureRequest, sandbox: SandboxProcess) -> SandboxProcess:
    """The kit's (Radicale) sandbox, or the Xandikos one started above."""
    if request.param == "radicale":
        return sandbox
    return request.getfixturevalue("xandikos_sandbox")
