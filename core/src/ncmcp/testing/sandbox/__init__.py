"""A Nextcloud-compatible sandbox for trying ncmcp and for tests.

Notes API v1 and OCS are in-memory fakes that follow the published API; CalDAV/CardDAV come from
Radicale (or Xandikos) and WebDAV files from WsgiDAV, behind one front that authenticates like
Nextcloud (Basic app passwords, bearer tokens of a configured issuer), counts requests and injects
faults on request.
"""

from ncmcp.testing.sandbox.server import DEMO_APP_PASSWORD, DEMO_USER, SandboxProcess, build_sandbox, run_sandbox

__all__ = ["DEMO_APP_PASSWORD", "DEMO_USER", "SandboxProcess", "build_sandbox", "run_sandbox"]
