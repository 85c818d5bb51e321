"""CardDAV requests (RFC 6352) on the user's address-book home, found by discovery.

Objects are addressed by the href the server gave (never rebuilt from a UID). Every write is
conditional: ``If-None-Match: *`` to create, ``If-Match`` to change or delete. XML is built and
parsed only through :mod:`ncmcp.nextcloud.xml`.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote
from xml.etree.ElementTree import Element

from ncmcp import Conflict, InvalidArgument, NotFound, PermissionDenied, ToolContext, UpstreamError
from ncmcp.nextcloud import xml
from ncmcp.nextcloud.dav import XML_HEADERS, discover_home, origin_path

VCARD_TYPE = "text/vcard; charset=utf-8"
# Nextcloud's generated address books: read-only whatever a server reports (used when it reports no privileges).
READ_ONLY_URIS = frozenset({"z-server-generated--system", "z-app-generated--contactsinteraction--recent"})
_WRITE_PRIVILEGES = frozenset(xml.qname(f"d:{name}") for name in ("write", "write-content", "bind", "all"))
BOOK_PROPS = ("d:resourcetype", "d:displayname", "d:current-user-privilege-set", "card:addressbook-description",
              "cs:getctag", "d:sync-token")
# Fields a summary needs: servers that support partial address-data (RFC 6352 §10.4.2) skip photos.
SUMMARY_PROPS = ("VERSION", "UID", "FN", "N", "NICKNAME", "ORG", "EMAIL", "TEL")
_HOME_TTL = 300.0
_HOME_CACHE_SIZE = 1024
_homes: OrderedDict[tuple[str, str], tuple[float, str]] = OrderedDict()


@dataclass(frozen=True, slots=True)
class Book:
    name: str  # the URI segment, e.g. "contacts"
    href: str  # encoded path with a trailing slash
    display_name: str
    description: str
    read_only: bool
    ctag: str | None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "href": self.href, "display_name": self.display_name,
                               "read_only": self.read_only}
        if self.description:
            out["description"] = self.description
        if self.ctag:
            out["ctag"] = self.ctag
        return out


@dataclass(frozen=True, slots=True)
class StoredCard:
    href: str
    etag: str
    text: str


class DuplicateUid(Conflict):
    """The server refused a create because the UID is taken (409 no-uid-conflict or Sabre's 400)."""


class PreconditionFailed(Exception):
    """A conditional request got 412; the caller decides how to report it."""


# --- discovery ---------------------------------------------------------------------------------


async def home(ctx: ToolContext) -> str:
    """The address-book home (cached per server and user for a few minutes)."""
    key = (ctx.http.base_url, ctx.user_id)
    cached = _homes.get(key)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    found = await discover_home(ctx.http, "carddav")
    if not found.endswith("/"):
        found += "/"
    _homes[key] = (time.monotonic() + _HOME_TTL, found)
    _homes.move_to_end(key)
    while len(_homes) > _HOME_CACHE_SIZE:
        _homes.popitem(last=False)
    return found


def book_href(home_path: str, name: str) -> str:
    if not name or name in (".", "..") or "/" in name or any(ord(c) < 32 for c in name):
        raise InvalidArgument(f"{name!r} is not an address book name (use the name from list_addressbooks)")
    return home_path + quote(name, safe="") + "/"


async def contact_path(ctx: ToolContext, href: str) -> tuple[str, str]:
    """(object path, its address book's name) for an href a tool returned; anything else is refused."""
    base = await home(ctx)
    path = origin_path(ctx.http, href.strip())
    plain, plain_home = unquote(path), unquote(base)
    rest = plain[len(plain_home):].split("/") if plain.startswith(plain_home) else []
    if len(rest) != 2 or not rest[0] or not rest[1] or any(part in (".", "..") for part in rest):
        raise InvalidArgument(f"{href!r} is not a contact of this user: pass an href from list, search or get")
    return path, rest[0]


# --- address books -----------------------------------------------------------------------------


async def _propfind(ctx: ToolContext, path: str, props: Iterable[str], depth: str) -> list[xml.DavResponse] | None:
    response = await ctx.http.request("PROPFIND", path, headers={**XML_HEADERS, "Depth": depth},
                                      content=xml.propfind_body(props), ok=(404,))
    if response.status_code == 404:
        return None
    return xml.parse_multistatus(response.content, ctx.http.base_url)


def _is_addressbook(resp: xml.DavResponse) -> bool:
    return resp.has("d:resourcetype", "card:addressbook")


def _book(resp: xml.DavResponse) -> Book:
    name = resp.href.rstrip("/").rsplit("/", 1)[-1]
    privileges = resp.props.get(xml.qname("d:current-user-privilege-set"))
    if privileges is not None:
        granted = {child.tag for privilege in privileges.findall(xml.qname("d:privilege")) for child in privilege}
        read_only = not granted & _WRITE_PRIVILEGES
    else:
        read_only = name in READ_ONLY_URIS
    href = resp.raw_href if resp.raw_href.endswith("/") else resp.raw_href + "/"
    return Book(name=name, href=href, display_name=(resp.text("d:displayname") or name).strip(),
                description=(resp.text("card:addressbook-description") or "").strip(), read_only=read_only,
                ctag=resp.text("cs:getctag") or resp.text("d:sync-token"))


async def list_books(ctx: ToolContext) -> list[Book]:
    base = await home(ctx)
    found = await _propfind(ctx, base, BOOK_PROPS, "1") or []
    return [_book(resp) for resp in found if resp.status in (None, 200) and _is_addressbook(resp)]


async def get_book(ctx: ToolContext, name: str) -> Book:
    path = book_href(await home(ctx), name)
    found = await _propfind(ctx, path, BOOK_PROPS, "0")
    match = next((resp for resp in found or [] if _is_addressbook(resp)), None)
    if match is None:
        raise NotFound(f"No address book named {name!r}; list_addressbooks shows the names")
    return _book(match)


async def writable_book(ctx: ToolContext, name: str) -> Book:
    book = await get_book(ctx, name)
    if book.read_only:
        raise PermissionDenied(
            f"Address book {name!r} ({book.display_name}) is read-only: Nextcloud generates it "
            "(system address book, recently contacted) or it was shared without write access. Nothing was changed.",
            addressbook=name,
        )
    return book


async def create_book(ctx: ToolContext, name: str, display_name: str, description: str | None) -> Book:
    path = book_href(await home(ctx), name)
    props = [xml.element("d:resourcetype", children=[xml.element("d:collection"), xml.element("card:addressbook")]),
             xml.element("d:displayname", display_name)]
    if description:
        props.append(xml.element("card:addressbook-description", description))
    body = xml.to_bytes(xml.element("d:mkcol", children=[xml.element("d:set", children=[xml.element("d:prop", children=props)])]))
    response = await ctx.http.request("MKCOL", path, headers=XML_HEADERS, content=body, ok=(405, 409))
    if response.status_code in (405, 409):
        raise Conflict(f"Something named {name!r} already exists in the address-book home; choose another name")
    return await get_book(ctx, name)


async def delete_book(ctx: ToolContext, book: Book) -> None:
    response = await ctx.http.request("DELETE", book.href, ok=(404,))
    if response.status_code == 404:
        raise NotFound(f"No address book named {book.name!r}")


async def count_objects(ctx: ToolContext, book: Book) -> int:
    return len(await list_objects(ctx, book.href))


# --- contacts ----------------------------------------------------------------------------------


async def list_objects(ctx: ToolContext, path: str) -> list[tuple[str, str]]:
    """(href, etag) of every vCard in the book, in one PROPFIND (no card data)."""
    found = await _propfind(ctx, path, ("d:getetag", "d:resourcetype"), "1")
    if found is None:
        raise NotFound("The address book does not exist (any more)")
    own = unquote(path).rstrip("/")
    out = []
    for resp in found:
        kind = resp.props.get(xml.qname("d:resourcetype"))
        if resp.href.rstrip("/") == own or (kind is not None and len(kind)):
            continue  # the book itself, or a sub-collection
        etag = resp.text("d:getetag")
        if resp.status in (None, 200) and etag:
            out.append((resp.raw_href, etag))
    return out


def _address_data(props: Sequence[str] | None) -> Element:
    return xml.element("card:address-data", children=[xml.element("card:prop", attrib={"name": p}) for p in props or ()])


def _cards(found: list[xml.DavResponse]) -> list[StoredCard]:
    out = []
    for resp in found:
        data = resp.text("card:address-data")
        etag = resp.text("d:getetag")
        if data and etag:
            out.append(StoredCard(href=resp.raw_href, etag=etag, text=data))
    return out


async def _report(ctx: ToolContext, path: str, body: Element) -> list[xml.DavResponse]:
    response = await ctx.http.request("REPORT", path, headers={**XML_HEADERS, "Depth": "1"}, content=xml.to_bytes(body))
    return xml.parse_multistatus(response.content, ctx.http.base_url)


async def multiget(ctx: ToolContext, path: str, hrefs: Sequence[str], props: Sequence[str] | None = None) -> list[StoredCard]:
    if not hrefs:
        return []
    body = xml.element("card:addressbook-multiget", children=[
        xml.element("d:prop", children=[xml.element("d:getetag"), _address_data(props)]),
        *(xml.element("d:href", href) for href in hrefs)])
    return _cards(await _report(ctx, path, body))


def text_filter(query: str, props: Sequence[str], *, match_type: str = "contains",
                collation: str = "i;unicode-casemap") -> Element:
    """An ``anyof`` filter: the query as a text-match on each of ``props``."""
    return xml.element("card:filter", attrib={"test": "anyof"}, children=[
        xml.element("card:prop-filter", attrib={"name": prop}, children=[
            xml.element("card:text-match", query, attrib={"collation": collation, "match-type": match_type})])
        for prop in props])


async def query(ctx: ToolContext, path: str, card_filter: Element, *, limit: int | None = None,
                props: Sequence[str] | None = None, with_data: bool = True) -> list[StoredCard] | list[tuple[str, str]]:
    """One addressbook-query REPORT: the server does the matching."""
    prop = [xml.element("d:getetag")] + ([_address_data(props)] if with_data else [])
    children = [xml.element("d:prop", children=prop), card_filter]
    if limit:
        children.append(xml.element("card:limit", children=[xml.element("card:nresults", str(limit))]))
    found = await _report(ctx, path, xml.element("card:addressbook-query", children=children))
    if with_data:
        return _cards(found)
    return [(resp.raw_href, resp.text("d:getetag") or "") for resp in found
            if resp.status in (None, 200) and resp.text("d:getetag")]


async def get_card(ctx: ToolContext, path: str) -> StoredCard:
    response = await ctx.http.request("GET", path, headers={"Accept": "text/vcard"}, ok=(404, 410))
    if response.status_code in (404, 410):
        raise NotFound("The contact does not exist (it may have been deleted); list or search again")
    etag = response.headers.get("ETag") or await current_etag(ctx, path)
    if not etag:
        raise UpstreamError("The server did not give the contact's ETag; it cannot be changed safely")
    return StoredCard(href=path, etag=etag, text=response.content.decode("utf-8", errors="replace"))


async def current_etag(ctx: ToolContext, path: str) -> str | None:
    found = await _propfind(ctx, path, ("d:getetag",), "0")
    return next((resp.text("d:getetag") for resp in found or [] if resp.text("d:getetag")), None)


async def put_card(ctx: ToolContext, path: str, text: str, *, if_match: str | None = None, create: bool = False) -> str | None:
    """PUT conditionally; return the new ETag (None when the server stored a changed text and gave none)."""
    headers = {"Content-Type": VCARD_TYPE}
    if create:
        headers["If-None-Match"] = "*"
    elif if_match:
        headers["If-Match"] = if_match
    else:
        raise AssertionError("every CardDAV write is conditional")
    response = await ctx.http.request("PUT", path, headers=headers, content=text.encode("utf-8"), ok=(400, 409, 412))
    if response.status_code == 412:
        raise PreconditionFailed()
    if response.status_code in (400, 409):
        if _is_uid_conflict(response.content):
            raise DuplicateUid("The address book already holds a contact with this UID")
        raise UpstreamError(f"Nextcloud refused the vCard (HTTP {response.status_code}): "
                            f"{xml.sabre_message(response.content) or 'bad request'}")
    return response.headers.get("ETag")


def _is_uid_conflict(body: bytes) -> bool:
    """Newest Nextcloud: 409 with ``card:no-uid-conflict``; older: 400 "... uid already exists ..."."""
    try:
        root = xml.parse(body)
    except Exception:  # noqa: BLE001 - an error body that is not XML is simply not a UID conflict
        return False
    if root.find(xml.qname("card:no-uid-conflict")) is not None:
        return True
    return "uid already exists" in (root.findtext(xml.qname("s:message")) or "").lower()


async def delete_card(ctx: ToolContext, path: str, if_match: str | None) -> None:
    headers = {"If-Match": if_match} if if_match else {}
    response = await ctx.http.request("DELETE", path, headers=headers, ok=(404, 412))
    if response.status_code == 404:
        raise NotFound("The contact does not exist (it may already have been deleted)")
    if response.status_code == 412:
        raise PreconditionFailed()


def quoted_etag(etag: str) -> str:
    """ETags go back to the server as given; a bare value gets the quotes HTTP requires."""
    etag = etag.strip()
    if etag.startswith(("W/", '"')):
        return etag
    return f'"{etag}"'
