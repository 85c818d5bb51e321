"""Settings: the reference deployment's environment variables, new ones under ``NEXTCLOUD_MCP_``,
each also settable by a CLI option. Invalid configuration fails at start-up with one line per problem.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

# field name -> environment variable (the reference's names keep their meaning)
ENV_VARS: dict[str, str] = {
    "nextcloud_host": "NEXTCLOUD_HOST",
    "server_url": "NEXTCLOUD_MCP_SERVER_URL",
    "issuer_url": "NEXTCLOUD_PUBLIC_ISSUER_URL",
    "oidc_client_storage": "NEXTCLOUD_OIDC_CLIENT_STORAGE",
    "oidc_scopes": "NEXTCLOUD_OIDC_SCOPES",
    "oidc_token_type": "NEXTCLOUD_OIDC_TOKEN_TYPE",
    "oidc_client_id": "NEXTCLOUD_OIDC_CLIENT_ID",
    "oidc_client_secret": "NEXTCLOUD_OIDC_CLIENT_SECRET",
    "username": "NEXTCLOUD_USERNAME",
    "password": "NEXTCLOUD_PASSWORD",
    "oauth": "NEXTCLOUD_MCP_OAUTH",
    "transport": "NEXTCLOUD_MCP_TRANSPORT",
    "host": "NEXTCLOUD_MCP_HOST",
    "port": "NEXTCLOUD_MCP_PORT",
    "plugins": "NEXTCLOUD_MCP_PLUGINS",
    "log_format": "NEXTCLOUD_MCP_LOG_FORMAT",
    "log_level": "NEXTCLOUD_MCP_LOG_LEVEL",
    "cors_origins": "NEXTCLOUD_MCP_CORS_ORIGINS",
    "extra_audiences": "NEXTCLOUD_MCP_AUDIENCES",
    "disable_audience_check": "NEXTCLOUD_MCP_DISABLE_AUDIENCE_CHECK",
    "allow_plain_jwt_typ": "NEXTCLOUD_MCP_ALLOW_PLAIN_JWT_TYP",
    "jwt_algorithms": "NEXTCLOUD_MCP_JWT_ALGORITHMS",
    "jwt_leeway": "NEXTCLOUD_MCP_JWT_LEEWAY",
    "scope_style": "NEXTCLOUD_MCP_SCOPE_STYLE",
    "unauthorized_scopes": "NEXTCLOUD_MCP_UNAUTHORIZED_SCOPES",
    "token_cache_ttl": "NEXTCLOUD_MCP_TOKEN_CACHE_TTL",
    "token_cache_size": "NEXTCLOUD_MCP_TOKEN_CACHE_SIZE",
    "http_timeout": "NEXTCLOUD_MCP_HTTP_TIMEOUT",
    "tool_timeout": "NEXTCLOUD_MCP_TOOL_TIMEOUT",
    "capabilities_refresh": "NEXTCLOUD_MCP_CAPABILITIES_REFRESH",
    "stateful": "NEXTCLOUD_MCP_STATEFUL",
    "jwks_refetch_interval": "NEXTCLOUD_MCP_JWKS_REFETCH_INTERVAL",
    "max_body_bytes": "NEXTCLOUD_MCP_MAX_BODY_BYTES",
}

ASYMMETRIC_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")


def _split(value: Any) -> Any:
    if isinstance(value, str):
        return [part for part in value.replace(",", " ").split() if part]
    return value


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    nextcloud_host: str = "http://localhost:8080"
    server_url: str | None = None
    issuer_url: str | None = None
    oidc_client_storage: str | None = None
    oidc_scopes: str = "openid profile email nc:read nc:write"
    oidc_token_type: str = "Bearer"
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = Field(default=None, repr=False)
    username: str | None = None
    password: str | None = Field(default=None, repr=False)

    oauth: bool = False
    transport: Literal["streamable-http", "stdio"] = "streamable-http"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    plugins: list[str] | None = None
    log_format: Literal["console", "json"] = "console"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    cors_origins: list[str] = []
    extra_audiences: list[str] = []
    disable_audience_check: bool = False
    allow_plain_jwt_typ: bool = False
    jwt_algorithms: list[str] = ["RS256", "PS256", "ES256"]
    jwt_leeway: int = Field(default=30, ge=0, le=300)
    scope_style: Literal["coarse", "plugin"] = "coarse"
    unauthorized_scopes: list[str] | None = None
    token_cache_ttl: float = Field(default=300.0, gt=0)
    token_cache_size: int = Field(default=10_000, gt=0)
    http_timeout: float = Field(default=30.0, gt=0)
    tool_timeout: float = Field(default=120.0, gt=0)
    capabilities_refresh: float = Field(default=300.0, gt=0)
    stateful: bool = False
    jwks_refetch_interval: float = Field(default=30.0, ge=0.0)
    # Big enough for a 5 MiB file chunk sent as base64 in one tool call (S3-backed Nextcloud needs 5 MiB).
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=64 * 1024, le=256 * 1024 * 1024)

    _split_lists = field_validator(
        "plugins", "cors_origins", "extra_audiences", "jwt_algorithms", "unauthorized_scopes", mode="before"
    )(classmethod(lambda cls, v: _split(v)))

    @field_validator("nextcloud_host", "server_url", "issuer_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/")

    @field_validator("jwt_algorithms")
    @classmethod
    def _asymmetric_only(cls, value: list[str]) -> list[str]:
        bad = [a for a in value if a not in ASYMMETRIC_ALGORITHMS]
        if bad:
            raise ValueError(f"only asymmetric algorithms are allowed, not {', '.join(bad)}")
        return value

    @field_validator("cors_origins")
    @classmethod
    def _no_wildcard(cls, value: list[str]) -> list[str]:
        if "*" in value:
            raise ValueError("'*' is not allowed: list the browser origins explicitly")
        return value

    @model_validator(mode="after")
    def _mode(self) -> Settings:
        if not self.oauth and not (self.username and self.password):
            raise ValueError(
                "Basic mode needs NEXTCLOUD_USERNAME and NEXTCLOUD_PASSWORD (an app password); or use --oauth"
            )
        if self.oauth and self.transport == "stdio":
            raise ValueError("OAuth mode needs the streamable-http transport (stdio carries no token)")
        if bool(self.oidc_client_id) != bool(self.oidc_client_secret):
            raise ValueError("NEXTCLOUD_OIDC_CLIENT_ID and NEXTCLOUD_OIDC_CLIENT_SECRET go together")
        return self

    # Derived values

    @property
    def resource_url(self) -> str:
        """This server's resource identifier (RFC 9728 ``resource``): the MCP endpoint URL."""
        return f"{self.public_base_url}/mcp"

    @property
    def public_base_url(self) -> str:
        return self.server_url or f"http://{self.host}:{self.port}"

    @property
    def issuer(self) -> str:
        return self.issuer_url or self.nextcloud_host


class ConfigError(ValueError):
    """Configuration is invalid; ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))
        self.problems = problems


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Settings from the environment, with CLI ``overrides`` (``None`` values ignored) taking priority."""
    env = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    for name, var in ENV_VARS.items():
        if env.get(var, "") != "":
            data[name] = env[var]
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings(**data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = err["loc"][0] if err["loc"] else None
            where = ENV_VARS.get(str(field), str(field)) if field else "configuration"
            problems.append(f"{where}: {err['msg'].removeprefix('Value error, ')}")
        raise ConfigError(problems) from None


def plugin_settings(plugin: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``NEXTCLOUD_MCP_<PLUGIN>_<KEY>=value`` → ``{"<key>": value}`` for one plugin."""
    env = os.environ if environ is None else environ
    prefix = f"NEXTCLOUD_MCP_{plugin.upper()}_"
    return {k[len(prefix):].lower(): v for k, v in env.items() if k.startswith(prefix)}
