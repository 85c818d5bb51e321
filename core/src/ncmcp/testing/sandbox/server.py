"""Running the sandbox: ``ncmcp sandbox`` and :class:`SandboxProcess` for tests and benchmarks.

The sandbox runs in its own process (uvicorn), like a real Nextcloud would, and announces its URL
as one JSON line on stdout once it is listening.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import httpx

DEMO_USER = "demo"
DEMO_APP_PASSWORD = "demo-app-password"


def build_sandbox(*, issuer: str | None, data_dir: Path, dav_backend: str = "radicale", dav: bool = True) -> Any:
    from ncmcp.testing.sandbox.front import Sandbox
    from ncmcp.testing.sandbox.state import SandboxState

    caldav = webdav = None
    if dav:
        try:
            from ncmcp.testing.sandbox.caldav import build_caldav_app

            caldav = build_caldav_app(data_dir / "dav", backend=dav_backend)  # type: ignore[arg-type]
        except ImportError:
            caldav = None
        try:
            from ncmcp.testing.sandbox.webdav import build_webdav_app

            webdav = build_webdav_app(data_dir / "files")
        except ImportError:
            webdav = None
    return Sandbox(SandboxState(), issuer=issuer, caldav=caldav, webdav=webdav)


def run_sandbox(*, port: int, demo_data: bool, issuer: str | None, data_dir: str | None, dav_backend: str = "radicale",
                announce: bool = False) -> int:
    import anyio
    import uvicorn

    root = Path(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix="ncmcp-sandbox-"))
    sandbox = build_sandbox(issuer=issuer, data_dir=root, dav_backend=dav_backend)
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted connections only then; without it
    # every response waits for the peer's delayed ACK (~40 ms per request on loopback).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(128)  # accept connections (queued) from the moment the URL is announced
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    if demo_data:
        sandbox.state.add_user(DEMO_USER, DEMO_APP_PASSWORD)
    config = uvicorn.Config(sandbox, log_level="warning", access_log=False, lifespan="off", timeout_keep_alive=30)
    server = uvicorn.Server(config)

    async def main() -> None:
        if demo_data:
            await sandbox.provision(DEMO_USER)
            await _demo_notes(sandbox)
        if announce:
            print(json.dumps({"url": url, "data_dir": str(root)}), flush=True)
        else:
            print(f"Nextcloud sandbox at {url}  (data in {root})", file=sys.stderr)
            if demo_data:
                print(f"  user {DEMO_USER!r}, app password {DEMO_APP_PASSWORD!r}", file=sys.stderr)
        await server.serve(sockets=[sock])

    # uvicorn re-raises SIGTERM after its graceful shutdown; turning it into SystemExit lets the
    # clean-up below run instead of the process dying on the signal.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        anyio.run(main)
    finally:
        if not data_dir:  # a temporary folder of our own: do not leave the demo data behind
            shutil.rmtree(root, ignore_errors=True)
    return 0


async def _demo_notes(sandbox: Any) -> None:
    from ncmcp.testing.sandbox.notes import Note, _ids

    notes = sandbox.store.of(DEMO_USER)
    for title, category, content in [
        ("Welcome", "", "# Welcome\nThis note lives in the ncmcp sandbox."),
        ("Groceries", "Home", "- milk\n- bread\n- coffee"),
        ("Project plan", "Work", "Milestones:\n1. Prototype\n2. Review"),
    ]:
        note = Note(id=next(_ids), title=title, content=content, category=category, favorite=False, modified=1_700_000_000)
        notes[note.id] = note


class SandboxProcess:
    """Start the sandbox in a child process; a context manager for session fixtures and benchmarks."""

    def __init__(self, *, issuer: str | None = None, data_dir: Path | None = None, dav_backend: str = "radicale",
                 port: int = 0) -> None:
        self.issuer = issuer
        self.port = port  # 0: an ephemeral port
        self.data_dir = data_dir
        self.dav_backend = dav_backend
        self.url = ""
        self._proc: subprocess.Popen[str] | None = None
        self._stderr: list[str] = []
        self._own_dir: Path | None = None

    def __enter__(self) -> SandboxProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def start(self, timeout: float = 30.0) -> SandboxProcess:
        if self.data_dir is None:
            self._own_dir = Path(tempfile.mkdtemp(prefix="ncmcp-sandbox-"))  # removed again by stop()
        data_dir = self.data_dir or self._own_dir
        cmd = [sys.executable, "-m", "ncmcp.testing.sandbox.server", "--port", str(self.port), "--data-dir", str(data_dir),
               "--dav-backend", self.dav_backend, "--exit-with-stdin"]
        if self.issuer:
            cmd += ["--issuer", self.issuer]
        # stdin stays open: the child exits when it closes, so a killed test run leaves no orphan.
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                      env={**os.environ, "PYTHONUNBUFFERED": "1"})
        threading.Thread(target=self._drain, daemon=True).start()
        line = _readline(self._proc, timeout)
        if not line:
            self.stop()
            raise RuntimeError("sandbox failed to start:\n" + "".join(self._stderr[-40:]))
        self.url = json.loads(line)["url"]
        return self

    def _drain(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        for line in self._proc.stderr:
            self._stderr.append(line)
            del self._stderr[:-200]

    def stderr_text(self) -> str:
        return "".join(self._stderr)

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
        if self._own_dir is not None:
            shutil.rmtree(self._own_dir, ignore_errors=True)
            self._own_dir = None

    # --- control API --------------------------------------------------------------------------

    def add_user(self, user_id: str, app_password: str | None = None) -> str:
        body = {"user_id": user_id, **({"app_password": app_password} if app_password else {})}
        return str(httpx.post(f"{self.url}/__sandbox/users", json=body, timeout=30).json()["app_password"])

    def stats(self, reset: bool = False) -> dict[str, Any]:
        method = "DELETE" if reset else "GET"
        return httpx.request(method, f"{self.url}/__sandbox/stats", timeout=10).json()

    def reset_stats(self) -> None:
        self.stats(reset=True)

    def add_fault(self, **fault: Any) -> None:
        httpx.post(f"{self.url}/__sandbox/faults", json=fault, timeout=10).raise_for_status()

    def clear_faults(self) -> None:
        httpx.delete(f"{self.url}/__sandbox/faults", timeout=10).raise_for_status()

    def set_apps(self, apps: dict[str, Any]) -> None:
        httpx.put(f"{self.url}/__sandbox/apps", json=apps, timeout=10).raise_for_status()


def _readline(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stdout is not None
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout)
    return result[0] if result else ""


def _watch_stdin() -> None:
    """Exit when the parent closes our stdin (it died or stopped us)."""
    try:
        sys.stdin.read()
    finally:
        os._exit(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ncmcp.testing.sandbox.server")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--issuer")
    parser.add_argument("--data-dir")
    parser.add_argument("--dav-backend", default="radicale")
    parser.add_argument("--demo-data", action="store_true")
    parser.add_argument("--exit-with-stdin", action="store_true", help="exit when stdin closes (used by SandboxProcess)")
    args = parser.parse_args(argv)
    if args.exit_with_stdin:
        threading.Thread(target=_watch_stdin, daemon=True).start()
    from ncmcp.logs import configure_logging

    configure_logging("console", "warning")
    return run_sandbox(port=args.port, demo_data=args.demo_data, issuer=args.issuer, data_dir=args.data_dir,
                       dav_backend=args.dav_backend, announce=True)


if __name__ == "__main__":
    raise SystemExit(main())
