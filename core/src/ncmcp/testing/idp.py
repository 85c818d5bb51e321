"""Launcher for the real test identity provider in ``idp/`` (node-oidc-provider, see idp/server.mjs).

Synchronous on purpose: usable from pytest session fixtures and from benchmark scripts alike.

    with TestIdP() as idp:
        token = idp.token("alice", "nc:read nc:write", resource="http://127.0.0.1:8080/mcp")
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import threading
import urllib.parse
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import httpx

__all__ = [
    "DEFAULT_REDIRECT_URI",
    "PUBLIC_CLIENT_ID",
    "TEST_CLIENT_ID",
    "TEST_CLIENT_SECRET",
    "IdPError",
    "TestIdP",
    "ensure_idp_installed",
    "find_idp_dir",
]

TEST_CLIENT_ID = "test-client"
TEST_CLIENT_SECRET = "test-secret"
PUBLIC_CLIENT_ID = "public-client"
DEFAULT_REDIRECT_URI = "http://127.0.0.1/cb"
START_TIMEOUT = 15.0


class IdPError(RuntimeError):
    """The IdP could not start, or answered an HTTP request with an error status."""

    def __init__(self, message: str, status_code: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = body


def find_idp_dir() -> Path:
    """Return the repo's ``idp/`` directory: ``$NCMCP_IDP_DIR``, else the first ``idp/server.mjs`` above this file."""
    env = os.environ.get("NCMCP_IDP_DIR")
    if env:
        return Path(env)
    for parent in Path(__file__).resolve().parents:
        if (parent / "idp" / "server.mjs").is_file():
            return parent / "idp"
    raise IdPError("cannot find the idp/ directory; set NCMCP_IDP_DIR")


def ensure_idp_installed(idp_dir: Path) -> None:
    """Run ``npm ci`` in ``idp_dir`` if oidc-provider is not installed yet (a fresh clone)."""
    marker = idp_dir / "node_modules" / "oidc-provider"
    if marker.is_dir():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise IdPError("npm is not installed; the test IdP needs Node.js >= 20 and npm")
    # parallel pytest workers may all start here; one runs npm ci, the others wait for it
    key = hashlib.sha256(str(idp_dir.resolve()).encode()).hexdigest()[:16]
    with open(Path(tempfile.gettempdir()) / f"ncmcp-idp-npm-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.is_dir():
            return
        proc = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"], cwd=idp_dir, capture_output=True, text=True, check=False
        )
    if proc.returncode != 0:
        raise IdPError(f"npm ci failed in {idp_dir}:\n{proc.stdout}\n{proc.stderr}")


def _scope_str(scopes: str | Iterable[str]) -> str:
    return scopes if isinstance(scopes, str) else " ".join(scopes)


def _json_or_raise(resp: httpx.Response) -> Any:
    """Decode a JSON answer; raise IdPError (with status and body) for any error status."""
    try:
        body = resp.json() if resp.content else None
    except ValueError:
        body = resp.text
    if resp.is_error:
        raise IdPError(
            f"{resp.request.method} {resp.request.url} -> {resp.status_code}: {body}", resp.status_code, body
        )
    return body


class TestIdP:
    """A running ``idp/server.mjs`` process on 127.0.0.1 with an ephemeral port.

    Attributes after ``start()``: ``issuer``, ``discovery`` (the OpenID configuration), ``pid``.
    """

    __test__ = False  # the name starts with "Test"; keep pytest from collecting it

    def __init__(self, idp_dir: Path | None = None, scopes: Iterable[str] | None = None) -> None:
        self.idp_dir = Path(idp_dir) if idp_dir is not None else find_idp_dir()
        self.scopes = list(scopes) if scopes is not None else None
        self.issuer = ""
        self.discovery: dict[str, Any] = {}
        self.pid: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._http: httpx.Client | None = None

    # ---- lifecycle ----------------------------------------------------------------------------
    def start(self) -> Self:
        """Start node, wait (at most 15 s) for its issuer line, fetch discovery."""
        ensure_idp_installed(self.idp_dir)
        node = shutil.which("node")
        if node is None:
            raise IdPError("node is not installed; the test IdP needs Node.js >= 20")
        env = {**os.environ, "PORT": "0", "IDP_EXIT_ON_STDIN_EOF": "1"}
        if self.scopes is not None:
            env["RS_SCOPES"] = " ".join(self.scopes)
        # stderr goes to a file: nobody reads it while the server runs, and a pipe could fill up
        if self._stderr is not None:
            self._stderr.close()
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the process; closed in __exit__)
        # stdin stays an open pipe: node exits when it closes, i.e. when this process dies
        self._proc = subprocess.Popen(
            [node, "server.mjs"],
            cwd=self.idp_dir,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        self.pid = self._proc.pid
        line = self._read_first_line(START_TIMEOUT)
        try:
            self.issuer = json.loads(line)["issuer"]
        except (ValueError, KeyError, TypeError):
            self.stop()
            raise IdPError(f"test IdP did not start (stdout {line!r}):\n{self.stderr_text()}") from None
        self._http = httpx.Client(base_url=self.issuer, timeout=10.0)
        self.discovery = _json_or_raise(self._http.get("/.well-known/openid-configuration"))
        return self

    def _read_first_line(self, timeout: float) -> str:
        # readline() blocks; a helper thread lets us give up after `timeout`
        assert self._proc is not None and self._proc.stdout is not None
        stdout = self._proc.stdout
        result: list[bytes] = []
        reader = threading.Thread(target=lambda: result.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        if not result:
            self.stop()
            raise IdPError(f"test IdP did not print its issuer within {timeout:.0f} s:\n{self.stderr_text()}")
        return result[0].decode(errors="replace").strip()

    def stop(self) -> None:
        """Terminate the node process (by PID) and wait for it."""
        if self._http is not None:
            self._http.close()
            self._http = None
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    stream.close()

    def stderr_text(self) -> str:
        """What node wrote to stderr so far (NOTICE/WARNING lines, errors)."""
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    @property
    def http(self) -> httpx.Client:
        """An httpx client with ``base_url`` = issuer."""
        if self._http is None:
            raise IdPError("test IdP is not running")
        return self._http

    # ---- tokens -------------------------------------------------------------------------------
    def post_token(
        self, data: dict[str, str], *, client_id: str = TEST_CLIENT_ID, client_secret: str | None = TEST_CLIENT_SECRET
    ) -> dict[str, Any]:
        """POST ``data`` to the token endpoint (Basic client auth, or ``client_id`` only for a public client)."""
        if client_secret is None:
            resp = self.http.post(self.discovery["token_endpoint"], data={**data, "client_id": client_id})
        else:
            resp = self.http.post(self.discovery["token_endpoint"], data=data, auth=(client_id, client_secret))
        return dict(_json_or_raise(resp))

    def token_response(
        self,
        user: str,
        scopes: str | Iterable[str],
        *,
        resource: str | None = None,
        opaque: bool = False,
        ttl: int | None = None,
    ) -> dict[str, Any]:
        """Password grant as ``test-client`` (password ``<user>-pw``); returns the whole token response.

        With ``resource``: an RS256 ``at+jwt`` with ``aud=resource`` (or opaque if ``opaque``).
        Without: an opaque token for userinfo/introspection. ``ttl`` overrides the 3600 s lifetime.
        ``offline_access`` in scopes adds a ``refresh_token``.
        """
        data = {"grant_type": "password", "username": user, "password": f"{user}-pw", "scope": _scope_str(scopes)}
        if resource is not None:
            data["resource"] = resource
        if opaque:
            data["token_format"] = "opaque"
        if ttl is not None:
            data["ttl"] = str(ttl)
        return self.post_token(data)

    def token(
        self,
        user: str,
        scopes: str | Iterable[str],
        *,
        resource: str | None = None,
        opaque: bool = False,
        ttl: int | None = None,
    ) -> str:
        """Like ``token_response`` but returns only the access token."""
        return str(self.token_response(user, scopes, resource=resource, opaque=opaque, ttl=ttl)["access_token"])

    def refresh(
        self,
        refresh_token: str,
        *,
        client_id: str = TEST_CLIENT_ID,
        client_secret: str | None = TEST_CLIENT_SECRET,
        resource: str | None = None,
        opaque: bool = False,
    ) -> dict[str, Any]:
        """Refresh-token grant; the answer carries a new (rotated) refresh token."""
        data = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        if resource is not None:
            data["resource"] = resource
        if opaque:
            data["token_format"] = "opaque"
        return self.post_token(data, client_id=client_id, client_secret=client_secret)

    def introspect(self, token: str) -> dict[str, Any]:
        """RFC 7662 introspection as ``test-client``. JWT access tokens give HTTP 400 ``unsupported_token_type``."""
        resp = self.http.post(
            self.discovery["introspection_endpoint"], data={"token": token}, auth=(TEST_CLIENT_ID, TEST_CLIENT_SECRET)
        )
        return dict(_json_or_raise(resp))

    def revoke(self, token: str) -> None:
        """RFC 7009 revocation as ``test-client`` (opaque access tokens and refresh tokens)."""
        resp = self.http.post(
            self.discovery["revocation_endpoint"], data={"token": token}, auth=(TEST_CLIENT_ID, TEST_CLIENT_SECRET)
        )
        _json_or_raise(resp)

    def userinfo(self, token: str) -> dict[str, Any]:
        """GET userinfo with ``token`` (only tokens without resource and with ``openid`` work)."""
        resp = self.http.get(self.discovery["userinfo_endpoint"], headers={"Authorization": f"Bearer {token}"})
        return dict(_json_or_raise(resp))

    # ---- keys, stats, clients -------------------------------------------------------------------
    def jwks(self) -> dict[str, Any]:
        """The current JWKS (counts as a ``/jwks`` fetch in ``stats()``)."""
        return dict(_json_or_raise(self.http.get(self.discovery["jwks_uri"])))

    def rotate_keys(self, keep_old: bool = False) -> str:
        """Replace the signing key with a new one (new kid); return the new kid.

        ``keep_old=True`` keeps the previous key in the JWKS (old JWTs still verify); otherwise the JWKS
        has only the new key, like Nextcloud's "Regenerate keys". Opaque tokens stay valid either way.
        """
        resp = self.http.post("/__test/rotate-keys", params={"keep_old": "1"} if keep_old else None)
        return str(_json_or_raise(resp)["kid"])

    def stats(self, reset: bool = False) -> dict[str, Any]:
        """Request counters: ``{"requests": {"/jwks": 2, "/token": 5, ...}, "total": 7}``.

        ``/__test/*`` calls are not counted. ``reset=True`` zeroes the counters after reading them.
        """
        return dict(_json_or_raise(self.http.get("/__test/stats", params={"reset": "1"} if reset else None)))

    def register_client(self, **metadata: Any) -> dict[str, Any]:
        """Open RFC 7591 dynamic client registration; returns the registration response (client_id, ...)."""
        metadata.setdefault("redirect_uris", [DEFAULT_REDIRECT_URI])
        return dict(_json_or_raise(self.http.post(self.discovery["registration_endpoint"], json=metadata)))

    def auth_code_flow(
        self,
        client_id: str,
        user: str,
        scope: str | Iterable[str],
        resource: str | None = None,
        redirect_uri: str = DEFAULT_REDIRECT_URI,
        *,
        client_secret: str | None = None,
        opaque: bool = False,
    ) -> dict[str, Any]:
        """Run the real authorization-code + PKCE (S256) flow over HTTP, logging in as ``user``.

        Drives oidc-provider's devInteractions login and consent forms (any login name works) and
        returns the token response. ``client_secret`` is needed for confidential clients
        (Basic auth); public clients send only ``client_id``.
        """
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        query = {
            "client_id": client_id,
            "response_type": "code",
            "redirect_uri": redirect_uri,
            "scope": _scope_str(scope),
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "state": secrets.token_urlsafe(8),
        }
        if resource is not None:
            query["resource"] = resource
        # own client: the flow needs its own cookie jar and must see every redirect
        with httpx.Client(base_url=self.issuer, follow_redirects=False, timeout=10.0) as browser:
            resp = browser.get(self.discovery["authorization_endpoint"], params=query)
            for _ in range(10):
                if resp.status_code == 200 and "<form" in resp.text:
                    # login page has a "login" field; otherwise it is the consent page
                    prompt = "login" if 'name="login"' in resp.text else "consent"
                    resp = browser.post(str(resp.url), data={"prompt": prompt, "login": user, "password": "x"})
                    continue
                location = resp.headers.get("location")
                if location is None:
                    raise IdPError(f"auth code flow stuck at {resp.url} ({resp.status_code}): {resp.text[:500]}")
                if location.startswith(redirect_uri):
                    break
                resp = browser.get(urllib.parse.urljoin(str(resp.url), location))
            else:
                raise IdPError("auth code flow did not reach the redirect_uri")
        params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))
        if "code" not in params:
            raise IdPError(f"authorization failed: {params}", body=params)
        data = {
            "grant_type": "authorization_code",
            "code": params["code"],
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        }
        if resource is not None:
            data["resource"] = resource
        if opaque:
            data["token_format"] = "opaque"
        return self.post_token(data, client_id=client_id, client_secret=client_secret)
