"""Test kit for ncmcp and its plugins (a pytest plugin you opt into).

In a plugin's ``conftest.py``::

    pytest_plugins = ["ncmcp.testing"]

gives the fixtures ``plugin_registry`` (fresh per test), ``make_host`` (an in-process MCP host with a
chosen set of scopes), ``sandbox`` (a Nextcloud-compatible server, one per session) and the helper
:func:`assert_plugin_contract`.
"""

from ncmcp.testing.contract import assert_plugin_contract
from ncmcp.testing.fixtures import (
    InProcessHost,
    anyio_backend,
    http_host,
    make_host,
    plugin_registry,
    sandbox,
    sandbox_user,
)

__all__ = ["InProcessHost", "anyio_backend", "http_host", "assert_plugin_contract", "make_host", "plugin_registry", "sandbox", "sandbox_user"]
