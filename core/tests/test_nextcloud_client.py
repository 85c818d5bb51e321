"""Error mapping and retries of the Nextcloud HTTP layer (pytest-httpx: statuses on demand)."""

from __future__ import annotations

import time

import httpx
import pytest
from pytest_httpx import HTTPXMock

from ncmcp.errors import (
    Conflict,
    Locked,
    Maintenance,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
    RateLimited,
    UpstreamAuthFailed,
    UpstreamError,
    UpstreamTimeout,
)
from ncmcp.nextcloud.client import NextcloudPool, RetryPolicy, retry_after_seconds

pytestmark = pytest.mark.anyio
BASE = "http://nc.test"
SABRE = b'<?xml version="1.0"?><d:error xmlns:d="DAV:" xmlns:s="http://sabredav.org/ns"><s:exception>X</s:exception><s:message>File is locked</s:message></d:error>'


@pytest.fixture
async def client():
    pool = NextcloudPool(BASE, retry=RetryPolicy(attempts=3, max_wait=1.0, default_wait=0.01))
    yield pool.bind("Basic eDp5")
    await pool.aclose()


@pytest.mark.parametrize("status, error, extra", [
    (401, UpstreamAuthFailed, {}),
    (403, PermissionDenied, {}),
    (404, NotFound, {}),
    (412, Conflict, {"headers": {"ETag": '"abc"'}}),
    (423, Locked, {"content": SABRE, "headers": {"Content-Type": "application/xml"}}),
    (507, QuotaExceeded, {}),
    (500, UpstreamError, {}),
])
async def test_status_is_mapped_to_a_clear_error(client, httpx_mock: HTTPXMock, status, error, extra) -> None:
    httpx_mock.add_response(url=f"{BASE}/remote.php/dav/files/u/a.txt", method="PUT", status_code=status, **extra)
    with pytest.raises(error) as info:
        await client.request("PUT", "/remote.php/dav/files/u/a.txt", content=b"x")
    if status == 412:
        assert info.value.current_etag == '"abc"'
    if status == 423:
        assert "File is locked" in info.value.message


async def test_idempotent_request_retries_429_honouring_retry_after(client, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{BASE}/status.php", status_code=429, headers={"Retry-After": "0"})
    httpx_mock.add_response(url=f"{BASE}/status.php", json={"ok": True})
    response = await client.request("GET", "/status.php")
    assert response.json() == {"ok": True}
    assert len(httpx_mock.get_requests()) == 2


async def test_retry_after_longer_than_the_cap_is_not_waited_for(client, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{BASE}/status.php", status_code=429, headers={"Retry-After": "3600"})
    started = time.monotonic()
    with pytest.raises(RateLimited):
        await client.request("GET", "/status.php")
    assert time.monotonic() - started < 1 and len(httpx_mock.get_requests()) == 1


async def test_writes_are_never_retried(client, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{BASE}/index.php/apps/notes/api/v1/notes", method="POST", status_code=503,
                            headers={"Retry-After": "0"})
    with pytest.raises(UpstreamError):
        await client.request("POST", "/index.php/apps/notes/api/v1/notes", json_body={})
    assert len(httpx_mock.get_requests()) == 1


async def test_maintenance_mode(client, httpx_mock: HTTPXMock) -> None:
    for _ in range(3):
        httpx_mock.add_response(url=f"{BASE}/ocs/v2.php/cloud/user?format=json", status_code=503,
                                headers={"X-Nextcloud-Maintenance-Mode": "1", "Retry-After": "0"})
    with pytest.raises(Maintenance):
        await client.ocs("/ocs/v2.php/cloud/user")
    assert len(httpx_mock.get_requests()) == 3  # bounded


async def test_timeout_and_connection_errors(client, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_exception(httpx.ReadTimeout("slow"), url=f"{BASE}/a")
    with pytest.raises(UpstreamTimeout):
        await client.request("POST", "/a")
    httpx_mock.add_exception(httpx.ConnectError("refused"), url=f"{BASE}/b")
    with pytest.raises(UpstreamError, match="unreachable"):
        await client.request("POST", "/b")


async def test_ocs_header_and_no_cookie_persistence(client, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{BASE}/ocs/v2.php/cloud/user?format=json", json={"ocs": {"data": {"id": "u"}}},
                            headers={"Set-Cookie": "nc_session=secret; Path=/"})
    httpx_mock.add_response(url=f"{BASE}/ocs/v2.php/cloud/user?format=json", json={"ocs": {"data": {"id": "u"}}})
    assert (await client.ocs("/ocs/v2.php/cloud/user"))["id"] == "u"
    await client.ocs("/ocs/v2.php/cloud/user")
    first, second = httpx_mock.get_requests()
    assert first.headers["OCS-APIRequest"] == "true" and first.headers["Authorization"] == "Basic eDp5"
    assert "cookie" not in second.headers  # a Nextcloud session must never be reused


def test_retry_after_parsing() -> None:
    assert retry_after_seconds("7", 1.0) == 7.0
    assert retry_after_seconds(None, 1.5) == 1.5
    assert retry_after_seconds("garbage", 2.0) == 2.0
    assert 0 <= retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", 1.0) <= 0.001


async def test_install_below_the_web_root(httpx_mock: HTTPXMock) -> None:
    """Paths relative to the base URL and origin-absolute DAV hrefs both reach the same URL."""
    pool = NextcloudPool("http://nc.test/nextcloud")
    client = pool.bind("Basic eDp5")
    httpx_mock.add_response(url="http://nc.test/nextcloud/remote.php/dav/files/u/a.txt", is_reusable=True)
    await client.request("GET", "/remote.php/dav/files/u/a.txt")
    await client.request("GET", "/nextcloud/remote.php/dav/files/u/a.txt")
    httpx_mock.add_response(url="http://nc.test/nextcloud/ocs/v2.php/cloud/user?format=json", json={"ocs": {"data": {"id": "u"}}})
    assert (await client.ocs("/ocs/v2.php/cloud/user"))["id"] == "u"
    assert httpx_mock.get_requests()[-1].headers["OCS-APIRequest"] == "true"
    await pool.aclose()


async def test_a_dropped_keep_alive_connection_is_retried_for_reads_only(client, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_exception(httpx.RemoteProtocolError("Server disconnected"), url=f"{BASE}/r")
    httpx_mock.add_response(url=f"{BASE}/r", json={"ok": 1})
    assert (await client.request("PROPFIND", "/r")).json() == {"ok": 1}
    httpx_mock.add_exception(httpx.RemoteProtocolError("Server disconnected"), url=f"{BASE}/w")
    with pytest.raises(UpstreamError):
        await client.request("PUT", "/w", content=b"x")
    assert [r.method for r in httpx_mock.get_requests()] == ["PROPFIND", "PROPFIND", "PUT"]


async def test_header_values_cannot_inject_lines(client, httpx_mock: HTTPXMock) -> None:
    from ncmcp.errors import InvalidArgument

    for bad in ('"abc"\r\nX-Evil: 1', "é"):
        with pytest.raises(InvalidArgument):
            await client.request("PUT", "/x", headers={"If-Match": bad}, content=b"")
    assert httpx_mock.get_requests() == []


async def test_a_timed_out_write_says_it_may_have_been_applied(client, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_exception(httpx.ReadTimeout("slow"), url=f"{BASE}/w")
    with pytest.raises(UpstreamTimeout, match="may still have been applied"):
        await client.request("POST", "/w")
