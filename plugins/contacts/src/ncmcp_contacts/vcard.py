"""vCard text ⇄ an ordered list of vobject content lines, without losing anything.

Why not ``vobject.readOne()`` and ``serialize()``: vobject's vCard behaviour (it has only a 3.0 one,
used for 4.0 too) decodes every property it does not know as one text value, and re-encodes it on
output. That drops everything after the first comma (``NICKNAME:Bob,Bobby`` → ``Bob``,
``X-FOO:a,b`` → ``a``), escapes the semicolons of structured values it does not know
(``GEO``/``GENDER``/``CLIENTPIDMAP`` become ``M\\;``), cuts a vCard 4.0 ``data:`` URI photo at its
comma, drops vCard 2.1 bare type parameters (``TEL;CELL;VOICE`` → ``TEL``) and sorts the
properties. ``tests/test_vobject_quirks.py`` pins each of these. Re-serialising a stored card that
way would lose fields the caller never touched (the peer's bug: PHOTO, ADR and X- wiped).

So vobject is used one level down: its tokenizer (line unfolding, groups, parameters with quoting,
quoted-printable) yields ``ContentLine`` objects that keep the raw, still-escaped value, and its line
serialiser (parameter quoting, UTF-8-safe folding) writes them back. Values are decoded only for the
properties we interpret (:mod:`ncmcp_contacts.fields`) and re-encoded only where the caller changes
something (:mod:`ncmcp_contacts.patch`). Untouched lines come back with the same value and
parameters; the only normalisations are the ones vobject's line model implies (documented in the
README): property and parameter names upper-cased, parameters sorted, repeated parameters merged
into one comma list, lines re-folded at 75 octets, and vCard 2.1 bare parameters written as TYPE=.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

from vobject.base import (
    ContentLine,
    ParseError,
    VObjectError,
    backslashEscape,
    defaultSerialize,
    getLogicalLines,
    textLineToContentLine,
)
from vobject.icalendar import stringToTextValues

LINE_LENGTH = 75
# Escapes a reader must undo in text values: RFC 6350 §3.4 (\\ \; \, \n) plus the "\:" Apple writes in URLs.
_TEXT_ESCAPES = ["\\", ";", ",", ":", "n", "N", '"']
# vCard 2.1 bare parameters that are not types (quoted-printable is decoded by vobject itself).
_BARE_ENCODINGS = {"BASE64": "b", "B": "b"}


class VCardError(ValueError):
    """The text is not one well-formed vCard."""


@dataclass
class Card:
    """One vCard: its content lines in stored order, BEGIN/END excluded."""

    lines: list[ContentLine] = field(default_factory=list)

    @property
    def version(self) -> str:
        line = self.first("VERSION")
        return (line.value.strip() if line is not None else "") or "3.0"

    @property
    def is_v4(self) -> bool:
        return self.version.startswith("4")

    def all(self, name: str) -> list[ContentLine]:
        return [line for line in self.lines if line.name == name]

    def first(self, name: str) -> ContentLine | None:
        return next((line for line in self.lines if line.name == name), None)

    def in_group(self, group: str | None) -> list[ContentLine]:
        if group is None:
            return []
        key = group.lower()
        return [line for line in self.lines if line.group is not None and line.group.lower() == key]

    def remove(self, line: ContentLine) -> None:
        self.lines = [candidate for candidate in self.lines if candidate is not line]

    def insert_after(self, anchor: ContentLine | None, *new: ContentLine) -> None:
        at = len(self.lines) if anchor is None else self._index(anchor) + 1
        self.lines[at:at] = new

    def _index(self, line: ContentLine) -> int:
        return next(i for i, candidate in enumerate(self.lines) if candidate is line)

    def copy(self) -> Card:
        return Card([ContentLine.duplicate(line) for line in self.lines])


def parse(text: str) -> Card:
    """Parse exactly one vCard (2.1, 3.0 or 4.0)."""
    text = text.lstrip("\ufeff")
    lines: list[ContentLine] = []
    depth = 0
    closed = False
    try:
        for raw, number in getLogicalLines(io.StringIO(text), allowQP=True):
            line = textLineToContentLine(raw, number)
            is_begin = line.name == "BEGIN"
            is_end = line.name == "END"
            if closed:
                raise VCardError("more than one vCard in one object")
            if depth == 0:
                if not (is_begin and line.value.strip().upper() == "VCARD"):
                    raise VCardError("the object does not start with BEGIN:VCARD")
                depth = 1
                continue
            if is_begin:
                depth += 1  # an embedded vCard (2.1 AGENT): kept as opaque lines
            elif is_end:
                depth -= 1
                if depth == 0:
                    closed = True
                    continue
            lines.append(_normalise(line))
    except (ParseError, VObjectError) as exc:
        raise VCardError(f"not a valid vCard: {exc}") from exc
    if not closed:
        raise VCardError("the vCard is not closed with END:VCARD")
    return Card(lines)


def _normalise(line: ContentLine) -> ContentLine:
    """What vobject's line model cannot carry, made explicit so serialising keeps it."""
    # vCard 2.1 bare parameters (TEL;CELL;VOICE): vobject keeps them aside and never writes them back.
    for bare in line.singletonparams:
        if bare.upper() in _BARE_ENCODINGS:
            line.params["ENCODING"] = [_BARE_ENCODINGS[bare.upper()]]
        else:
            line.params.setdefault("TYPE", []).append(bare)
    line.singletonparams = []
    # A quoted-printable value arrives decoded, possibly with raw line breaks: escape them as text.
    if "\n" in line.value or "\r" in line.value:
        line.value = line.value.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n")
    return line


def serialize(card: Card) -> str:
    out = io.StringIO()
    out.write("BEGIN:VCARD\r\n")
    for line in card.lines:
        out.write(defaultSerialize(line, None, LINE_LENGTH))
    out.write("END:VCARD\r\n")
    return out.getvalue()


def new_line(name: str, value: str, *, params: dict[str, list[str]] | None = None, group: str | None = None) -> ContentLine:
    """A content line whose ``value`` is already encoded (escaped) vCard text."""
    line = ContentLine(name, [], value, group=group, encoded=True)
    line.params = {key.upper(): list(values) for key, values in (params or {}).items()}
    return line


# --- value codecs (through vobject's own escaping state machine) ---------------------------------


def _trim_dangling_backslash(raw: str) -> str:
    # vobject's scanner turns a lone trailing backslash into "\eof"; such a value is invalid anyway.
    stripped = raw.rstrip("\\")
    return raw if (len(raw) - len(stripped)) % 2 == 0 else raw[:-1]


def unescape(raw: str) -> str:
    """A text value as the user reads it (``A\\, B`` → ``A, B``; ``\\n`` → newline)."""
    return stringToTextValues(_trim_dangling_backslash(raw), listSeparator=None, charList=_TEXT_ESCAPES)[0]


def escape(text: str) -> str:
    return backslashEscape(text)


def split_raw(raw: str, separator: str) -> list[str]:
    """Split on unescaped ``separator``, keeping every escape as written (so parts re-join unchanged)."""
    return stringToTextValues(_trim_dangling_backslash(raw), listSeparator=separator, charList=[])


def split_text(raw: str, separator: str = ",") -> list[str]:
    """A list value (NICKNAME, CATEGORIES) decoded item by item."""
    return [unescape(part) for part in split_raw(raw, separator)]


def structured(raw: str, size: int) -> list[str]:
    """Raw components of a structured value (N, ADR, ORG), padded to ``size``; extra ones are kept."""
    parts = split_raw(raw, ";")
    return parts + [""] * (size - len(parts))


def join_structured(parts: list[str]) -> str:
    return ";".join(parts)


def param_values(line: ContentLine, name: str) -> list[str]:
    """A parameter's values, with quoted comma lists (``TYPE="voice,home"``, vCard 4.0) split."""
    out: list[str] = []
    for value in line.params.get(name, []):
        out.extend(part.strip() for part in value.split(",") if part.strip())
    return out
