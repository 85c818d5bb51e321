# The ncmcp test kit (fixtures sandbox, sandbox_user, make_host, http_host) is enabled for the whole
# repository by `-p ncmcp.testing` in the root pyproject.toml. A plugin kept in its own repository
# enables it in its top-level conftest.py instead:  pytest_plugins = ["ncmcp.testing"]
