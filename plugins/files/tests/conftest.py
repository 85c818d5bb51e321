pytest_plugins = ["ncmcp.testing"]
