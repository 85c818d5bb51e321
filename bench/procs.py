"""Process management for the benchmark: the IdP, the sandbox, ncmcp servers and the floor server,
each in its own process on 127.0.0.1 with an ephemeral port, stopped by PID."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from ncmcp.testing.sandbox.server import SandboxProcess

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
TEST_CLIENT_ID = "test-client"
TEST_CLIENT_SECRET = "test-secret"


def free_port() -> int:
    """An ephemeral port that was free a moment ago (the child binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Server:
    """One server process we started. ``stop()`` ends exactly this PID."""

    name: str
    url: str
    proc: subprocess.Popen[bytes]
    spawned_at: float  # time.perf_counter() just before Popen
    log: Path
    _ps: psutil.Process | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def rss(self) -> int:
        if self._ps is None:
            self._ps = psutil.Process(self.pid)
        return int(self._ps.memory_info().rss)

    def wait_port(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not port_open(self.port):
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not open port {self.port} within {timeout:.0f} s")
            time.sleep(0.005)

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # uvicorn shuts down cleanly (and cProfile can dump)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Processes:
    """Everything started during one benchmark run; ``close()`` stops them all, newest first."""

    def __init__(self) -> None:
        self.started: list[Server] = []
        self.logdir = Path(tempfile.mkdtemp(prefix="ncmcp-bench-"))  # server logs, sandbox data, profiles
        self.keep_logs = False
        self._stoppers: list[Callable[[], None]] = []

    def on_close(self, stop: Callable[[], None]) -> None:
        self._stoppers.append(stop)

    def spawn(self, name: str, cmd: list[str], env: dict[str, str], port: int) -> Server:
        log = self.logdir / f"{name}-{len(self.started)}.log"
        with open(log, "wb") as out:
            spawned = time.perf_counter()
            proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    cwd=ROOT)
        server = Server(name, f"http://127.0.0.1:{port}", proc, spawned, log)
        self.started.append(server)
        return server

    def ncmcp(self, sandbox_url: str, *, user: str | None = None, password: str | None = None,
              issuer: str | None = None, extra_env: dict[str, str] | None = None, profile: Path | None = None) -> Server:
        """``ncmcp serve`` via its CLI: Basic mode with ``user``/``password``, OAuth mode with ``issuer``."""
        port = free_port()
        env = _clean_env()
        env.update({"NEXTCLOUD_HOST": sandbox_url, "NEXTCLOUD_MCP_LOG_LEVEL": "warning"})
        args = ["serve", "--port", str(port)]
        if issuer:
            args.append("--oauth")
            env.update({
                "NEXTCLOUD_MCP_SERVER_URL": f"http://127.0.0.1:{port}",
                "NEXTCLOUD_PUBLIC_ISSUER_URL": issuer,
                "NEXTCLOUD_OIDC_CLIENT_ID": TEST_CLIENT_ID,
                "NEXTCLOUD_OIDC_CLIENT_SECRET": TEST_CLIENT_SECRET,
            })
        else:
            assert user and password
            env.update({"NEXTCLOUD_USERNAME": user, "NEXTCLOUD_PASSWORD": password})
        env.update(extra_env or {})
        if profile is not None:
            cmd = [str(VENV_BIN / "python"), str(ROOT / "bench" / "profiled.py"), str(profile), *args]
        else:
            cmd = [str(VENV_BIN / "ncmcp"), *args]
        return self.spawn("ncmcp-oauth" if issuer else "ncmcp-basic", cmd, env, port)

    def floor(self, sandbox_url: str, user: str, password: str, profile: Path | None = None) -> Server:
        """The bare low-level SDK server (``bench/floor_server.py``)."""
        port = free_port()
        env = _clean_env()
        env.update({"FLOOR_NEXTCLOUD": sandbox_url, "FLOOR_USER": user, "FLOOR_PASSWORD": password})
        script = [str(ROOT / "bench" / "floor_server.py"), "--port", str(port)]
        if profile is not None:
            script = [str(ROOT / "bench" / "profiled.py"), str(profile), "--floor", *script[1:]]
        return self.spawn("floor", [str(VENV_BIN / "python"), *script], env, port)

    def close(self) -> None:
        for server in reversed(self.started):
            server.stop()
        for stop in reversed(self._stoppers):
            try:
                stop()
            except Exception as exc:  # keep stopping the others
                print(f"warning: stopping a helper failed: {exc}", file=sys.stderr)
        if not self.keep_logs:
            shutil.rmtree(self.logdir, ignore_errors=True)


def _clean_env() -> dict[str, str]:
    """Our environment without any NEXTCLOUD_* setting the caller's shell might carry."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEXTCLOUD_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


class RssSampler:
    """Samples a process's RSS every ``interval`` seconds in a thread; ``peak`` is the highest seen."""

    def __init__(self, pid: int, interval: float = 0.005) -> None:
        self._ps = psutil.Process(pid)
        self._interval = interval
        self._stop = threading.Event()
        self.peak = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._ps.memory_info().rss)
            self._stop.wait(self._interval)

    def __enter__(self) -> RssSampler:
        self.peak = self._ps.memory_info().rss
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._ps.memory_info().rss)


BenchSandbox = SandboxProcess  # the test kit's sandbox process, unchanged
