"""Changing a stored card field by field, leaving every other line exactly as it was.

An update is a read-modify-write of the stored text: the caller's changes are applied to the lines
of the card the server holds, so PHOTO, ADR, N, grouped properties, X- properties and anything this
module does not know come back untouched. A changed line keeps its group and the parameters the
change does not concern. New lines are written in the card's own version (3.0 or 4.0).
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from ncmcp import InvalidArgument
from vobject.base import ContentLine

from ncmcp_contacts import fields
from ncmcp_contacts.vcard import Card, escape, join_structured, new_line, param_values, serialize, structured

PRODID = "-//ncmcp//contacts//EN"
MAX_PHOTO_BYTES = 2 * 1024 * 1024
_DATE_IN = re.compile(r"^(?:(?P<y>\d{4})|-)-(?P<m>\d{2})-(?P<d>\d{2})$")
_GROUP = re.compile(r"^item(\d+)$", re.IGNORECASE)
_URL_SCHEMES = ("http://", "https://")
_MIME_TO_TYPE = {"image/jpeg": "JPEG", "image/png": "PNG", "image/gif": "GIF", "image/webp": "WEBP"}
APPLE_NO_YEAR = "1604"  # the leap year Apple (and Nextcloud) write when a birthday has no year


class ListKind:
    """How one multi-valued field maps to vCard lines and how its items are matched."""

    def __init__(self, field: str, prop: str, read: Callable[[ContentLine], Any], key: Callable[[str], str]) -> None:
        self.field = field
        self.prop = prop
        self.read = read
        self.key = key


def _digits(value: str) -> str:
    return re.sub(r"[^0-9]", "", value)


LISTS = {
    "emails": ListKind("emails", "EMAIL", fields.email_value, lambda v: v.strip().casefold()),
    "phones": ListKind("phones", "TEL", fields.phone_value, _digits),
    "urls": ListKind("urls", "URL", fields.url_value, lambda v: v.strip().rstrip("/")),
    "addresses": ListKind("addresses", "ADR", fields.address_value, str),
}


class Patcher:
    """Applies changes to ``card`` in place."""

    def __init__(self, card: Card) -> None:
        self.card = card
        self.v4 = card.is_v4

    # --- single-valued fields ------------------------------------------------------------------

    def set_formatted_name(self, text: str) -> None:
        if not text.strip():
            raise InvalidArgument("formatted_name cannot be empty: every vCard needs one")
        self._set_first("FN", escape(text), after=("UID", "VERSION"))

    def set_name(self, parts: Mapping[str, str]) -> None:
        line = self.card.first("N")
        raw = structured(line.value if line is not None else "", len(fields.NAME_PARTS))
        for i, key in enumerate(fields.NAME_PARTS):
            if key in parts:
                raw[i] = escape(parts[key])
        self._set_first("N", join_structured(raw), after=("FN", "UID", "VERSION"))

    def set_text(self, prop: str, text: str) -> None:
        """TITLE, NOTE, NICKNAME: the first line's value; an empty string removes the property."""
        if text == "":
            self._remove_all(prop)
        else:
            self._set_first(prop, escape(text))

    def set_organization(self, organization: str | None, department: str | None) -> None:
        line = self.card.first("ORG")
        raw = structured(line.value if line is not None else "", 2)
        if organization is not None:
            raw[0] = escape(organization)
        if department is not None:
            raw[1:] = [escape(department)] if department else []
        if not any(raw):
            self._remove_all("ORG")
        else:
            self._set_first("ORG", join_structured(raw))

    def set_birthday(self, value: str) -> None:
        self._set_date(self.card.first("BDAY"), "BDAY", value)

    def set_anniversary(self, value: str) -> None:
        self._set_date(fields.anniversary_line(self.card), "ANNIVERSARY", value)

    def _set_date(self, line: ContentLine | None, prop: str, value: str) -> None:
        if value == "":
            if line is not None:
                self._remove_line(line)
            return
        match = _DATE_IN.match(value)
        if not match:
            raise InvalidArgument(f"{value!r} is not a date: use YYYY-MM-DD, or --MM-DD when the year is unknown")
        year, month, day = match.group("y"), match.group("m"), match.group("d")
        try:
            datetime(int(year or 2000), int(month), int(day))
        except ValueError as exc:
            raise InvalidArgument(f"{value!r} is not a valid date") from exc
        params = {} if line is None else {k: v for k, v in line.params.items() if k not in ("X-APPLE-OMIT-YEAR", "VALUE")}
        if line is not None and any(v.lower() == "date" for v in param_values(line, "VALUE")):
            params["VALUE"] = ["date"]
        basic = self.v4 and (line is None or line.name in ("BDAY", "ANNIVERSARY"))
        if year:
            text = f"{year}{month}{day}" if basic else f"{year}-{month}-{day}"
        elif basic:
            text = f"--{month}{day}"
        else:
            # vCard 3.0 has no year-less date: write Apple's convention, which Nextcloud reads too.
            text = f"{APPLE_NO_YEAR}-{month}-{day}"
            params["X-APPLE-OMIT-YEAR"] = [APPLE_NO_YEAR]
        if line is None:
            self.card.insert_after(self._anchor(prop), new_line(prop, text, params=params))
        else:
            line.value = text
            line.params = params

    def set_photo(self, photo: Mapping[str, Any]) -> None:
        existing = self.card.all("PHOTO")
        if photo.get("remove"):
            for line in existing:
                self._remove_line(line)
            return
        if "url" in photo:
            url = photo["url"].strip()
            if not url.startswith(_URL_SCHEMES) or any(c in url for c in "\r\n "):
                raise InvalidArgument("photo.url must be an http(s) URL")
            line = new_line("PHOTO", url) if self.v4 else new_line("PHOTO", url, params={"VALUE": ["uri"]})
        else:
            mime = photo.get("mime_type", "").lower()
            if mime not in _MIME_TO_TYPE:
                raise InvalidArgument(f"photo.mime_type must be one of {sorted(_MIME_TO_TYPE)}")
            data = "".join(photo.get("data", "").split())
            try:
                size = len(base64.b64decode(data, validate=True))
            except (binascii.Error, ValueError) as exc:
                raise InvalidArgument("photo.data must be base64") from exc
            if not size or size > MAX_PHOTO_BYTES:
                raise InvalidArgument(f"photo.data must decode to 1 byte .. {MAX_PHOTO_BYTES // 1024} KiB")
            if self.v4:
                line = new_line("PHOTO", f"data:{mime};base64,{data}")
            else:
                line = new_line("PHOTO", data, params={"ENCODING": ["b"], "TYPE": [_MIME_TO_TYPE[mime]]})
        anchor = existing[0] if existing else self._anchor("PHOTO")
        if existing:
            line.group = existing[0].group
        self.card.insert_after(anchor, line)
        for old in existing:
            self.card.remove(old)

    def change_categories(self, change: Mapping[str, list[str]]) -> None:
        lines = self.card.all("CATEGORIES")
        current = [value for line in lines for value in fields.split_text(line.value) if value]
        wanted = list(change["replace"]) if "replace" in change else list(current)
        for value in change.get("add", []):
            if value.casefold() not in {v.casefold() for v in wanted}:
                wanted.append(value)
        drop = {value.casefold() for value in change.get("remove", [])}
        wanted = [value for value in wanted if value.casefold() not in drop]
        if wanted == current:
            return
        if not wanted:
            self._remove_all("CATEGORIES")
            return
        self._set_first("CATEGORIES", ",".join(escape(value) for value in wanted))
        for extra in self.card.all("CATEGORIES")[1:]:
            self.card.remove(extra)

    # --- multi-valued fields -------------------------------------------------------------------

    def change_list(self, kind_name: str, change: Mapping[str, Any]) -> None:
        """``{"replace": [...]}`` or any of ``add`` / ``remove`` / ``update`` (applied in that order: update, remove, add)."""
        kind = LISTS[kind_name]
        if "replace" in change:
            for line in self.card.all(kind.prop):
                self._remove_line(line)
            for item in change["replace"]:
                self.add_item(kind, item)
            return
        for update in change.get("update", []):
            for line in self._match(kind, update["match"]):
                self._update_item(kind, line, update)
        for match in change.get("remove", []):
            for line in self._match(kind, match):
                self._remove_line(line)
        for item in change.get("add", []):
            self.add_item(kind, item)

    def add_item(self, kind: ListKind, item: Mapping[str, Any]) -> None:
        line = new_line(kind.prop, self._encode_value(kind, None, item))
        self._apply_types(line, item.get("types", []), bool(item.get("pref", False)))
        anchor = self._anchor(kind.prop)
        new = [line]
        if item.get("label"):
            line.group = self._new_group()
            new.append(new_line(fields.LABEL, escape(item["label"]), group=line.group))
        self.card.insert_after(anchor, *new)
        if item.get("pref"):
            self._clear_pref(kind.prop, keep=line)

    def _update_item(self, kind: ListKind, line: ContentLine, update: Mapping[str, Any]) -> None:
        if "value" in update or any(key in update for key in fields.ADDRESS_PARTS):
            line.value = self._encode_value(kind, line, update)
        if "types" in update or "pref" in update:
            self._apply_types(line, update.get("types"), update.get("pref"))
            if update.get("pref"):
                self._clear_pref(kind.prop, keep=line)
        if "label" in update:
            self._set_label(line, update["label"])

    def _match(self, kind: ListKind, match: Any) -> list[ContentLine]:
        lines = self.card.all(kind.prop)
        if kind.field == "addresses":
            if not isinstance(match, int) or not 0 <= match < len(lines):
                raise InvalidArgument(f"no address at index {match!r}; the contact has {len(lines)} (indexes from get_contact)")
            return [lines[match]]
        key = kind.key(str(match))
        found = [line for line in lines if key and kind.key(kind.read(line)) == key]
        if not found:
            have = ", ".join(repr(kind.read(line)) for line in lines) or "none"
            raise InvalidArgument(f"the contact has no {kind.field[:-1]} {match!r} (it has: {have})")
        return found

    def _encode_value(self, kind: ListKind, line: ContentLine | None, item: Mapping[str, Any]) -> str:
        if kind.field == "addresses":
            raw = structured(line.value if line is not None else "", len(fields.ADDRESS_PARTS))
            for i, key in enumerate(fields.ADDRESS_PARTS):
                if key in item:
                    raw[i] = escape(item[key])
            if line is None and not any(raw):
                raise InvalidArgument("an address needs at least one of " + ", ".join(fields.ADDRESS_PARTS))
            return join_structured(raw)
        value = str(item.get("value", "")).strip()
        if not value or any(c in value for c in "\r\n"):
            raise InvalidArgument(f"{kind.field[:-1]} value must be one non-empty line")
        if kind.field == "emails":
            if "@" not in value or " " in value:
                raise InvalidArgument(f"{value!r} is not an email address")
            return escape(value)
        if kind.field == "urls":
            if " " in value:
                raise InvalidArgument(f"{value!r} is not a URL")
            return value  # a URI value: written as is, never backslash-escaped
        if line is not None and any(v.lower() == "uri" for v in param_values(line, "VALUE")):
            return "tel:" + re.sub(r"\s+", "-", value.removeprefix("tel:"))
        return escape(value)

    def _apply_types(self, line: ContentLine, types: list[str] | None, pref: bool | None) -> None:
        old = param_values(line, "TYPE")
        want_pref = fields.is_pref(line) if pref is None else pref
        if types is None:
            values = [v for v in old if v.lower() != "pref"]
        else:
            hidden = [v for v in old if v.lower() in ("internet", "x400")]
            values = hidden + [t.lower() if self.v4 else t.upper() for t in types if t.lower() != "pref"]
        if want_pref and not self.v4:
            values.append("PREF")
        unique: list[str] = []
        for value in values:
            if value.lower() not in {u.lower() for u in unique}:
                unique.append(value)
        if unique:
            line.params["TYPE"] = unique
        else:
            line.params.pop("TYPE", None)
        line.params.pop("PREF", None)
        if want_pref and self.v4:
            line.params["PREF"] = ["1"]

    def _clear_pref(self, prop: str, keep: ContentLine) -> None:
        for line in self.card.all(prop):
            if line is not keep and fields.is_pref(line):
                self._apply_types(line, None, False)

    def _set_label(self, line: ContentLine, label: str) -> None:
        existing = fields.label_line(self.card, line)
        if not label:
            if existing is not None:
                self.card.remove(existing)
            return
        if existing is not None:
            existing.value = escape(label)
            return
        if line.group is None:
            line.group = self._new_group()
        self.card.insert_after(line, new_line(fields.LABEL, escape(label), group=line.group))

    # --- line plumbing -------------------------------------------------------------------------

    def _set_first(self, prop: str, value: str, after: tuple[str, ...] = ()) -> None:
        line = self.card.first(prop)
        if line is not None:
            line.value = value
            return
        anchor = next((found for name in after if (found := self.card.first(name)) is not None), None)
        self.card.insert_after(anchor or self._anchor(prop), new_line(prop, value))

    def _remove_all(self, prop: str) -> None:
        for line in self.card.all(prop):
            self._remove_line(line)

    def _remove_line(self, line: ContentLine) -> None:
        """Remove a line; a group left with only Apple label/metadata lines goes with it."""
        self.card.remove(line)
        rest = self.card.in_group(line.group)
        if rest and all(other.name.startswith("X-AB") for other in rest):
            for other in rest:
                self.card.remove(other)

    def _anchor(self, prop: str) -> ContentLine | None:
        """Where a new ``prop`` line goes: after the last line of that property (and its group)."""
        groups = {line.group.lower() for line in self.card.all(prop) if line.group}
        anchor = None
        for line in self.card.lines:
            if line.name == prop or (line.group and line.group.lower() in groups):
                anchor = line
        return anchor

    def _new_group(self) -> str:
        numbers = [int(m.group(1)) for line in self.card.lines if line.group and (m := _GROUP.match(line.group))]
        return f"item{max(numbers, default=0) + 1}"

    def upgrade_from_2_1(self) -> None:
        """A vCard 2.1 card is written back as 3.0, the oldest version Nextcloud stores.

        Parsing already made its 2.1-isms explicit (bare types became TYPE=, quoted-printable values
        became escaped text); what is left is the version line and 2.1's spelling of base64.
        """
        if not self.card.version.startswith("2"):
            return
        version = self.card.first("VERSION")
        if version is not None:
            version.value = "3.0"
        for line in self.card.lines:
            if [v.upper() for v in line.params.get("ENCODING", [])] == ["BASE64"]:
                line.params["ENCODING"] = ["b"]

    def touch_rev(self) -> None:
        line = self.card.first("REV")
        if line is not None:
            line.value = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            line.params.pop("VALUE", None)


SCALARS = ("formatted_name", "name", "nickname", "organization", "department", "title", "birthday", "anniversary", "notes")


def apply_changes(card: Card, changes: Mapping[str, Any]) -> bool:
    """Apply the update tool's arguments to ``card``; return whether the card text changed."""
    before = serialize(card)
    patcher = Patcher(card)
    _apply(patcher, changes)
    if serialize(card) == before:
        return False
    patcher.upgrade_from_2_1()
    patcher.touch_rev()
    return True


def _apply(patcher: Patcher, changes: Mapping[str, Any]) -> None:
    if changes.get("formatted_name") is not None:
        patcher.set_formatted_name(changes["formatted_name"])
    if changes.get("name"):
        patcher.set_name(changes["name"])
    if changes.get("nickname") is not None:
        patcher.set_text("NICKNAME", changes["nickname"])
    if changes.get("organization") is not None or changes.get("department") is not None:
        patcher.set_organization(changes.get("organization"), changes.get("department"))
    if changes.get("title") is not None:
        patcher.set_text("TITLE", changes["title"])
    for kind in ("emails", "phones", "addresses", "urls"):
        if changes.get(kind) is not None:
            patcher.change_list(kind, changes[kind])
    if changes.get("birthday") is not None:
        patcher.set_birthday(changes["birthday"])
    if changes.get("anniversary") is not None:
        patcher.set_anniversary(changes["anniversary"])
    if changes.get("notes") is not None:
        patcher.set_text("NOTE", changes["notes"])
    if changes.get("categories") is not None:
        patcher.change_categories(changes["categories"])
    if changes.get("photo") is not None:
        patcher.set_photo(changes["photo"])


def new_card(values: Mapping[str, Any], *, uid: str | None = None, version: str = "3.0") -> Card:
    """A new card from the create tool's arguments (lists are plain lists there)."""
    name = values.get("name") or {}
    formatted = values.get("formatted_name") or _derived_name(name) or values.get("organization") or ""
    if not formatted.strip():
        raise InvalidArgument("give formatted_name, or name parts or an organization to derive it from")
    card = Card([new_line("VERSION", version), new_line("PRODID", escape(PRODID)),
                 new_line("UID", escape(uid or str(uuid.uuid4())))])
    patcher = Patcher(card)
    patcher.set_formatted_name(formatted)
    if name or not patcher.v4:
        patcher.set_name(name)  # N is required in vCard 3.0
    changes: dict[str, Any] = {key: values[key] for key in SCALARS
                               if values.get(key) not in (None, "") and key not in ("formatted_name", "name")}
    for kind in ("emails", "phones", "addresses", "urls"):
        if values.get(kind):
            changes[kind] = {"add": values[kind]}
    if values.get("categories"):
        changes["categories"] = {"replace": values["categories"]}
    if values.get("photo"):
        changes["photo"] = values["photo"]
    _apply(patcher, changes)
    card.lines.append(new_line("REV", datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")))
    return card


def _derived_name(name: Mapping[str, str]) -> str:
    order = ("prefix", "given", "additional", "family", "suffix")
    return " ".join(name[key].strip() for key in order if name.get(key, "").strip())
