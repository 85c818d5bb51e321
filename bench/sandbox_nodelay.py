"""Run the sandbox (``python -m ncmcp.testing.sandbox.server``) with TCP_NODELAY on its connections.

The sandbox binds its listening socket as ``socket.socket(AF_INET, SOCK_STREAM)``: protocol 0, not
``IPPROTO_TCP``, so asyncio's ``_set_nodelay`` skips the accepted sockets. Nagle's algorithm then
holds the response body until the client's delayed ACK of the headers (about 40 ms on Linux), and
every keep-alive request to the sandbox takes about 44 ms instead of about 1 ms. A real Nextcloud
behind nginx or Apache sets TCP_NODELAY, so the benchmark applies it here; once the sandbox creates
its socket with ``IPPROTO_TCP`` this shim changes nothing.
"""

import asyncio.base_events
import socket
import sys


def _set_nodelay(sock: socket.socket) -> None:
    if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


asyncio.base_events._set_nodelay = _set_nodelay  # type: ignore[attr-defined]

if __name__ == "__main__":
    from ncmcp.testing.sandbox.server import main

    sys.exit(main())
