"""Test kit for ncmcp and its plugins (a pytest plugin you opt into).

In a plugin's top-level ``conftest.py``::

    pytest_plugins = ["ncmcp.testing"]

gives the fixtures ``plugin_registry`` (fresh per test), ``make_host`` (an in-process MCP host with a
chosen set of scopes), ``http_host`` (the same over real HTTP), ``sandbox`` (a Nextcloud-compatible
server, one per session), ``sandbox_user`` (a fresh user per test), and the helper
:func:`assert_plugin_contract`.
"""

from ncmcp.testing.contract import assert_plugin_contract
from ncmcp.testing.fixtures import InProcessHost

# The fixtures live in their own module and are registered through pytest_plugins, so that names
# like ``sandbox`` do not shadow the ``ncmcp.testing.sandbox`` subpackage.
pytest_plugins = ["ncmcp.testing.fixtures"]

__all__ = ["InProcessHost", "assert_plugin_contract"]
