"""Reading a :class:`~ncmcp_contacts.vcard.Card` as the structured fields the tools return.

Both vCard 3.0 and 4.0 spellings are understood (TYPE=pref or PREF=1, ``TYPE="home,voice"``,
``tel:`` URIs, ``data:`` photos, Apple's ``itemN.X-ABLabel`` labels and omitted birth years, the
various anniversary properties). Every property that is not mapped to a field is listed in
``other_properties`` so "all fields" really means all.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from vobject.base import ContentLine

from ncmcp_contacts.vcard import Card, param_values, split_text, structured, unescape

NAME_PARTS = ("family", "given", "additional", "prefix", "suffix")
ADDRESS_PARTS = ("po_box", "extended", "street", "locality", "region", "postal_code", "country")
# Where clients keep an anniversary: vCard 4.0, then the X- spellings of 3.0-era clients.
ANNIVERSARY_NAMES = ("ANNIVERSARY", "X-ANNIVERSARY", "X-MS-ANNIVERSARY", "X-EVOLUTION-ANNIVERSARY")
APPLE_ANNIVERSARY = "anniversary"
LABEL = "X-ABLABEL"
# Types that carry no meaning for a reader: "pref" is reported as its own flag.
_HIDDEN_TYPES = {"pref", "internet", "x400"}
_APPLE_LABEL = re.compile(r"^_\$!<(.*)>!\$_$")
_DATE = re.compile(r"^(?P<y>\d{4}|--)-?(?P<m>\d{2})-?(?P<d>\d{2})(?:T.*)?$")
_IMAGE_TYPES = {"JPEG": "image/jpeg", "JPG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif", "WEBP": "image/webp",
                "BMP": "image/bmp", "TIFF": "image/tiff"}


def is_pref(line: ContentLine) -> bool:
    if any(value.lower() == "pref" for value in param_values(line, "TYPE")):
        return True
    return any(value.strip() == "1" for value in param_values(line, "PREF"))


def types_of(line: ContentLine) -> list[str]:
    seen: list[str] = []
    for value in param_values(line, "TYPE"):
        low = value.lower()
        if low not in _HIDDEN_TYPES and low not in seen:
            seen.append(low)
    return seen


def label_line(card: Card, line: ContentLine) -> ContentLine | None:
    return next((other for other in card.in_group(line.group) if other.name == LABEL), None)


def label_of(card: Card, line: ContentLine) -> str | None:
    found = label_line(card, line)
    if found is None:
        return None
    text = unescape(found.value)
    match = _APPLE_LABEL.match(text)
    return match.group(1) if match else text


def email_value(line: ContentLine) -> str:
    value = unescape(line.value).strip()
    return value[7:] if value.lower().startswith("mailto:") else value


def phone_value(line: ContentLine) -> str:
    # vCard 4.0 stores TEL as a tel: URI by default (VALUE=uri); 3.0 as text.
    value = unescape(line.value).strip() if not _is_uri(line) else line.value.strip()
    return value[4:] if value.lower().startswith("tel:") else value


def url_value(line: ContentLine) -> str:
    return unescape(line.value).strip()


def _is_uri(line: ContentLine) -> bool:
    return any(value.lower() == "uri" for value in param_values(line, "VALUE"))


def address_value(line: ContentLine) -> dict[str, str]:
    parts = structured(line.value, len(ADDRESS_PARTS))
    return {key: unescape(part) for key, part in zip(ADDRESS_PARTS, parts, strict=False)}


def name_value(line: ContentLine) -> dict[str, str]:
    parts = structured(line.value, len(NAME_PARTS))
    return {key: unescape(part) for key, part in zip(NAME_PARTS, parts, strict=False)}


def org_value(line: ContentLine) -> tuple[str, str]:
    parts = structured(line.value, 2)
    return unescape(parts[0]), "; ".join(unescape(p) for p in parts[1:] if p)


def date_value(line: ContentLine) -> str:
    """``YYYY-MM-DD``, or ``--MM-DD`` when the year is unknown; anything else is returned as written."""
    raw = line.value.strip()
    match = _DATE.match(raw)
    if not match:
        return unescape(raw)
    year = match.group("y")
    if year == "--" or param_values(line, "X-APPLE-OMIT-YEAR"):
        return f"--{match.group('m')}-{match.group('d')}"
    return f"{year}-{match.group('m')}-{match.group('d')}"


def anniversary_line(card: Card) -> ContentLine | None:
    for name in ANNIVERSARY_NAMES:
        line = card.first(name)
        if line is not None:
            return line
    # Apple: itemN.X-ABDATE with the label _$!<Anniversary>!$_
    for line in card.all("X-ABDATE"):
        if (label_of(card, line) or "").lower() == APPLE_ANNIVERSARY:
            return line
    return None


def photo_info(line: ContentLine, *, with_data: bool) -> dict[str, Any]:
    """A PHOTO line as {kind, mime_type, size, url | data}. ``data`` is base64 (only on request)."""
    raw = line.value.strip()
    encoding = [value.lower() for value in param_values(line, "ENCODING")]
    if encoding and encoding[0] in ("b", "base64"):
        kinds = [value for value in param_values(line, "TYPE")]
        mime = _IMAGE_TYPES.get(kinds[0].upper(), kinds[0].lower()) if kinds else "application/octet-stream"
        if "/" not in mime:
            mime = f"image/{mime}"
        return _inline(raw, mime, with_data)
    if raw.lower().startswith("data:"):
        header, _, payload = raw[5:].partition(",")
        mime = header.split(";")[0] or "application/octet-stream"
        return _inline(payload, mime, with_data)
    return {"kind": "url", "url": unescape(raw)}


def _inline(b64: str, mime: str, with_data: bool) -> dict[str, Any]:
    b64 = "".join(b64.split())  # folded or indented (Outlook) base64
    try:
        size = len(base64.b64decode(b64, validate=False))
    except (binascii.Error, ValueError):
        size = 0
    info: dict[str, Any] = {"kind": "inline", "mime_type": mime, "size": size}
    if with_data:
        info["data"] = b64
    return info


def _first_text(card: Card, name: str) -> str | None:
    line = card.first(name)
    return None if line is None else unescape(line.value)


def uid_of(card: Card) -> str | None:
    line = card.first("UID")
    return None if line is None else unescape(line.value).strip()


def summary(card: Card) -> dict[str, Any]:
    """The few fields a list or search result shows."""
    out: dict[str, Any] = {"uid": uid_of(card), "formatted_name": _first_text(card, "FN") or ""}
    nickname = card.first("NICKNAME")
    if nickname is not None:
        out["nickname"] = ", ".join(split_text(nickname.value))
    org = card.first("ORG")
    if org is not None and org_value(org)[0]:
        out["organization"] = org_value(org)[0]
    out["emails"] = [email_value(line) for line in card.all("EMAIL")]
    out["phones"] = [phone_value(line) for line in card.all("TEL")]
    return out


def full(card: Card, *, with_photo_data: bool = False) -> dict[str, Any]:
    """Every field; unmapped properties are listed in ``other_properties`` with their raw value."""
    consumed: set[int] = set()

    def take(line: ContentLine | None) -> ContentLine | None:
        if line is not None:
            consumed.add(id(line))
            label = label_line(card, line) if line.group else None
            if label is not None:
                consumed.add(id(label))
        return line

    for name in ("VERSION", "UID", "FN"):
        take(card.first(name))
    out: dict[str, Any] = {"uid": uid_of(card), "version": card.version, "formatted_name": _first_text(card, "FN") or ""}
    if (line := take(card.first("N"))) is not None:
        out["name"] = name_value(line)
    if (line := take(card.first("NICKNAME"))) is not None:
        out["nickname"] = ", ".join(split_text(line.value))
    if (line := take(card.first("ORG"))) is not None:
        organization, department = org_value(line)
        out["organization"] = organization
        if department:
            out["department"] = department
    if (line := take(card.first("TITLE"))) is not None:
        out["title"] = unescape(line.value)
    out["emails"] = [_item(card, take(line), email_value(line)) for line in card.all("EMAIL")]
    out["phones"] = [_item(card, take(line), phone_value(line)) for line in card.all("TEL")]
    out["addresses"] = [{"index": i, **address_value(line), **_item(card, take(line), None)}
                        for i, line in enumerate(card.all("ADR"))]
    out["urls"] = [_item(card, take(line), url_value(line)) for line in card.all("URL")]
    if (line := take(card.first("BDAY"))) is not None:
        out["birthday"] = date_value(line)
    if (line := take(anniversary_line(card))) is not None:
        out["anniversary"] = date_value(line)
    if (line := take(card.first("NOTE"))) is not None:
        out["notes"] = unescape(line.value)
    out["categories"] = [value for line in card.all("CATEGORIES") if take(line) for value in split_text(line.value) if value]
    if (line := take(card.first("PHOTO"))) is not None:
        out["photo"] = photo_info(line, with_data=with_photo_data)
    # Everything else (X- properties, IMPP, RELATED, GEO, a second NOTE, ...) with its raw value.
    out["other_properties"] = [
        {"name": line.name, **({"group": line.group} if line.group else {}),
         **({"params": {k: list(v) for k, v in line.params.items()}} if line.params else {}), "value": line.value}
        for line in card.lines if id(line) not in consumed
    ]
    return out


def _item(card: Card, line: ContentLine | None, value: str | None) -> dict[str, Any]:
    assert line is not None
    item: dict[str, Any] = {} if value is None else {"value": value}
    item["types"] = types_of(line)
    item["pref"] = is_pref(line)
    label = label_of(card, line)
    if label is not None:
        item["label"] = label
    return item
