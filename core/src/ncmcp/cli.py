"""``ncmcp`` command line: serve, plugins, check, sandbox."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

import anyio

from ncmcp.auth import scopes as scope_rules
from ncmcp.config import ENV_VARS, ConfigError, Settings, load_settings
from ncmcp.host import Host
from ncmcp.logs import configure_logging
from ncmcp.nextcloud.client import NextcloudPool
from ncmcp.plugin.manager import PluginLoadError, PluginRegistry, load_plugins


def build_host(settings: Settings, registry: PluginRegistry | None = None) -> Host:
    registry = registry if registry is not None else load_plugins(allow=settings.plugins)
    pool = NextcloudPool(settings.nextcloud_host, timeout=settings.http_timeout)
    return Host(settings, registry, pool)


def _add_settings_options(parser: argparse.ArgumentParser) -> None:
    """One option per setting (``--nextcloud-host`` …), each overriding its environment variable."""
    for field, var in ENV_VARS.items():
        if field in ("oauth", "transport", "host", "port", "log_format", "log_level", "plugins"):
            continue
        flag = "--" + field.replace("_", "-")
        info = Settings.model_fields[field]
        if info.annotation is bool:
            parser.add_argument(flag, dest=field, action="store_const", const=True, default=None, help=f"(env {var})")
        else:
            parser.add_argument(flag, dest=field, default=None, help=f"(env {var})")
    parser.add_argument("--plugins", dest="plugins", default=None, help="allow-list, e.g. notes,calendar (env NEXTCLOUD_MCP_PLUGINS)")
    parser.add_argument("--log-format", choices=["console", "json"], default=None)
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default=None)


def _settings(args: argparse.Namespace, **fixed: Any) -> Settings:
    overrides = {k: getattr(args, k) for k in ENV_VARS if hasattr(args, k)}
    overrides.update(fixed)
    return load_settings(**overrides)


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings(args, oauth=True if args.oauth else None, transport=args.transport,
                         host=args.host, port=args.port)
    configure_logging(settings.log_format, settings.log_level)
    host = build_host(settings)
    if settings.transport == "stdio":
        from ncmcp.stdio import run_stdio

        anyio.run(run_stdio, host)
        return 0
    import uvicorn

    from ncmcp.http_app import create_app

    uvicorn.run(create_app(host), host=settings.host, port=settings.port, log_level="warning", access_log=False,
                lifespan="on")
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    configure_logging("console", "error")
    allow = [p for p in (os.environ.get("NEXTCLOUD_MCP_PLUGINS") or "").replace(",", " ").split() if p] or None
    registry = load_plugins(allow=None)
    if not registry.records:
        print("No plugin is installed. Install one, e.g.: pip install ncmcp-notes")
        return 0
    for record in registry.records.values():
        status = record.status if allow is None or record.name in allow else "not allowed (NEXTCLOUD_MCP_PLUGINS)"
        print(f"{record.name}  {record.distribution} {record.version}  [{status}]")
        if record.error:
            print(f"    error: {record.error}")
        if record.manifest and record.manifest.requires:
            req = record.manifest.requires
            print(f"    needs Nextcloud app: {req.app_id}" + (f" >= {req.min_version}" if req.min_version else ""))
        for tool in record.tools:
            granted_by = " or ".join(scope_rules.granting_scopes(record.name, tool.access))
            print(f"    {tool.name:<40} {tool.access.value:<5}  scopes: {granted_by}")
        for res in record.resources:
            granted_by = " or ".join(scope_rules.granting_scopes(record.name, res.spec.access))
            print(f"    resource {res.spec.uri_template:<31} {res.spec.access.value:<5}  scopes: {granted_by}")
    return 1 if allow and any(registry.records.get(n) is None or registry.records[n].status != "loaded" for n in allow) else 0


def cmd_check(args: argparse.Namespace) -> int:
    from ncmcp.check import run_check

    settings = _settings(args, oauth=True if args.oauth else None)
    configure_logging("console", "error")
    return anyio.run(run_check, settings)


def cmd_sandbox(args: argparse.Namespace) -> int:
    from ncmcp.testing.sandbox.server import run_sandbox

    configure_logging("console", "info")
    return run_sandbox(port=args.port, demo_data=args.demo_data, issuer=args.issuer, data_dir=args.data_dir,
                       dav_backend=args.dav_backend)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ncmcp", description="MCP server for Nextcloud")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the MCP server")
    serve.add_argument("--transport", choices=["streamable-http", "stdio"], default=None)
    serve.add_argument("--oauth", action="store_true", help="OAuth 2.0 protected resource mode (env NEXTCLOUD_MCP_OAUTH)")
    serve.add_argument("--host", default=None, help="bind address (env NEXTCLOUD_MCP_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (env NEXTCLOUD_MCP_PORT, default 8000)")
    _add_settings_options(serve)
    serve.set_defaults(func=cmd_serve)

    plugins = sub.add_parser("plugins", help="list installed plugins, their tools and scopes")
    plugins.set_defaults(func=cmd_plugins)

    check = sub.add_parser("check", help="validate the configuration and reach Nextcloud and the IdP step by step")
    check.add_argument("--oauth", action="store_true")
    _add_settings_options(check)
    check.set_defaults(func=cmd_check)

    sandbox = sub.add_parser("sandbox", help="run the Nextcloud-compatible sandbox (for trying ncmcp and for tests)")
    sandbox.add_argument("--port", type=int, default=8080)
    sandbox.add_argument("--demo-data", action="store_true", help="create demo users and data")
    sandbox.add_argument("--issuer", default=None, help="accept bearer tokens from this OIDC issuer")
    sandbox.add_argument("--data-dir", default=None, help="where DAV data lives (default: a temporary folder)")
    sandbox.add_argument("--dav-backend", choices=["radicale", "xandikos"], default="radicale")
    sandbox.set_defaults(func=cmd_sandbox)

    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"ncmcp: {exc}", file=sys.stderr)
        return 2
    except PluginLoadError as exc:
        print(f"ncmcp: {exc}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    raise SystemExit(main())
