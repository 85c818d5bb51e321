"""The sandbox's WebDAV files service (ncmcp.testing.sandbox.webdav) over real HTTP.

A tiny ASGI shim stands in for the sandbox front: it takes the Basic user name as the
authenticated user, strips ``Authorization`` and any client ``X-Remote-User`` and sets
``X-Remote-User``.  One uvicorn server (ephemeral port, own thread) serves the module;
every test works as its own fresh user.
"""

from __future__ import annotations

import base64
import os
import pathlib
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import quote, unquote

import anyio
import httpx
import pytest
import uvicorn
from ncmcp.testing.sandbox.webdav import WebDavSandbox, build_webdav_app

pytestmark = pytest.mark.anyio

D, OC, NC, S = "{DAV:}", "{http://owncloud.org/ns}", "{http://nextcloud.org/ns}", "{http://sabredav.org/ns}"
NS = 'xmlns:d="DAV:" xmlns:oc="http://owncloud.org/ns" xmlns:nc="http://nextcloud.org/ns"'
MB = 1024 * 1024


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def front_shim(app: Any) -> Any:
    """Stand-in for the sandbox front: Basic user name → X-Remote-User (no password check)."""

    async def shim(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            raw = dict(scope["headers"])
            headers = [(k, v) for k, v in scope["headers"] if k not in (b"authorization", b"x-remote-user")]
            auth = raw.get(b"authorization", b"")
            if auth.startswith(b"Basic "):
                headers.append((b"x-remote-user", base64.b64decode(auth[6:]).split(b":", 1)[0]))
            scope = {**scope, "headers": headers}
        await app(scope, receive, send)

    return shim


class _Server:
    def __init__(self, sandbox: WebDavSandbox) -> None:
        self.sandbox = sandbox
        config = uvicorn.Config(front_shim(sandbox.app), host="127.0.0.1", port=0, log_level="warning",
                                lifespan="off", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[WebDavSandbox, str]]:
    sandbox = build_webdav_app(tmp_path_factory.mktemp("webdav"))
    with _Server(sandbox) as base:
        yield sandbox, base


@pytest.fixture
def sandbox(server: tuple[WebDavSandbox, str]) -> WebDavSandbox:
    return server[0]


@pytest.fixture
def user() -> str:
    return "u" + uuid.uuid4().hex[:10]


@pytest.fixture
async def dav(server: tuple[WebDavSandbox, str], user: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server[1], auth=(user, "app-password"), timeout=30) as client:
        yield client


def files(user: str, rel: str = "") -> str:
    return f"/remote.php/dav/files/{user}/" + quote(rel)


def absolute(client: httpx.AsyncClient, path: str) -> str:
    return str(client.base_url).rstrip("/") + path


def multistatus(response: httpx.Response) -> dict[str, dict[str, ET.Element]]:
    """href (decoded) → {clark name: element} for the 200 propstats of a 207 answer."""
    assert response.status_code == 207, response.text
    out: dict[str, dict[str, ET.Element]] = {}
    for resp in ET.fromstring(response.content).findall(f"{D}response"):
        props: dict[str, ET.Element] = {}
        for propstat in resp.findall(f"{D}propstat"):
            if "200" in (propstat.findtext(f"{D}status") or ""):
                props.update({p.tag: p for p in propstat.find(f"{D}prop")})
        out[unquote(resp.findtext(f"{D}href") or "")] = props
    return out


def raw_hrefs(response: httpx.Response) -> list[str]:
    return [h.text or "" for h in ET.fromstring(response.content).iter(f"{D}href")]


def text(props: dict[str, ET.Element], name: str) -> str:
    return props[name].text or ""


def propfind_body(*names: str) -> str:
    return f"<d:propfind {NS}><d:prop>{''.join(f'<{n}/>' for n in names)}</d:prop></d:propfind>"


async def propfind(client: httpx.AsyncClient, path: str, *names: str, depth: str = "0") -> dict[str, Any]:
    body = propfind_body(*names) if names else ""
    return multistatus(await client.request("PROPFIND", path, headers={"Depth": depth}, content=body))


async def props_of(client: httpx.AsyncClient, path: str, *names: str) -> dict[str, ET.Element]:
    result = await propfind(client, path, *names)
    return next(iter(result.values()))


def sabre(response: httpx.Response) -> tuple[str, str]:
    root = ET.fromstring(response.content)
    assert root.tag == f"{D}error", response.text
    return root.findtext(f"{S}exception") or "", root.findtext(f"{S}message") or ""


def search_body(user: str, where: str, *, scope: str = "", depth: str = "infinity", select: str = "<d:displayname/>",
                order: str = "", limit: str = "") -> str:
    return (f'<d:searchrequest {NS}><d:basicsearch><d:select><d:prop>{select}</d:prop></d:select>'
            f'<d:from><d:scope><d:href>/files/{user}{scope}</d:href><d:depth>{depth}</d:depth></d:scope></d:from>'
            f'<d:where>{where}</d:where>{order}{limit}</d:basicsearch></d:searchrequest>')


async def search(client: httpx.AsyncClient, body: str) -> dict[str, dict[str, ET.Element]]:
    response = await client.request("SEARCH", "/remote.php/dav/", content=body,
                                    headers={"Content-Type": "text/xml"})
    return multistatus(response)


def like(prop: str, value: str) -> str:
    return f"<d:like><d:prop><{prop}/></d:prop><d:literal>{value}</d:literal></d:like>"


def cmp(op: str, prop: str, value: str) -> str:
    return f"<d:{op}><d:prop><{prop}/></d:prop><d:literal>{value}</d:literal></d:{op}>"


async def put(client: httpx.AsyncClient, user: str, rel: str, data: bytes, **headers: str) -> httpx.Response:
    response = await client.put(files(user, rel), content=data, headers=headers)
    assert response.status_code in (201, 204), response.text
    return response


# -- basics ---------------------------------------------------------------------------------------
async def test_unauthenticated_request_gets_401(server: tuple[WebDavSandbox, str]) -> None:
    async with httpx.AsyncClient(base_url=server[1]) as client:
        response = await client.request("PROPFIND", "/remote.php/dav/files/alice/")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Basic")
    assert sabre(response)[0] == "Sabre\\DAV\\Exception\\NotAuthenticated"


async def test_bare_propfind_returns_nextcloud_default_props(dav: httpx.AsyncClient, user: str) -> None:
    await put(dav, user, "a.txt", b"hello")
    assert (await dav.request("MKCOL", files(user, "dir"))).status_code == 201
    response = await dav.request("PROPFIND", files(user), headers={"Depth": "1"})
    assert b'xmlns:d="DAV:"' in response.content and b"<d:multistatus" in response.content
    listing = multistatus(response)
    home, a, folder = f"/remote.php/dav/files/{user}/", files(user, "a.txt"), files(user, "dir") + "/"
    assert set(listing) == {home, a, folder}
    assert set(listing[a]) == {f"{D}resourcetype", f"{D}getlastmodified", f"{D}getcontentlength",
                               f"{D}getcontenttype", f"{D}getetag"}
    assert set(listing[folder]) == {f"{D}resourcetype", f"{D}getlastmodified", f"{D}getetag",
                                    f"{D}quota-used-bytes", f"{D}quota-available-bytes"}
    assert text(listing[a], f"{D}getetag").startswith('"')
    assert listing[folder][f"{D}resourcetype"].find(f"{D}collection") is not None
    # Depth: infinity is answered as Depth: 1 (Nextcloud's default)
    await put(dav, user, "dir/deep.txt", b"x")
    deep = await propfind(dav, files(user), depth="infinity")
    assert files(user, "dir/deep.txt") not in deep and folder in deep


async def test_put_get_and_oc_headers(dav: httpx.AsyncClient, user: str) -> None:
    created = await put(dav, user, "notes.md", b"# hi")
    assert created.status_code == 201 and created.content == b""
    etag, fileid = created.headers["oc-etag"], created.headers["oc-fileid"]
    assert etag == created.headers["etag"] and etag.startswith('"') and etag.endswith('"')
    props = await props_of(dav, files(user, "notes.md"), "oc:fileid", "oc:id", "d:getetag")
    assert text(props, f"{OC}id") == fileid and fileid == f"{int(text(props, f'{OC}fileid')):08d}ocsandbox01"
    assert text(props, f"{D}getetag") == etag
    got = await dav.get(files(user, "notes.md"))
    assert got.content == b"# hi" and got.headers["etag"] == etag and got.headers["content-type"] == "text/markdown"
    head = await dav.head(files(user, "notes.md"))
    assert head.status_code == 200 and head.headers["content-length"] == "4" and head.content == b""
    assert (await dav.head(files(user, "nothing.md"))).status_code == 404
    folder = await dav.get(files(user))
    assert folder.status_code == 501 and sabre(folder)[0] == "Sabre\\DAV\\Exception\\NotImplemented"
    options = await dav.options(files(user, "notes.md"))
    assert options.headers["dav"] == "1,2" and "PROPFIND" in options.headers["allow"]
    # same size, same second: the ETag still changes; the file id does not
    again = await put(dav, user, "notes.md", b"# ho")
    assert again.status_code == 204 and again.headers["oc-etag"] != etag and again.headers["oc-fileid"] == fileid
    third = await put(dav, user, "notes.md", b"# hu")
    assert len({etag, again.headers["oc-etag"], third.headers["oc-etag"]}) == 3
    assert (await dav.get(files(user, "notes.md"))).content == b"# hu"


async def test_x_oc_mtime_is_accepted(dav: httpx.AsyncClient, user: str) -> None:
    response = await put(dav, user, "old.txt", b"old", **{"X-OC-MTime": "1700000000"})
    assert response.headers["x-oc-mtime"] == "accepted"
    props = await props_of(dav, files(user, "old.txt"), "d:getlastmodified")
    assert text(props, f"{D}getlastmodified") == "Tue, 14 Nov 2023 22:13:20 GMT"
    bad = await dav.put(files(user, "old.txt"), content=b"x", headers={"X-OC-MTime": "yesterday"})
    assert bad.status_code == 400
    touch = (f"<d:propertyupdate {NS}><d:set><d:prop><d:lastmodified>1600000000</d:lastmodified></d:prop></d:set>"
             "</d:propertyupdate>")
    assert "200 OK" in (await dav.request("PROPPATCH", files(user, "old.txt"), content=touch)).text
    props = await props_of(dav, files(user, "old.txt"), "d:getlastmodified")
    assert text(props, f"{D}getlastmodified") == "Sun, 13 Sep 2020 12:26:40 GMT"


async def test_provisioning_and_direct_disk_writes(dav: httpx.AsyncClient, user: str, sandbox: WebDavSandbox) -> None:
    sandbox.provision_user(user)
    sandbox.provision_user(user)  # idempotent
    home = sandbox.root / user
    assert all((home / sub).is_dir() for sub in ("files", "trash", "versions", "uploads"))
    await dav.request("MKCOL", files(user, "notes"))
    (sandbox.files_dir(user) / "notes" / "n.txt").write_text("written by another fake")
    before = text(await props_of(dav, files(user), "d:getetag"), f"{D}getetag")
    (sandbox.files_dir(user) / "notes" / "n.txt").write_text("changed on disk")
    sandbox.notify_changed(user, "notes/n.txt")
    assert text(await props_of(dav, files(user), "d:getetag"), f"{D}getetag") != before
    assert (await dav.get(files(user, "notes/n.txt"))).text == "changed on disk"
    assert sandbox.file_id(user, "notes/n.txt") == (sandbox.files_dir(user) / "notes" / "n.txt").stat().st_ino


async def test_folder_etags_propagate_to_ancestors(dav: httpx.AsyncClient, user: str) -> None:
    for folder in ("a", "a/b", "a/b/c", "other"):
        assert (await dav.request("MKCOL", files(user, folder))).status_code == 201
    await put(dav, user, "a/b/c/f.txt", b"1")

    async def etags() -> dict[str, str]:
        out = {}
        for rel in ("", "a", "a/b", "a/b/c", "other"):
            out[rel] = text(await props_of(dav, files(user, rel), "d:getetag"), f"{D}getetag")
        return out

    before = await etags()
    await put(dav, user, "a/b/c/f.txt", b"2")  # content change only: no directory entry changes
    after = await etags()
    assert all(after[k] != before[k] for k in ("", "a", "a/b", "a/b/c"))
    assert after["other"] == before["other"]


async def test_live_properties(dav: httpx.AsyncClient, user: str, sandbox: WebDavSandbox) -> None:
    await dav.request("MKCOL", files(user, "pics"))
    await put(dav, user, "pics/cat.png", b"\x89PNG" + b"0" * 96)
    await put(dav, user, "pics/data.bin", b"12345")
    await put(dav, user, "doc.pdf", b"%PDF")
    names = ("oc:fileid", "oc:id", "oc:permissions", "oc:size", "oc:favorite", "nc:has-preview",
             "d:getcontenttype", "d:quota-used-bytes", "d:quota-available-bytes", "oc:owner-id",
             "nc:contained-file-count", "oc:checksums")
    listing = await propfind(dav, files(user, "pics"), *names, depth="1")
    folder, png, binary = (listing[files(user, "pics") + "/"], listing[files(user, "pics/cat.png")],
                           listing[files(user, "pics/data.bin")])
    assert text(folder, f"{OC}permissions") == "RGDNVCK" and text(png, f"{OC}permissions") == "RGDNVW"
    assert text(folder, f"{OC}size") == "105" and text(png, f"{OC}size") == "100"
    assert text(folder, f"{D}getcontenttype") == "httpd/unix-directory"
    assert text(png, f"{D}getcontenttype") == "image/png"
    assert text(binary, f"{D}getcontenttype") == "application/octet-stream"
    assert text(png, f"{NC}has-preview") == "true" and text(binary, f"{NC}has-preview") == "false"
    assert text(png, f"{OC}favorite") == "0" and text(png, f"{OC}owner-id") == user
    assert int(text(png, f"{OC}fileid")) == sandbox.file_id(user, "pics/cat.png")
    assert text(folder, f"{NC}contained-file-count") == "2"
    assert text(folder, f"{D}quota-used-bytes") == "105" and text(folder, f"{D}quota-available-bytes") == "-3"
    assert f"{D}quota-used-bytes" not in png and f"{OC}checksums" not in png  # 404 propstat
    names_only = await dav.request("PROPFIND", files(user, "pics/cat.png"), headers={"Depth": "0"},
                                   content=f"<d:propfind {NS}><d:propname/></d:propfind>")
    offered = next(iter(multistatus(names_only).values()))
    assert {f"{OC}fileid", f"{OC}favorite", f"{NC}has-preview", f"{D}getetag"} <= set(offered)
    pdf = await props_of(dav, files(user, "doc.pdf"), "d:getcontenttype")
    assert text(pdf, f"{D}getcontenttype") == "application/pdf"


async def test_favorite_proppatch_persists_and_survives_move(dav: httpx.AsyncClient, user: str,
                                                              sandbox: WebDavSandbox) -> None:
    await put(dav, user, "fav.txt", b"f")
    fileid = sandbox.file_id(user, "fav.txt")
    body = (f'<d:propertyupdate {NS}><d:set><d:prop><oc:favorite>1</oc:favorite>'
            f'<oc:color>red</oc:color></d:prop></d:set></d:propertyupdate>')
    patched = await dav.request("PROPPATCH", files(user, "fav.txt"), content=body)
    assert patched.status_code == 207 and "200 OK" in patched.text
    moved = await dav.request("MOVE", files(user, "fav.txt"),
                              headers={"Destination": absolute(dav, files(user, "moved.txt"))})
    assert moved.status_code == 201
    props = await props_of(dav, files(user, "moved.txt"), "oc:favorite", "oc:fileid", "oc:color")
    assert text(props, f"{OC}favorite") == "1" and int(text(props, f"{OC}fileid")) == fileid
    assert text(props, f"{OC}color") == "red"
    state = (sandbox.root / user / "dav-state.json").read_text()
    assert str(fileid) in state  # persisted on disk
    body = f'<d:propertyupdate {NS}><d:set><d:prop><oc:favorite>0</oc:favorite></d:prop></d:set></d:propertyupdate>'
    await dav.request("PROPPATCH", files(user, "moved.txt"), content=body)
    assert text(await props_of(dav, files(user, "moved.txt"), "oc:favorite"), f"{OC}favorite") == "0"
    readonly = (f'<d:propertyupdate {NS}><d:set><d:prop><oc:fileid>1</oc:fileid></d:prop></d:set>'
                f'</d:propertyupdate>')
    assert "403" in (await dav.request("PROPPATCH", files(user, "moved.txt"), content=readonly)).text


# -- conditional requests and errors ------------------------------------------------------------------
async def test_conditional_requests(dav: httpx.AsyncClient, user: str) -> None:
    first = await put(dav, user, "c.txt", b"0123456789")
    etag = first.headers["etag"]
    exists = await dav.put(files(user, "c.txt"), content=b"x", headers={"If-None-Match": "*"})
    assert exists.status_code == 412
    assert sabre(exists)[0] == "Sabre\\DAV\\Exception\\PreconditionFailed"
    assert (await dav.put(files(user, "new.txt"), content=b"n", headers={"If-None-Match": "*"})).status_code == 201
    assert (await dav.put(files(user, "c.txt"), content=b"x", headers={"If-Match": '"nope"'})).status_code == 412
    assert (await dav.put(files(user, "gone.txt"), content=b"x", headers={"If-Match": etag})).status_code == 412
    ok = await dav.put(files(user, "c.txt"), content=b"0123456789", headers={"If-Match": etag})
    assert ok.status_code == 204
    etag = ok.headers["etag"]
    ranged = await dav.get(files(user, "c.txt"), headers={"Range": "bytes=2-5"})
    assert ranged.status_code == 206 and ranged.content == b"2345"
    assert ranged.headers["content-range"] == "bytes 2-5/10"
    assert (await dav.get(files(user, "c.txt"), headers={"If-None-Match": etag})).status_code == 304
    assert (await dav.delete(files(user, "c.txt"), headers={"If-Match": '"nope"'})).status_code == 412
    assert (await dav.delete(files(user, "c.txt"), headers={"If-Match": etag})).status_code == 204
    assert (await dav.get(files(user, "c.txt"))).status_code == 404


async def test_move_copy_conflicts_and_missing_parents(dav: httpx.AsyncClient, user: str) -> None:
    src = await put(dav, user, "s.txt", b"s")
    await put(dav, user, "t.txt", b"t")
    target = {"Destination": absolute(dav, files(user, "t.txt")), "Overwrite": "F"}
    for method in ("MOVE", "COPY"):
        response = await dav.request(method, files(user, "s.txt"), headers=target)
        assert response.status_code == 412 and "overwrite" in sabre(response)[1]
    # If-Match applies to the source (not the destination)
    overwrite = {"Destination": absolute(dav, files(user, "t.txt")), "If-Match": src.headers["etag"]}
    assert (await dav.request("COPY", files(user, "s.txt"), headers=overwrite)).status_code == 204
    assert (await dav.get(files(user, "t.txt"))).content == b"s"
    # RFC 4918 tagged If on the destination (what clients use to guard the target of a MOVE)
    target_url = absolute(dav, files(user, "t.txt"))
    t_etag = (await dav.head(files(user, "t.txt"))).headers["etag"]
    guarded = {"Destination": target_url, "If": f'<{target_url}> (["stale"])'}
    assert (await dav.request("COPY", files(user, "s.txt"), headers=guarded)).status_code == 412
    guarded["If"] = f"<{target_url}> ([{t_etag}])"
    assert (await dav.request("COPY", files(user, "s.txt"), headers=guarded)).status_code == 204
    missing = await dav.put(files(user, "no/such/x.txt"), content=b"x")
    assert missing.status_code == 409 and sabre(missing)[0] == "Sabre\\DAV\\Exception\\Conflict"
    assert (await dav.request("MKCOL", files(user, "no/such"))).status_code == 409
    assert (await dav.request("MKCOL", files(user, "d"))).status_code == 201
    exists = await dav.request("MKCOL", files(user, "d"))
    assert exists.status_code == 405 and sabre(exists)[1] == "The resource you tried to create already exists"
    into_missing = {"Destination": absolute(dav, files(user, "no/such/s.txt"))}
    assert (await dav.request("MOVE", files(user, "s.txt"), headers=into_missing)).status_code == 409
    assert (await dav.put(files(user, "d"), content=b"x")).status_code == 405


async def test_copy_gives_new_ids_and_copies_folders(dav: httpx.AsyncClient, user: str, sandbox: WebDavSandbox) -> None:
    await dav.request("MKCOL", files(user, "src"))
    await put(dav, user, "src/in.txt", b"inside")
    copied = await dav.request("COPY", files(user, "src"), headers={"Destination": absolute(dav, files(user, "dst"))})
    assert copied.status_code == 201
    assert (await dav.get(files(user, "dst/in.txt"))).content == b"inside"
    assert sandbox.file_id(user, "dst/in.txt") != sandbox.file_id(user, "src/in.txt")
    into_self = await dav.request("MOVE", files(user, "src"),
                                  headers={"Destination": absolute(dav, files(user, "src/sub"))})
    assert into_self.status_code in (403, 409)


async def test_lock_blocks_writes_without_token(dav: httpx.AsyncClient, user: str) -> None:
    await put(dav, user, "locked.txt", b"v1")
    body = ('<d:lockinfo xmlns:d="DAV:"><d:lockscope><d:exclusive/></d:lockscope>'
            '<d:locktype><d:write/></d:locktype><d:owner>test</d:owner></d:lockinfo>')
    locked = await dav.request("LOCK", files(user, "locked.txt"), content=body, headers={"Timeout": "Second-60"})
    assert locked.status_code == 200
    token = locked.headers["lock-token"].strip("<>")
    blocked = await dav.put(files(user, "locked.txt"), content=b"v2")
    assert blocked.status_code == 423 and sabre(blocked)[0] == "Sabre\\DAV\\Exception\\Locked"
    assert (await dav.delete(files(user, "locked.txt"))).status_code == 423
    await dav.request("MKCOL", files(user, "box"))
    await put(dav, user, "box/inner.txt", b"i")
    inner = await dav.request("LOCK", files(user, "box/inner.txt"), content=body)
    assert (await dav.delete(files(user, "box"))).status_code == 423  # a locked member protects the folder
    moved = await dav.request("MOVE", files(user, "box"), headers={"Destination": absolute(dav, files(user, "box2"))})
    assert moved.status_code == 423
    inner_token = inner.headers["lock-token"]
    assert (await dav.request("UNLOCK", files(user, "box/inner.txt"), headers={"Lock-Token": inner_token})).status_code == 204
    allowed = await dav.put(files(user, "locked.txt"), content=b"v2", headers={"If": f"(<{token}>)"})
    assert allowed.status_code == 204
    unlocked = await dav.request("UNLOCK", files(user, "locked.txt"), headers={"Lock-Token": f"<{token}>"})
    assert unlocked.status_code == 204
    assert (await dav.put(files(user, "locked.txt"), content=b"v3")).status_code == 204


async def test_other_users_tree_is_not_found(server: tuple[WebDavSandbox, str], dav: httpx.AsyncClient,
                                             user: str) -> None:
    await put(dav, user, "private.txt", b"secret")
    async with httpx.AsyncClient(base_url=server[1], auth=("mallory", "pw")) as mallory:
        for method in ("GET", "PROPFIND", "DELETE", "PUT"):
            response = await mallory.request(method, files(user, "private.txt"))
            assert response.status_code == 404, method
            assert sabre(response)[0] == "Sabre\\DAV\\Exception\\NotFound"
        for tree in ("trashbin", "versions", "uploads"):
            assert (await mallory.request("PROPFIND", f"/remote.php/dav/{tree}/{user}/")).status_code == 404
        await mallory.put(files("mallory", "m.txt"), content=b"m")
        steal = await mallory.request("MOVE", files("mallory", "m.txt"),
                                      headers={"Destination": absolute(mallory, files(user, "m.txt"))})
        assert steal.status_code == 403
        response = await mallory.request("SEARCH", "/remote.php/dav/", content=search_body(user, like("d:displayname", "%")))
        assert response.status_code == 403
    assert (await dav.get(files(user, "private.txt"))).content == b"secret"


async def test_special_names_round_trip(dav: httpx.AsyncClient, user: str) -> None:
    names = ["with space.txt", "hash#tag.txt", "100% sure.txt", "what?.txt", "a&b.txt", "x<y>.txt",
             'say "hi".txt', "it's.txt", "Grüße – 日本.txt"]
    await dav.request("MKCOL", files(user, "weird dir #1"))
    for name in names:
        await put(dav, user, f"weird dir #1/{name}", name.encode())
    listing = await propfind(dav, files(user, "weird dir #1"), "d:displayname", depth="1")
    response = await dav.request("PROPFIND", files(user, "weird dir #1"), headers={"Depth": "1"})
    hrefs = raw_hrefs(response)
    assert len(hrefs) == len(names) + 1
    assert all(h and " " not in h and "#" not in h and "?" not in h and '"' not in h and "<" not in h for h in hrefs)
    for name in names:
        href = files(user, f"weird dir #1/{name}")
        assert unquote(href) in listing, name
        assert text(listing[unquote(href)], f"{D}displayname") == name
        assert (await dav.get(href)).content == name.encode()
    moved = await dav.request("MOVE", files(user, "weird dir #1/what?.txt"),
                              headers={"Destination": absolute(dav, files(user, "weird dir #1/now?&#%.txt"))})
    assert moved.status_code == 201
    assert (await dav.get(files(user, "weird dir #1/now?&#%.txt"))).content == b"what?.txt"


# -- SEARCH and favourites REPORT -----------------------------------------------------------------------
async def _search_tree(dav: httpx.AsyncClient, user: str) -> None:
    await dav.request("MKCOL", files(user, "docs"))
    await dav.request("MKCOL", files(user, "docs/sub"))
    await put(dav, user, "docs/report.pdf", b"p" * 300, **{"X-OC-MTime": "1600000000"})
    await put(dav, user, "docs/sub/Notes.md", b"n" * 20, **{"X-OC-MTime": "1700000000"})
    await put(dav, user, "photo.JPG", b"j" * 1000, **{"X-OC-MTime": "1650000000"})
    await put(dav, user, "readme.txt", b"r" * 5, **{"X-OC-MTime": "1750000000"})
    fav = f'<d:propertyupdate {NS}><d:set><d:prop><oc:favorite>1</oc:favorite></d:prop></d:set></d:propertyupdate>'
    for rel in ("docs/sub/Notes.md", "photo.JPG", "docs/sub"):
        assert (await dav.request("PROPPATCH", files(user, rel), content=fav)).status_code == 207


def names_of(result: dict[str, Any]) -> list[str]:
    return [href.rstrip("/").rsplit("/", 1)[-1] for href in result]


async def test_search(dav: httpx.AsyncClient, user: str, sandbox: WebDavSandbox) -> None:
    await _search_tree(dav, user)
    by_name = await search(dav, search_body(user, like("d:displayname", "%no%"),
                                            select="<d:displayname/><oc:fileid/><d:getcontenttype/>"))
    assert names_of(by_name) == ["Notes.md"]
    hit = by_name[files(user, "docs/sub/Notes.md")]
    assert text(hit, f"{D}getcontenttype") == "text/markdown"
    assert int(text(hit, f"{OC}fileid")) == sandbox.file_id(user, "docs/sub/Notes.md")
    images = await search(dav, search_body(user, like("d:getcontenttype", "image/%")))
    assert names_of(images) == ["photo.JPG"]
    big = await search(dav, search_body(user, cmp("gt", "oc:size", "100") + "", order=(
        "<d:orderby><d:order><d:prop><oc:size/></d:prop><d:descending/></d:order></d:orderby>")))
    assert names_of(big) == ["photo.JPG", "docs", "report.pdf"]  # docs folder: 320 bytes
    favs = await search(dav, search_body(user, cmp("eq", "oc:favorite", "1"), select="<oc:favorite/>"))
    assert sorted(names_of(favs)) == ["Notes.md", "photo.JPG", "sub"]
    files_only = (f"<d:and>{cmp('eq', 'oc:favorite', '1')}<d:not><d:is-collection/></d:not></d:and>")
    assert sorted(names_of(await search(dav, search_body(user, files_only)))) == ["Notes.md", "photo.JPG"]
    dated = await search(dav, search_body(user, f"<d:and>{cmp('gte', 'd:getlastmodified', '1650000000')}"
                                                f"{cmp('lt', 'd:getlastmodified', 'Fri, 01 Jan 2100 00:00:00 GMT')}"
                                                f"<d:not><d:is-collection/></d:not></d:and>",
                                          order="<d:orderby><d:order><d:prop><d:getlastmodified/></d:prop>"
                                                "<d:ascending/></d:order></d:orderby>"))
    assert names_of(dated) == ["photo.JPG", "Notes.md", "readme.txt"]
    either = await search(dav, search_body(user, f"<d:or>{like('d:displayname', '%.pdf')}"
                                                 f"{cmp('eq', 'd:displayname', 'readme.txt')}</d:or>"))
    assert sorted(names_of(either)) == ["readme.txt", "report.pdf"]
    small = await search(dav, search_body(user, f"<d:and>{cmp('lte', 'oc:size', '20')}"
                                                f"<d:not><d:is-collection/></d:not></d:and>"))
    assert sorted(names_of(small)) == ["Notes.md", "readme.txt"]
    fileid = sandbox.file_id(user, "readme.txt")
    assert names_of(await search(dav, search_body(user, cmp("eq", "oc:fileid", str(fileid))))) == ["readme.txt"]
    shallow = await search(dav, search_body(user, like("d:displayname", "%"), scope="/docs", depth="1"))
    assert sorted(names_of(shallow)) == ["report.pdf", "sub"]
    deep = await search(dav, search_body(user, like("d:displayname", "%"), scope="/docs"))
    assert sorted(names_of(deep)) == ["Notes.md", "report.pdf", "sub"]
    limited = await search(dav, search_body(user, like("d:displayname", "%"), order=(
        "<d:orderby><d:order><d:prop><d:displayname/></d:prop><d:ascending/></d:order></d:orderby>"),
        limit="<d:limit><d:nresults>2</d:nresults></d:limit>"))
    assert names_of(limited) == ["docs", "Notes.md"] or names_of(limited) == ["Notes.md", "docs"]
    assert len(limited) == 2
    outside = await dav.request("SEARCH", "/remote.php/dav/",
                                content=search_body(user, like("d:displayname", "%")).replace(
                                    f"/files/{user}", "/calendars/x"))
    assert outside.status_code == 400
    unknown = await dav.request("SEARCH", "/remote.php/dav/",
                                content=search_body(user, cmp("eq", "oc:owner-id", "x")))
    assert unknown.status_code == 400
    assert (await dav.request("SEARCH", "/remote.php/dav/", content=b"<not-xml")).status_code == 400


async def test_report_filter_files_lists_favorites_below_folder(dav: httpx.AsyncClient, user: str) -> None:
    await _search_tree(dav, user)
    body = (f'<oc:filter-files {NS}><d:prop><d:getetag/><oc:fileid/><oc:favorite/></d:prop>'
            f'<oc:filter-rules><oc:favorite>1</oc:favorite></oc:filter-rules></oc:filter-files>')
    everywhere = multistatus(await dav.request("REPORT", files(user), content=body))
    assert sorted(names_of(everywhere)) == ["Notes.md", "photo.JPG", "sub"]
    assert all(text(p, f"{OC}favorite") == "1" for p in everywhere.values())
    in_docs = multistatus(await dav.request("REPORT", files(user, "docs"), content=body))
    assert sorted(names_of(in_docs)) == ["Notes.md", "sub"]
    other = await dav.request("REPORT", files(user), content=b'<d:sync-collection xmlns:d="DAV:"/>')
    assert other.status_code == 415


# -- trash bin --------------------------------------------------------------------------------------
async def test_trash_bin(dav: httpx.AsyncClient, user: str, sandbox: WebDavSandbox) -> None:
    trash = f"/remote.php/dav/trashbin/{user}/trash/"
    await dav.request("MKCOL", files(user, "work"))
    await put(dav, user, "work/plan.txt", b"plan v1")
    fileid = sandbox.file_id(user, "work/plan.txt")
    before = time.time()
    assert (await dav.delete(files(user, "work/plan.txt"))).status_code == 204
    assert (await dav.get(files(user, "work/plan.txt"))).status_code == 404
    listing = await propfind(dav, trash, "nc:trashbin-filename", "nc:trashbin-original-location",
                             "nc:trashbin-deletion-time", "d:getcontentlength", "oc:fileid", depth="1")
    items = {href: p for href, p in listing.items() if href != trash}
    assert len(items) == 1
    href, props = next(iter(items.items()))
    assert href.startswith(trash + "plan.txt.d")
    raw = await dav.request("PROPFIND", trash, headers={"Depth": "1"})
    assert all(h.startswith(trash) for h in raw_hrefs(raw)) and len(raw_hrefs(raw)) == 2
    assert text(props, f"{NC}trashbin-filename") == "plan.txt"
    assert text(props, f"{NC}trashbin-original-location") == "work/plan.txt"
    assert int(text(props, f"{NC}trashbin-deletion-time")) >= int(before) - 1
    assert text(props, f"{D}getcontentlength") == "7" and int(text(props, f"{OC}fileid")) == fileid
    assert (await dav.get(quote(href))).content == b"plan v1"
    # restore to the original location, keeping the file id
    restore = {"Destination": absolute(dav, f"/remote.php/dav/trashbin/{user}/restore/plan.txt")}
    assert (await dav.request("MOVE", quote(href), headers=restore)).status_code == 201
    assert (await dav.get(files(user, "work/plan.txt"))).content == b"plan v1"
    assert sandbox.file_id(user, "work/plan.txt") == fileid
    # name taken -> "(restored)"; original folder gone -> files root
    await dav.delete(files(user, "work/plan.txt"))
    await put(dav, user, "work/plan.txt", b"plan v2")
    href = next(h for h in await propfind(dav, trash, depth="1") if h != trash)
    assert (await dav.request("MOVE", quote(href), headers=restore)).status_code == 201
    assert (await dav.get(files(user, "work/plan (restored).txt"))).content == b"plan v1"
    assert (await dav.delete(files(user, "work"))).status_code == 204  # a whole folder
    await put(dav, user, "lonely.txt", b"l")
    await dav.request("MKCOL", files(user, "tmp"))
    await dav.request("MOVE", files(user, "lonely.txt"), headers={"Destination": absolute(dav, files(user, "tmp/lonely.txt"))})
    await dav.delete(files(user, "tmp/lonely.txt"))
    await dav.delete(files(user, "tmp"))
    listing = await propfind(dav, trash, "nc:trashbin-original-location", depth="1")
    by_location = {text(p, f"{NC}trashbin-original-location"): h for h, p in listing.items() if h != trash}
    assert set(by_location) == {"work", "tmp", "tmp/lonely.txt"}
    inside = await propfind(dav, quote(by_location["work"]), "nc:trashbin-filename", depth="1")
    assert any(h.endswith("/plan.txt") for h in inside)
    assert (await dav.request("MOVE", quote(by_location["tmp/lonely.txt"]), headers=restore)).status_code == 201
    assert (await dav.get(files(user, "lonely.txt"))).content == b"l"
    # delete one item for good, then empty the bin
    assert (await dav.delete(quote(by_location["tmp"]))).status_code == 204
    assert len(await propfind(dav, trash, depth="1")) == 2
    assert (await dav.delete(trash)).status_code == 204
    assert list(await propfind(dav, trash, depth="1")) == [trash]
    assert (await dav.delete(files(user))).status_code == 403  # the home folder stays


# -- versions ---------------------------------------------------------------------------------------
async def test_versions(dav: httpx.AsyncClient, user: str, sandbox: WebDavSandbox) -> None:
    await put(dav, user, "v.txt", b"one")
    fileid = sandbox.file_id(user, "v.txt")
    await put(dav, user, "v.txt", b"two!")
    await put(dav, user, "v.txt", b"three")
    base = f"/remote.php/dav/versions/{user}/versions/{fileid}/"
    listing = await propfind(dav, base, "d:getcontentlength", "d:getlastmodified", "d:getetag", depth="1")
    versions = {h: p for h, p in listing.items() if h != base}
    assert sorted(text(p, f"{D}getcontentlength") for p in versions.values()) == ["3", "4"]
    assert all(h[len(base):].isdigit() for h in versions)
    raw = await dav.request("PROPFIND", base, headers={"Depth": "1"})
    assert all(h.startswith(base) for h in raw_hrefs(raw)) and len(raw_hrefs(raw)) == 3
    assert all(text(p, f"{D}getetag").startswith('"') for p in versions.values())
    contents = {h: (await dav.get(h)).content for h in versions}
    assert sorted(contents.values()) == [b"one", b"two!"]
    oldest = next(h for h, c in contents.items() if c == b"one")
    restore = {"Destination": absolute(dav, f"/remote.php/dav/versions/{user}/restore/target")}
    assert (await dav.request("MOVE", oldest, headers=restore)).status_code == 201
    assert (await dav.get(files(user, "v.txt"))).content == b"one"
    assert sandbox.file_id(user, "v.txt") == fileid
    after = await propfind(dav, base, depth="1")
    restored_contents = sorted([(await dav.get(h)).content for h in after if h != base])
    assert restored_contents == [b"three", b"two!"]
    assert (await dav.request("PROPFIND", f"/remote.php/dav/versions/{user}/versions/999999999/")).status_code == 404
    # versions follow the file through MOVE (same file id)
    await dav.request("MOVE", files(user, "v.txt"), headers={"Destination": absolute(dav, files(user, "w.txt"))})
    assert len(await propfind(dav, base, depth="1")) == 3


# -- chunked upload v2 -----------------------------------------------------------------------------
async def test_chunked_upload(dav: httpx.AsyncClient, user: str, sandbox: WebDavSandbox) -> None:
    dest = absolute(dav, files(user, "big/assembled.bin"))
    await dav.request("MKCOL", files(user, "big"))
    upload = f"/remote.php/dav/uploads/{user}/web-file-upload-1"
    assert (await dav.request("MKCOL", upload, headers={"Destination": dest})).status_code == 201
    assert (await dav.request("MKCOL", upload, headers={"Destination": dest})).status_code == 405
    parts = {n: bytes([n]) * (1000 + n) for n in range(1, 12)}  # "10" and "11" sort after "9"
    for n in sorted(parts, reverse=True):
        response = await dav.put(f"{upload}/{n}", content=parts[n],
                                 headers={"Destination": dest, "OC-Total-Length": str(sum(map(len, parts.values())))})
        assert response.status_code == 201
    listing = await propfind(dav, upload, "d:getcontentlength", depth="1")
    assert len(listing) == 12
    total = str(sum(len(p) for p in parts.values()))
    moved = await dav.request("MOVE", f"{upload}/.file",
                              headers={"Destination": dest, "OC-Total-Length": total, "X-OC-MTime": "1600000000"})
    assert moved.status_code == 201, moved.text
    assert moved.headers["x-oc-mtime"] == "accepted"
    expected = b"".join(parts[n] for n in sorted(parts))
    got = await dav.get(files(user, "big/assembled.bin"))
    assert got.content == expected and got.headers["etag"] == moved.headers["oc-etag"]
    fileid = sandbox.file_id(user, "big/assembled.bin")
    assert moved.headers["oc-fileid"] == f"{fileid:08d}ocsandbox01"
    assert (await dav.request("PROPFIND", upload)).status_code == 404  # the upload folder is gone
    # overwrite with If-Match: wrong etag 412, right etag 204 (same file id, a version kept)
    etag = moved.headers["oc-etag"]
    for if_headers, status in (({"If-Match": '"wrong"'}, 412), ({"If-None-Match": "*"}, 412),
                               ({"Overwrite": "F"}, 412), ({"If": f'<{dest}> (["wrong"])'}, 412),
                               ({"If": f"<{dest}> ([{etag}])", "Overwrite": "T"}, 204)):
        await dav.request("MKCOL", upload, headers={"Destination": dest})
        await dav.put(f"{upload}/1", content=b"new content", headers={"Destination": dest})
        response = await dav.request("MOVE", f"{upload}/.file", headers={"Destination": dest, **if_headers})
        assert response.status_code == status, (if_headers, response.text)
    assert (await dav.get(files(user, "big/assembled.bin"))).content == b"new content"
    assert sandbox.file_id(user, "big/assembled.bin") == fileid
    etag = (await dav.head(files(user, "big/assembled.bin"))).headers["etag"]
    await dav.request("MKCOL", upload, headers={"Destination": dest})
    await dav.put(f"{upload}/1", content=b"again", headers={"Destination": dest})
    again = await dav.request("MOVE", f"{upload}/.file", headers={"Destination": dest, "If-Match": etag})
    assert again.status_code == 204
    versions = await propfind(dav, f"/remote.php/dav/versions/{user}/versions/{fileid}/", depth="1")
    assert len(versions) == 3
    # a wrong total length, then abort
    upload2 = f"/remote.php/dav/uploads/{user}/web-file-upload-2"
    await dav.request("MKCOL", upload2, headers={"Destination": dest})
    await dav.put(f"{upload2}/1", content=b"abc", headers={"Destination": dest})
    wrong = await dav.request("MOVE", f"{upload2}/.file", headers={"Destination": dest, "OC-Total-Length": "4"})
    assert wrong.status_code == 400
    assert (await dav.delete(upload2)).status_code == 204
    assert (await dav.request("PROPFIND", upload2)).status_code == 404
    assert (await dav.put(f"{upload2}/1", content=b"x")).status_code == 409


async def test_cut_off_upload_changes_nothing(server: tuple[WebDavSandbox, str], dav: httpx.AsyncClient, user: str,
                                             sandbox: WebDavSandbox) -> None:
    await put(dav, user, "keep.txt", b"original")

    async def broken() -> AsyncIterator[bytes]:
        yield b"x" * 100_000
        raise RuntimeError("client gave up")

    for rel in ("keep.txt", "fresh.txt"):
        async with httpx.AsyncClient(base_url=server[1], auth=(user, "pw")) as client:
            with pytest.raises(RuntimeError):
                await client.put(files(user, rel), content=broken(), headers={"Content-Length": "1000000"})
    tmp = sandbox.root / user / ".dav-tmp"
    # The server handles each cut-off request on its own schedule (a temp file may appear only after
    # the client has given up), so wait until the temp folder has stayed empty for half a second.
    empty_since = None
    with anyio.move_on_after(20):
        while empty_since is None or anyio.current_time() - empty_since < 0.5:
            if any(tmp.iterdir()):
                empty_since = None
            elif empty_since is None:
                empty_since = anyio.current_time()
            await anyio.sleep(0.02)
    assert not any(tmp.iterdir())
    assert (await dav.get(files(user, "keep.txt"))).content == b"original"
    assert (await dav.get(files(user, "fresh.txt"))).status_code == 404


# -- quota ------------------------------------------------------------------------------------------
async def test_quota(dav: httpx.AsyncClient, user: str, sandbox: WebDavSandbox) -> None:
    sandbox.provision_user(user)
    sandbox.set_quota(user, 1000)
    try:
        too_big = await dav.put(files(user, "big.bin"), content=b"x" * 1500)
        assert too_big.status_code == 507
        assert sabre(too_big)[0] == "Sabre\\DAV\\Exception\\InsufficientStorage"
        assert (await dav.get(files(user, "big.bin"))).status_code == 404
        await put(dav, user, "ok.bin", b"x" * 600)
        props = await props_of(dav, files(user), "d:quota-used-bytes", "d:quota-available-bytes")
        assert text(props, f"{D}quota-used-bytes") == "600" and text(props, f"{D}quota-available-bytes") == "400"
        await put(dav, user, "ok.bin", b"y" * 900)  # an overwrite may reuse the replaced bytes

        async def streamed() -> AsyncIterator[bytes]:  # no Content-Length: caught while streaming
            for _ in range(10):
                yield b"z" * 100

        chunked = await dav.put(files(user, "stream.bin"), content=streamed())
        assert chunked.status_code == 507
        assert (await dav.get(files(user, "stream.bin"))).status_code == 404
        upload = f"/remote.php/dav/uploads/{user}/q1"
        dest = absolute(dav, files(user, "chunked.bin"))
        await dav.request("MKCOL", upload, headers={"Destination": dest})
        early = await dav.put(f"{upload}/1", content=b"a" * 10, headers={"Destination": dest, "OC-Total-Length": "5000"})
        assert early.status_code == 507
        await dav.put(f"{upload}/1", content=b"a" * 200, headers={"Destination": dest})
        assert (await dav.request("MOVE", f"{upload}/.file", headers={"Destination": dest})).status_code == 507
    finally:
        sandbox.set_quota(user, None)


# -- memory: GET and PUT stream ---------------------------------------------------------------------
def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class _PeakRss:
    """Samples this process's RSS (server and client live here) while a transfer runs."""

    def __enter__(self) -> _PeakRss:
        self.base = self.peak = _rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss())
            time.sleep(0.005)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())

    @property
    def growth(self) -> int:
        return self.peak - self.base


@pytest.mark.skipif(not pathlib.Path("/proc/self/statm").exists(), reason="needs /proc")
async def test_50mb_get_and_put_stream(dav: httpx.AsyncClient, user: str, sandbox: WebDavSandbox) -> None:
    sandbox.provision_user(user)
    size = 50 * MB
    path = sandbox.files_dir(user) / "big.bin"
    block = os.urandom(MB)

    def write_big_file() -> None:
        with open(path, "wb") as f:
            for _ in range(50):
                f.write(block)

    await anyio.to_thread.run_sync(write_big_file)
    with _PeakRss() as get_rss:
        received = 0
        async with dav.stream("GET", files(user, "big.bin")) as response:
            assert response.status_code == 200
            async for chunk in response.aiter_raw():
                received += len(chunk)
    assert received == size
    assert get_rss.growth < 25 * MB, f"GET grew RSS by {get_rss.growth / MB:.1f} MiB"

    async def body() -> AsyncIterator[bytes]:
        for _ in range(50):
            yield block

    with _PeakRss() as put_rss:
        response = await dav.put(files(user, "upload.bin"), content=body(), headers={"Content-Length": str(size)})
    assert response.status_code == 201
    assert (sandbox.files_dir(user) / "upload.bin").stat().st_size == size
    assert put_rss.growth < 25 * MB, f"PUT grew RSS by {put_rss.growth / MB:.1f} MiB"



async def test_concurrent_conditional_puts_have_one_winner(dav: httpx.AsyncClient, user: str) -> None:
    """WsgiDAV checks If-Match before the body arrives; the store re-checks under its lock at commit,
    so of several writers holding the same ETag exactly one wins."""
    import anyio

    etag = (await put(dav, user, "race.txt", b"base")).headers["etag"]
    statuses: list[int] = []

    async def writer(i: int) -> None:
        body = (b"%d" % i) * 3_000_000  # big enough that the bodies arrive interleaved
        statuses.append((await dav.put(files(user, "race.txt"), content=body, headers={"If-Match": etag})).status_code)

    async with anyio.create_task_group() as tg:
        for i in range(6):
            tg.start_soon(writer, i)
    assert sorted(statuses) == [204, 412, 412, 412, 412, 412]
