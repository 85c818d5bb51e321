"""The Contacts tools. Handlers receive the host's context; they never see tokens or check scopes."""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import anyio
from ncmcp import Access, Conflict, InvalidArgument, ToolContext, ToolHints, ToolSpec, UpstreamError

from ncmcp_contacts import carddav, fields, patch, vcard
from ncmcp_contacts import schemas as s

DEFAULT_BOOK = "contacts"
SEARCH_FIELDS = {"name": ("FN", "N"), "nickname": ("NICKNAME",), "email": ("EMAIL",), "phone": ("TEL",), "organization": ("ORG",)}
_SAFE_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_THREAD_PARSE_CHARS = 256 * 1024  # parse bigger pages in a worker thread so the event loop stays free


# --- helpers -----------------------------------------------------------------------------------


def _parse_stored(text: str, href: str) -> vcard.Card:
    try:
        return vcard.parse(text)
    except vcard.VCardError as exc:
        raise UpstreamError(f"The stored contact {href} is not a valid vCard ({exc}); it was left unchanged") from exc


def _contact(stored: carddav.StoredCard, book: str, card: vcard.Card, *, photo: bool = False,
             raw: bool = False) -> dict[str, Any]:
    out = {"href": stored.href, "etag": stored.etag, "addressbook": book, **fields.full(card, with_photo_data=photo)}
    if raw:
        out["vcard"] = stored.text
    return out


def _summary(stored: carddav.StoredCard, book: str) -> dict[str, Any] | None:
    try:
        card = vcard.parse(stored.text)
    except vcard.VCardError:
        return None  # one broken card must not hide the others; get_contact reports it
    return {"href": stored.href, "etag": stored.etag, "addressbook": book, **fields.summary(card)}


async def _summaries(cards: Sequence[carddav.StoredCard], book: str) -> list[dict[str, Any]]:
    def run() -> list[dict[str, Any]]:
        return [found for found in (_summary(stored, book) for stored in cards) if found is not None]

    if sum(len(stored.text) for stored in cards) > _THREAD_PARSE_CHARS:
        return await anyio.to_thread.run_sync(run)
    return run()


def _encode_cursor(after: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": after}).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> str:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return str(data["after"])
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise InvalidArgument("cursor is not one this tool returned; start again without it") from exc


async def _conflict(ctx: ToolContext, path: str, what: str) -> Conflict:
    current = await carddav.current_etag(ctx, path)
    ctx.log.info("contact_conflict", href=path, refused=what, deleted=current is None)
    if current is None:
        return Conflict(f"The contact was deleted on the server since it was read; it was not {what}")
    return Conflict(f"The contact changed on the server since it was read; it was not {what}. "
                    "Read it again (get_contact) and retry with the new etag.", current_etag=current)


async def _stored_after_put(ctx: ToolContext, path: str, text: str, etag: str | None) -> carddav.StoredCard:
    # Sabre sends an ETag only when it stored the text exactly as sent; otherwise read back what it kept.
    if etag:
        return carddav.StoredCard(href=path, etag=etag, text=text)
    return await carddav.get_card(ctx, path)


def _check_list_change(name: str, change: dict[str, Any] | None) -> None:
    if change and "replace" in change and any(key in change for key in ("add", "remove", "update")):
        raise InvalidArgument(f"{name}: 'replace' gives the whole list; do not combine it with add/remove/update")


# --- address books -----------------------------------------------------------------------------


async def list_addressbooks(ctx: ToolContext, include_counts: bool = False) -> dict[str, Any]:
    books = await carddav.list_books(ctx)
    out = [book.as_dict() for book in books]
    if include_counts:
        counts: dict[str, int] = {}

        async def count(book: carddav.Book) -> None:
            counts[book.name] = await carddav.count_objects(ctx, book)

        async with anyio.create_task_group() as tg:
            for book in books:
                tg.start_soon(count, book)
        for item in out:
            item["count"] = counts[item["name"]]
    return {"addressbooks": out}


async def create_addressbook(ctx: ToolContext, name: str, display_name: str | None = None,
                             description: str | None = None) -> dict[str, Any]:
    book = await carddav.create_book(ctx, name, display_name or name, description)
    return book.as_dict()


async def delete_addressbook(ctx: ToolContext, name: str) -> dict[str, Any]:
    book = await carddav.writable_book(ctx, name)
    await carddav.delete_book(ctx, book)
    return {"deleted": True, "name": name}


# --- reading -----------------------------------------------------------------------------------


async def list_contacts(ctx: ToolContext, addressbook: str = DEFAULT_BOOK, limit: int = 50,
                        cursor: str | None = None) -> dict[str, Any]:
    after = _decode_cursor(cursor) if cursor else None
    book = await carddav.get_book(ctx, addressbook)
    # One PROPFIND for every href and etag (no card data), then one multiget for this page only.
    # Pages follow href order and the cursor is the last href shown, so additions and deletions
    # between pages never make a page skip or repeat a contact.
    objects = sorted(await carddav.list_objects(ctx, book.href))
    remaining = [href for href, _ in objects if after is None or href > after]
    page = remaining[:limit]
    cards = await carddav.multiget(ctx, book.href, page, carddav.SUMMARY_PROPS)
    order = {href: i for i, href in enumerate(page)}
    contacts = sorted(await _summaries(cards, book.name), key=lambda c: order.get(c["href"], len(order)))
    more = len(remaining) > len(page)
    return {"addressbook": book.name, "total": len(objects), "contacts": contacts,
            "next_cursor": _encode_cursor(page[-1]) if more and page else None}


async def get_contact(ctx: ToolContext, href: str, include_photo: bool = False, include_vcard: bool = False) -> dict[str, Any]:
    path, book = await carddav.contact_path(ctx, href)
    stored = await carddav.get_card(ctx, path)
    card = _parse_stored(stored.text, path)
    return _contact(stored, book, card, photo=include_photo, raw=include_vcard)


async def search_contacts(ctx: ToolContext, query: str, addressbook: str = DEFAULT_BOOK, all_addressbooks: bool = False,
                          fields_to_search: list[str] | None = None, limit: int = 25) -> dict[str, Any]:
    if not query.strip():
        raise InvalidArgument("query must not be blank")
    props = [prop for key in (fields_to_search or list(SEARCH_FIELDS)) for prop in SEARCH_FIELDS[key]]
    books = await carddav.list_books(ctx) if all_addressbooks else [await carddav.get_book(ctx, addressbook)]
    results: list[dict[str, Any]] = []
    # The server matches: one addressbook-query REPORT per address book, never a download of every card.
    for book in books:
        if len(results) >= limit:
            break
        found = await carddav.query(ctx, book.href, carddav.text_filter(query.strip(), props), limit=limit - len(results),
                                    props=carddav.SUMMARY_PROPS)
        results.extend((await _summaries(found, book.name))[: limit - len(results)])  # type: ignore[arg-type]
    return {"contacts": results, "addressbooks_searched": [book.name for book in books]}


# --- writing -----------------------------------------------------------------------------------


def _file_name(uid: str) -> str:
    # Nextcloud's clients name the object after the UID; anything not file-name safe gets a fresh name.
    return f"{uid}.vcf" if _SAFE_FILE_NAME.match(uid) else f"{uuid.uuid4()}.vcf"


async def create_contact(ctx: ToolContext, addressbook: str = DEFAULT_BOOK, uid: str | None = None, version: str = "3.0",
                         formatted_name: str | None = None, name: dict[str, str] | None = None, nickname: str | None = None,
                         organization: str | None = None, department: str | None = None, title: str | None = None,
                         emails: list[dict[str, Any]] | None = None, phones: list[dict[str, Any]] | None = None,
                         addresses: list[dict[str, Any]] | None = None, urls: list[dict[str, Any]] | None = None,
                         birthday: str | None = None, anniversary: str | None = None, notes: str | None = None,
                         categories: list[str] | None = None, photo: dict[str, Any] | None = None) -> dict[str, Any]:
    if photo and photo.get("remove"):
        raise InvalidArgument("photo.remove only makes sense on update")
    values = {"formatted_name": formatted_name, "name": name, "nickname": nickname, "organization": organization,
              "department": department, "title": title, "emails": emails, "phones": phones, "addresses": addresses,
              "urls": urls, "birthday": birthday, "anniversary": anniversary, "notes": notes, "categories": categories,
              "photo": photo}
    uid = uid.strip() if uid else str(uuid.uuid4())
    card = patch.new_card(values, uid=uid, version=version)
    text = vcard.serialize(card)
    book = await carddav.writable_book(ctx, addressbook)
    taken = await carddav.query(ctx, book.href, carddav.text_filter(uid, ["UID"], match_type="equals", collation="i;octet"),
                                with_data=False)
    if taken:
        raise Conflict(f"Address book {addressbook!r} already has a contact with UID {uid!r} ({taken[0][0]}); "
                       "nothing was overwritten. Update that contact instead, or create without a uid.",
                       uid=uid, existing_href=taken[0][0])
    path = book.href + _file_name(uid)
    try:
        etag = await carddav.put_card(ctx, path, text, create=True)
    except carddav.PreconditionFailed:
        raise Conflict(f"An object named {path.rsplit('/', 1)[-1]!r} already exists in {addressbook!r}; nothing was "
                       "overwritten. Create without a uid to get a fresh one.") from None
    except carddav.DuplicateUid:
        raise Conflict(f"Address book {addressbook!r} already has a contact with UID {uid!r}; nothing was overwritten.",
                       uid=uid) from None
    stored = await _stored_after_put(ctx, path, text, etag)
    return _contact(stored, book.name, _parse_stored(stored.text, path))


async def update_contact(ctx: ToolContext, href: str, etag: str, formatted_name: str | None = None,
                         name: dict[str, str] | None = None, nickname: str | None = None, organization: str | None = None,
                         department: str | None = None, title: str | None = None, emails: dict[str, Any] | None = None,
                         phones: dict[str, Any] | None = None, addresses: dict[str, Any] | None = None,
                         urls: dict[str, Any] | None = None, birthday: str | None = None, anniversary: str | None = None,
                         notes: str | None = None, categories: dict[str, Any] | None = None,
                         photo: dict[str, Any] | None = None) -> dict[str, Any]:
    changes = {"formatted_name": formatted_name, "name": name, "nickname": nickname, "organization": organization,
               "department": department, "title": title, "emails": emails, "phones": phones, "addresses": addresses,
               "urls": urls, "birthday": birthday, "anniversary": anniversary, "notes": notes, "categories": categories,
               "photo": photo}
    changes = {key: value for key, value in changes.items() if value is not None}
    if not changes:
        raise InvalidArgument("Nothing to change: give at least one field")
    for key in ("emails", "phones", "addresses", "urls"):
        _check_list_change(key, changes.get(key))
    path, book_name = await carddav.contact_path(ctx, href)
    await carddav.writable_book(ctx, book_name)
    expected = carddav.quoted_etag(etag)
    # Read-modify-write of the stored text: every field the caller did not name comes back unchanged.
    stored = await carddav.get_card(ctx, path)
    if stored.etag != expected:
        ctx.log.info("contact_conflict", href=path, refused="updated", stage="before write")
        raise Conflict("The contact changed on the server since it was read; it was not updated. "
                       "Read it again (get_contact) and retry with the new etag.", current_etag=stored.etag)
    card = _parse_stored(stored.text, path)
    if not patch.apply_changes(card, changes):
        return {**_contact(stored, book_name, card), "changed": False}
    text = vcard.serialize(card)
    try:
        new_etag = await carddav.put_card(ctx, path, text, if_match=expected)
    except carddav.PreconditionFailed:
        raise await _conflict(ctx, path, "updated") from None
    updated = await _stored_after_put(ctx, path, text, new_etag)
    return {**_contact(updated, book_name, _parse_stored(updated.text, path)), "changed": True}


async def delete_contact(ctx: ToolContext, href: str, etag: str | None = None) -> dict[str, Any]:
    path, book_name = await carddav.contact_path(ctx, href)
    await carddav.writable_book(ctx, book_name)
    try:
        await carddav.delete_card(ctx, path, carddav.quoted_etag(etag) if etag else None)
    except carddav.PreconditionFailed:
        raise await _conflict(ctx, path, "deleted") from None
    return {"deleted": True, "href": path}


# --- declarations ------------------------------------------------------------------------------

READ = ToolHints(read_only=True, destructive=False, idempotent=True)
CREATE = ToolHints(read_only=False, destructive=False, idempotent=False)
CHANGE = ToolHints(read_only=False, destructive=True, idempotent=False)
DELETE = ToolHints(read_only=False, destructive=True, idempotent=True)
LIMIT = {"type": "integer", "minimum": 1, "maximum": 200}
SEARCH_FIELD_NAMES = {"type": "array", "items": {"enum": list(SEARCH_FIELDS)}, "minItems": 1, "uniqueItems": True,
                      "description": "Which fields to match (default: all of name, nickname, email, phone, organization)"}


def _tool(name: str, title: str, handler: Callable[..., Any], access: Access, hints: ToolHints, description: str,
          input_schema: dict[str, Any], output_schema: dict[str, Any]) -> ToolSpec:
    return ToolSpec(name=name, title=title, handler=handler, access=access, hints=hints, description=description,
                    input_schema=input_schema, output_schema=output_schema)


TOOLS = [
    _tool("nc_contacts_list_addressbooks", "List address books", list_addressbooks, Access.READ, READ,
          "List the user's address books: name (use it in the other tools), display name, whether it is read-only "
          "(Nextcloud's system address book and 'recently contacted' are), and with include_counts the number of contacts.",
          s.obj({"include_counts": {"type": "boolean", "default": False,
                                    "description": "Also count the contacts (one extra request per address book)"}}),
          s.obj({"addressbooks": {"type": "array", "items": s.BOOK_OUT}}, ["addressbooks"])),
    _tool("nc_contacts_create_addressbook", "Create an address book", create_addressbook, Access.WRITE, CREATE,
          "Create an address book. Fails with a conflict if the name is taken.",
          s.obj({"name": s.NEW_BOOK_NAME, "display_name": s.text(200, "Shown in clients; defaults to the name"),
                 "description": s.text(1000)}, ["name"]),
          s.BOOK_OUT),
    _tool("nc_contacts_delete_addressbook", "Delete an address book", delete_addressbook, Access.WRITE, DELETE,
          "Delete an address book and every contact in it. Read-only address books are refused.",
          s.obj({"name": s.BOOK_NAME}, ["name"]),
          s.obj({"deleted": {"type": "boolean"}, "name": {"type": "string"}}, ["deleted", "name"])),
    _tool("nc_contacts_list_contacts", "List contacts", list_contacts, Access.READ, READ,
          "List the contacts of one address book, a page at a time (name, emails, phones, organisation, href, uid, etag). "
          "Pass next_cursor back as cursor for the next page.",
          s.obj({"addressbook": {**s.BOOK_NAME, "default": DEFAULT_BOOK}, "limit": {**LIMIT, "default": 50},
                 "cursor": s.text(2000, "next_cursor from the previous page")}),
          s.obj({"addressbook": {"type": "string"}, "total": {"type": "integer"},
                 "contacts": {"type": "array", "items": s.SUMMARY_OUT}, "next_cursor": {"type": ["string", "null"]}},
                ["addressbook", "total", "contacts", "next_cursor"])),
    _tool("nc_contacts_get_contact", "Get a contact", get_contact, Access.READ, READ,
          "Get every field of one contact by its href, including labels, types, photo details and all other "
          "(X-) properties. include_photo adds the photo as base64; include_vcard adds the stored vCard text.",
          s.obj({"href": s.HREF, "include_photo": {"type": "boolean", "default": False},
                 "include_vcard": {"type": "boolean", "default": False}}, ["href"]),
          s.CONTACT_OUT),
    _tool("nc_contacts_search_contacts", "Search contacts", search_contacts, Access.READ, READ,
          "Find contacts whose name, nickname, email, phone or organisation contains the query (case-insensitive). "
          "The server does the matching. Searches one address book (default 'contacts') or, with all_addressbooks, every one.",
          s.obj({"query": s.text(200, "Text to look for", 1), "addressbook": {**s.BOOK_NAME, "default": DEFAULT_BOOK},
                 "all_addressbooks": {"type": "boolean", "default": False}, "fields_to_search": SEARCH_FIELD_NAMES,
                 "limit": {**LIMIT, "default": 25}}, ["query"]),
          s.obj({"contacts": {"type": "array", "items": s.SUMMARY_OUT},
                 "addressbooks_searched": {"type": "array", "items": {"type": "string"}}},
                ["contacts", "addressbooks_searched"])),
    _tool("nc_contacts_create_contact", "Create a contact", create_contact, Access.WRITE, CREATE,
          "Create a contact from structured fields. formatted_name is derived from the name parts (or organisation) when "
          "omitted. A uid that is already used in the address book is refused, never overwritten.",
          s.obj({"addressbook": {**s.BOOK_NAME, "default": DEFAULT_BOOK},
                 "uid": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": r"^[^\x00-\x1f]+$",
                         "description": "The vCard UID; a new one is generated when omitted"},
                 "version": {"enum": ["3.0", "4.0"], "default": "3.0",
                             "description": "vCard version to write (Nextcloud stores 3.0)"},
                 **s.CONTACT_FIELDS_IN,
                 "emails": s.array(s.EMAIL_IN), "phones": s.array(s.PHONE_IN), "addresses": s.array(s.ADDRESS_IN, 20),
                 "urls": s.array(s.URL_IN), "categories": s.array(s.text(100, "", 1)), "photo": s.PHOTO_IN}),
          s.CONTACT_OUT),
    _tool("nc_contacts_update_contact", "Update a contact", update_contact, Access.WRITE, CHANGE,
          "Change only the fields given; everything else on the card (photo, addresses, labels, unknown properties) is kept "
          "exactly. Single fields: a value sets it, '' removes it. Emails/phones/urls/addresses: add, remove or update single "
          "items (matched by current value, addresses by index) or replace the whole list. The etag from your last read is "
          "required: if the contact changed meanwhile nothing is written and a conflict with the current etag is returned.",
          s.obj({"href": s.HREF, "etag": s.ETAG, **s.CONTACT_FIELDS_IN,
                 "emails": s.list_change(s.EMAIL_IN, s.EMAIL_MATCH, "emails"),
                 "phones": s.list_change(s.PHONE_IN, s.PHONE_MATCH, "phones"),
                 "addresses": s.list_change(s.ADDRESS_IN, s.ADDRESS_MATCH, "addresses"),
                 "urls": s.list_change(s.URL_IN, s.URL_MATCH, "urls"),
                 "categories": s.CATEGORIES_CHANGE, "photo": s.PHOTO_IN}, ["href", "etag"]),
          s.UPDATED_OUT),
    _tool("nc_contacts_delete_contact", "Delete a contact", delete_contact, Access.WRITE, DELETE,
          "Delete a contact by its href. Give its etag to refuse the deletion if the contact changed since you read it.",
          s.obj({"href": s.HREF, "etag": s.ETAG}, ["href"]),
          s.obj({"deleted": {"type": "boolean"}, "href": {"type": "string"}}, ["deleted", "href"])),
]
