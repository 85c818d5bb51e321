"""vobject 0.9.9's quirks, pinned, and what ncmcp_contacts.vcard does about each.

Each test first shows what vobject's high-level API (``readOne`` + ``serialize``) does to a line,
then that our codec, which uses vobject's tokenizer and line serialiser only, keeps it. If a vobject
upgrade fixes a quirk, the first assertion fails and tells us the workaround may be dropped.
"""

from __future__ import annotations

import pytest
import vobject
from ncmcp_contacts import fields, vcard


def _card(version: str, *lines: str) -> str:
    return "\r\n".join(["BEGIN:VCARD", f"VERSION:{version}", "UID:q", "FN:Q", *lines, "END:VCARD", ""])


def _vobject_roundtrip(text: str) -> str:
    return vobject.readOne(text).serialize()


def _ours(text: str) -> str:
    return vcard.serialize(vcard.parse(text))


@pytest.mark.parametrize(("line", "vobject_makes"), [
    # Unknown properties are decoded as ONE text value: everything after the first comma is lost.
    ("NICKNAME:Bob,Bobby", "NICKNAME:Bob"),
    ("X-FOO:a,b;c", "X-FOO:a"),
    ("X-LIST:a\\,b,c", "X-LIST:a\\,b"),
    # vCard 2.1 bare parameters are parsed aside (singletonparams) and never written back.
    ("TEL;CELL;VOICE:123", "TEL:123"),
])
def test_vcard3_text_values_and_bare_parameters(line: str, vobject_makes: str) -> None:
    text = _card("3.0", line)
    assert vobject_makes in _vobject_roundtrip(text).splitlines()
    ours = _ours(text)
    assert line.split(":")[1] in ours  # the value is kept
    if line.startswith("TEL"):
        assert "TEL;TYPE=CELL,VOICE:123" in ours.splitlines()  # the bare types become explicit TYPE values


@pytest.mark.parametrize(("line", "vobject_makes"), [
    # vobject has no vCard 4.0 behaviour: 4.0 cards get the 3.0 one, which escapes structured values…
    ("CLIENTPIDMAP:1;urn:uuid:3", "CLIENTPIDMAP:1\\;urn:uuid:3"),
    ("GENDER:M;", "GENDER:M\\;"),
    # …and cuts a data: URI photo at its comma (the image is gone).
    ("PHOTO:data:image/png;base64,aGVsbG8=", "PHOTO:data:image/png\\;base64"),
])
def test_vcard4_structured_values_and_data_uris(line: str, vobject_makes: str) -> None:
    text = _card("4.0", line)
    assert vobject_makes in _vobject_roundtrip(text).splitlines()
    assert line in _ours(text).splitlines()


def test_vobject_sorts_properties_we_keep_the_order() -> None:
    text = _card("3.0", "TEL:1", "EMAIL:a@b.c", "ADR:;;x;;;;")
    names = [line.split(":")[0] for line in _vobject_roundtrip(text).splitlines()]
    assert names.index("ADR") < names.index("TEL")  # alphabetical after VERSION/PRODID/UID
    assert _ours(text) == text


def test_quoted_parameter_lists_are_one_value_in_vobject() -> None:
    # TYPE="voice,home" (4.0) reaches us as the single value 'voice,home': split it when reading types.
    card = vcard.parse(_card("4.0", 'TEL;VALUE=uri;TYPE="voice,home";PREF=1:tel:+1-555'))
    line = card.first("TEL")
    assert line is not None and line.params["TYPE"] == ["voice,home"]
    assert fields.types_of(line) == ["voice", "home"] and fields.is_pref(line)
    written = _ours(_card("4.0", 'TEL;VALUE=uri;TYPE="voice,home";PREF=1:tel:+1-555'))
    assert 'TEL;PREF=1;TYPE="voice,home";VALUE=uri:tel:+1-555' in written  # re-quoted, parameters sorted


def test_unknown_escapes_are_left_by_vobject_we_decode_apple_colons() -> None:
    # Apple writes URL:https\://…; vobject's text decoder leaves "\:" alone.
    card = vcard.parse(_card("3.0", "item1.URL:https\\://example.com/x", "item1.X-ABLabel:_$!<HomePage>!$_"))
    line = card.first("URL")
    assert line is not None and fields.url_value(line) == "https://example.com/x"
    assert fields.label_of(card, line) == "HomePage"


def test_trailing_empty_components_are_dropped_by_the_scanner_we_pad() -> None:
    # stringToTextValues("a;b;;") gives ['a', 'b', ''] (the last empty part is lost): structured() pads.
    assert vcard.structured("Doe;John;;;", 5) == ["Doe", "John", "", "", ""]
    assert vcard.structured("", 7) == [""] * 7


def test_a_dangling_backslash_does_not_become_eof() -> None:
    # The scanner would turn a final lone backslash into the text "\\eof".
    assert vcard.unescape("abc\\") == "abc"
    assert vcard.unescape("abc\\\\") == "abc\\"


def test_names_are_upper_cased_and_underscores_become_dashes() -> None:
    # A documented normalisation of vobject's tokenizer (names are case-insensitive; "_" is not valid in names).
    out = _ours(_card("3.0", "item1.X-ABLabel:x", "X-LOTUS_NOTES:y"))
    assert "item1.X-ABLABEL:x" in out.splitlines() and "X-LOTUS-NOTES:y" in out.splitlines()


def test_quoted_printable_is_decoded_and_written_as_escaped_text() -> None:
    text = _card("2.1", "NOTE;ENCODING=QUOTED-PRINTABLE;CHARSET=utf-8:one=0D=0Atw=C3=B6 =", "three")
    card = vcard.parse(text)
    note = card.first("NOTE")
    assert note is not None and vcard.unescape(note.value) == "one\ntwö three"
    assert "ENCODING" not in note.params and note.params["CHARSET"] == ["utf-8"]


def test_long_lines_are_folded_at_75_octets_without_splitting_characters() -> None:
    text = _card("3.0", "NOTE:" + "ä" * 100)
    out = _ours(text)
    assert all(len(physical.encode()) <= 75 for physical in out.split("\r\n"))
    assert vcard.parse(out).first("NOTE").value == "ä" * 100  # type: ignore[union-attr]


def test_short_lines_are_not_folded_even_when_longer_than_75_octets() -> None:
    # foldOneLine's fast path compares characters, not octets: a 74-character Greek line stays whole
    # (RFC 6350 only says SHOULD fold at 75 octets; every reader unfolds). Accepted as is.
    line = "NOTE:" + "λ" * 69
    out = _ours(_card("3.0", line)).split("\r\n")
    assert line in out and len(line.encode()) > 75
