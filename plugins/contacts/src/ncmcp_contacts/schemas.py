"""JSON Schemas of the Contacts tools (inputs and outputs)."""

from __future__ import annotations

from typing import Any


def obj(properties: dict[str, Any], required: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required or [], "additionalProperties": False, **extra}


def array(items: dict[str, Any], max_items: int = 50) -> dict[str, Any]:
    return {"type": "array", "items": items, "maxItems": max_items}


def text(max_length: int, description: str = "", min_length: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "string", "maxLength": max_length}
    if min_length:
        out["minLength"] = min_length
    if description:
        out["description"] = description
    return out


# --- inputs ------------------------------------------------------------------------------------

BOOK_NAME = {"type": "string", "minLength": 1, "maxLength": 200,
             "description": "The address book's name (its URI segment from list_addressbooks), e.g. 'contacts'"}
NEW_BOOK_NAME = {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,63}$",
                 "description": "URI segment of the new address book: lower-case letters, digits, '-' and '_'"}
HREF = {**text(1000, "The contact's href as returned by list, search, get or create", 1), "pattern": r"^[^\x00-\x1f\x7f]+$"}
# An ETag travels in an HTTP header: visible ASCII only (RFC 9110 etagc), so nothing else can reach httpx.
ETAG = {**text(200, "The etag from your last read of this contact", 1), "pattern": r"^[\x21-\x7e]+$"}
TYPE_TOKEN = {"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9-]{0,39}$"}
TYPES = {**array(TYPE_TOKEN, 10), "description": "vCard types, e.g. work, home, cell, voice, fax, text; [] for none"}
PREF = {"type": "boolean", "description": "Preferred item of its kind (setting it clears it on the others)"}
LABEL = text(100, "A custom label (Apple-style itemN.X-ABLabel), e.g. 'Assistant'; '' removes it on update")
DATE = {"type": "string", "pattern": r"^(\d{4}|-)-\d{2}-\d{2}$|^$",
        "description": "YYYY-MM-DD, or --MM-DD when the year is unknown ('' removes it on update)"}
NAME_PARTS = ("family", "given", "additional", "prefix", "suffix")
NAME_IN = obj({key: text(200) for key in NAME_PARTS},
              description="Structured name parts (N); on update only the parts given change")
ADDRESS_PARTS = {key: text(500) for key in ("street", "locality", "region", "postal_code", "country", "po_box", "extended")}

EMAIL_IN = obj({"value": text(254, "The email address", 3), "types": TYPES, "pref": PREF, "label": LABEL}, ["value"])
PHONE_IN = obj({"value": text(64, "The phone number as it should be shown", 1), "types": TYPES, "pref": PREF, "label": LABEL},
               ["value"])
URL_IN = obj({"value": text(2000, "The URL", 1), "types": TYPES, "pref": PREF, "label": LABEL}, ["value"])
ADDRESS_IN = obj({**ADDRESS_PARTS, "types": TYPES, "pref": PREF, "label": LABEL})

PHOTO_IN = {
    "description": "A photo as base64 data with its MIME type, an http(s) URL, or {\"remove\": true} on update",
    "oneOf": [
        obj({"data": {"type": "string", "minLength": 4, "maxLength": 3_000_000},
             "mime_type": {"type": "string", "enum": ["image/jpeg", "image/png", "image/gif", "image/webp"]}},
            ["data", "mime_type"]),
        obj({"url": text(2000, "", 8)}, ["url"]),
        obj({"remove": {"const": True}}, ["remove"]),
    ],
}


def _update(match: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    return obj({**match, **item["properties"]}, list(match))


def list_change(item: dict[str, Any], match: dict[str, Any], what: str) -> dict[str, Any]:
    key, matcher = next(iter(match.items()))
    return obj({
        "add": {**array(item), "description": f"{what} to add"},
        "remove": {**array(matcher), "description": f"{what} to remove, matched by {key}"},
        "update": {**array(_update(match, item)),
                   "description": f"{what} to change, matched by {key}; only the keys given change"},
        "replace": {**array(item), "description": f"The complete new list of {what} (cannot be combined with add/remove/update)"},
    }, description=f"Changes to the {what}")


EMAIL_MATCH = {"match": text(254, "The current email address (case-insensitive)", 1)}
PHONE_MATCH = {"match": text(64, "The current number (compared by its digits)", 1)}
URL_MATCH = {"match": text(2000, "The current URL", 1)}
ADDRESS_MATCH = {"match": {"type": "integer", "minimum": 0, "description": "The address's index from get_contact"}}

CATEGORIES_CHANGE = obj({"add": array(text(100, "", 1)), "remove": array(text(100, "", 1)),
                         "replace": array(text(100, "", 1))}, description="Changes to the categories (groups)")

CONTACT_FIELDS_IN: dict[str, Any] = {
    "formatted_name": text(300, "The name as displayed (FN); derived from the name parts when omitted on create"),
    "name": NAME_IN,
    "nickname": text(200, "Nickname ('' removes it on update)"),
    "organization": text(300, "Organisation / company ('' removes it on update)"),
    "department": text(300, "Department within the organisation"),
    "title": text(300, "Job title ('' removes it on update)"),
    "birthday": DATE,
    "anniversary": DATE,
    "notes": text(20000, "Free-text notes ('' removes them on update)"),
}

# --- outputs -----------------------------------------------------------------------------------

ITEM_OUT = {"type": "object", "properties": {"value": {"type": "string"}, "types": {"type": "array", "items": {"type": "string"}},
                                              "pref": {"type": "boolean"}, "label": {"type": "string"}},
            "required": ["value", "types", "pref"]}
ADDRESS_OUT = {"type": "object", "properties": {"index": {"type": "integer"}, **{k: {"type": "string"} for k in ADDRESS_PARTS},
                                                 "types": {"type": "array", "items": {"type": "string"}},
                                                 "pref": {"type": "boolean"}, "label": {"type": "string"}},
               "required": ["index", "types", "pref"]}
PHOTO_OUT = {"type": "object", "properties": {"kind": {"enum": ["inline", "url"]}, "mime_type": {"type": "string"},
                                               "size": {"type": "integer", "description": "bytes"}, "url": {"type": "string"},
                                               "data": {"type": "string", "description": "base64 (with include_photo)"}},
             "required": ["kind"]}
IDENTITY = {
    "href": {"type": "string", "description": "Address of the contact; pass it to get/update/delete"},
    "uid": {"type": ["string", "null"], "description": "The vCard UID (null if the card has none)"},
    "etag": {"type": "string", "description": "Pass it back to update/delete to detect concurrent changes"},
    "addressbook": {"type": "string", "description": "Name of the address book holding the contact"},
}
SUMMARY_OUT = {"type": "object", "properties": {
    **IDENTITY, "formatted_name": {"type": "string"}, "nickname": {"type": "string"}, "organization": {"type": "string"},
    "emails": {"type": "array", "items": {"type": "string"}}, "phones": {"type": "array", "items": {"type": "string"}},
}, "required": ["href", "uid", "etag", "addressbook", "formatted_name"]}
CONTACT_OUT = {"type": "object", "properties": {
    **IDENTITY,
    "version": {"type": "string", "description": "vCard version as stored (3.0 or 4.0)"},
    "formatted_name": {"type": "string"},
    "name": {"type": "object", "properties": {k: {"type": "string"} for k in NAME_PARTS}},
    "nickname": {"type": "string"}, "organization": {"type": "string"}, "department": {"type": "string"},
    "title": {"type": "string"},
    "emails": {"type": "array", "items": ITEM_OUT}, "phones": {"type": "array", "items": ITEM_OUT},
    "addresses": {"type": "array", "items": ADDRESS_OUT}, "urls": {"type": "array", "items": ITEM_OUT},
    "birthday": {"type": "string"}, "anniversary": {"type": "string"}, "notes": {"type": "string"},
    "categories": {"type": "array", "items": {"type": "string"}},
    "photo": PHOTO_OUT,
    "other_properties": {"type": "array", "description": "Every other property, raw (X- properties, IMPP, RELATED, ...)",
                         "items": {"type": "object", "properties": {
                             "name": {"type": "string"}, "group": {"type": "string"},
                             "params": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}},
                             "value": {"type": "string"}}, "required": ["name", "value"]}},
    "vcard": {"type": "string", "description": "The stored vCard text (with include_vcard)"},
}, "required": ["href", "uid", "etag", "addressbook", "formatted_name"]}
CHANGED = {"type": "boolean", "description": "false when the card already had these values (nothing was written)"}
UPDATED_OUT = {**CONTACT_OUT, "properties": {**CONTACT_OUT["properties"], "changed": CHANGED},
               "required": [*CONTACT_OUT["required"], "changed"]}
BOOK_OUT = {"type": "object", "properties": {
    "name": {"type": "string"}, "href": {"type": "string"}, "display_name": {"type": "string"},
    "description": {"type": "string"}, "read_only": {"type": "boolean"},
    "ctag": {"type": "string", "description": "Changes whenever a contact in the book changes"},
    "count": {"type": "integer", "description": "Number of contacts (with include_counts)"},
}, "required": ["name", "href", "display_name", "read_only"]}
