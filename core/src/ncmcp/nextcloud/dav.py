"""WebDAV requests and CalDAV/CardDAV discovery shared by the DAV plugins.

Discovery is never hard-coded: ``/.well-known/<service>`` → ``current-user-principal`` → the home
set; every href is resolved against the server origin and percent-decoding is undone only for
display, while requests reuse the server's own encoded href.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from urllib.parse import urljoin, urlsplit

from ncmcp.errors import NotFound, UpstreamError
from ncmcp.nextcloud import xml
from ncmcp.nextcloud.client import NextcloudClient

XML_HEADERS = {"Content-Type": "application/xml; charset=utf-8"}


async def propfind(client: NextcloudClient, path: str, props: Iterable[str], *, depth: str = "0") -> list[xml.DavResponse]:
    response = await client.request(
        "PROPFIND", path, headers={**XML_HEADERS, "Depth": depth}, content=xml.propfind_body(props)
    )
    return xml.parse_multistatus(response.content, client.base_url)


async def report(client: NextcloudClient, path: str, body: bytes, *, depth: str = "1") -> list[xml.DavResponse]:
    response = await client.request("REPORT", path, headers={**XML_HEADERS, "Depth": depth}, content=body)
    return xml.parse_multistatus(response.content, client.base_url)


def origin_path(client: NextcloudClient, href: str) -> str:
    """An href (absolute URL or path) as a path on the Nextcloud origin."""
    return urlsplit(urljoin(client.base_url + "/", href)).path


DISCOVERY_TTL = 300.0  # homes move only when an admin changes the server; five minutes bounds staleness


async def discover_home(client: NextcloudClient, service: str) -> str:
    """The user's calendar or address-book home (path), found by RFC 6764/5397 discovery.

    Cached per user and service for a few minutes on the shared pool, so a tool call costs only
    its own requests (discovery is three round trips).

    :param service: ``"caldav"`` or ``"carddav"``.
    """
    key = (client.identity, service)
    cached = client.pool_cache.get(key)
    if cached is not None and cached[0] > time.monotonic():
        return str(cached[1])
    home = await _discover_home(client, service)
    client.pool_cache[key] = (time.monotonic() + DISCOVERY_TTL, home)
    return home


async def _discover_home(client: NextcloudClient, service: str) -> str:
    home_prop = {"caldav": "c:calendar-home-set", "carddav": "card:addressbook-home-set"}[service]
    start = "/remote.php/dav/"
    well_known = await client.request("PROPFIND", f"/.well-known/{service}", headers={**XML_HEADERS, "Depth": "0"},
                                      content=xml.propfind_body(["d:current-user-principal"]), ok=(301, 302, 307, 308, 207))
    if well_known.status_code in (301, 302, 307, 308) and well_known.headers.get("Location"):
        start = origin_path(client, well_known.headers["Location"])
    found = await propfind(client, start, ["d:current-user-principal"])
    principal = next((xml.href_text(r.props.get(xml.qname("d:current-user-principal"))) for r in found if r.props), None)
    if not principal:
        raise UpstreamError(f"{service} discovery failed: no current-user-principal at {start}")
    found = await propfind(client, origin_path(client, principal), [home_prop])
    home = next((xml.href_text(r.props.get(xml.qname(home_prop))) for r in found if r.props), None)
    if not home:
        raise NotFound(f"{service} is not available for this user (no {home_prop})")
    return origin_path(client, home)
