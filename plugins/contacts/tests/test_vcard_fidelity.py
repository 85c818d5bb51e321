"""The fidelity corpus, offline: every card reads as the client meant it and survives every edit.

``corpus/*.vcf`` are vCards in the styles of Apple Contacts/iCloud, Google Contacts, Outlook (2.1),
Thunderbird (4.0), Nextcloud Contacts, DAVx5 on Android and RFC 6350's own examples (photos, labels,
several addresses, non-ASCII names, folded lines, LF-only line ends). ``corpus/*.json`` is how each
must read (reviewed by hand). Each edit below is applied to each card; afterwards the card must differ
from the stored one in the edited lines only (field for field), and every other field must read the same.
"""

from __future__ import annotations

import json
import pathlib
import re
from collections import Counter
from typing import Any

import pytest
from ncmcp_contacts import fields, patch, vcard

CORPUS = pathlib.Path(__file__).parent / "corpus"
FILES = sorted(p.name for p in CORPUS.glob("*.vcf"))


def read(name: str) -> str:
    return (CORPUS / name).read_bytes().decode("utf-8")


def lines(text: str) -> Counter[tuple[Any, ...]]:
    out: Counter[tuple[Any, ...]] = Counter()
    for line in vcard.parse(text).lines:
        params = tuple(sorted((k, tuple(sorted(vcard.param_values(line, k)))) for k in line.params))
        out[((line.group or "").lower(), line.name, params, line.value)] += 1
    return out


@pytest.mark.parametrize("name", FILES)
def test_corpus_reads_as_expected(name: str) -> None:
    expected = json.loads((CORPUS / name.replace(".vcf", ".json")).read_text(encoding="utf-8"))
    assert fields.full(vcard.parse(read(name))) == expected


@pytest.mark.parametrize("name", FILES)
def test_corpus_survives_parse_and_serialise(name: str) -> None:
    text = read(name)
    again = vcard.serialize(vcard.parse(text))
    assert lines(again) == lines(text)
    assert fields.full(vcard.parse(again)) == fields.full(vcard.parse(text))
    # Folded at 75 octets; vobject leaves a line of fewer than 75 characters whole (see test_vobject_quirks).
    assert all(len(physical.encode()) <= 75 or len(physical) < 75 for physical in again.split("\r\n"))


def _first_email(card: dict[str, Any]) -> str:
    return card["emails"][0]["value"]


def _first_phone(card: dict[str, Any]) -> str:
    return card["phones"][0]["value"]


# (edit id, changes (a function of the card as read), the properties the edit may touch, fields it changes)
EDITS = [
    ("add-email", lambda c: {"emails": {"add": [{"value": "new.address@example.org", "types": ["work"]}]}},
     {"EMAIL"}, {"emails"}),
    ("add-labelled-phone", lambda c: {"phones": {"add": [{"value": "+1 202 555 0147", "label": "Boat", "pref": True}]}},
     {"TEL", "X-ABLABEL"}, {"phones"}),
    ("remove-first-email", lambda c: {"emails": {"remove": [_first_email(c)]}}, {"EMAIL", "X-ABLABEL"}, {"emails"}),
    ("retype-first-phone", lambda c: {"phones": {"update": [{"match": _first_phone(c), "types": ["pager"]}]}},
     {"TEL"}, {"phones"}),
    ("relabel-first-phone", lambda c: {"phones": {"update": [{"match": _first_phone(c), "label": "Direct line"}]}},
     {"TEL", "X-ABLABEL"}, {"phones"}),
    ("move-first-address", lambda c: {"addresses": {"update": [{"match": 0, "locality": "Zürich", "postal_code": "8001"}]}},
     {"ADR"}, {"addresses"}),
    ("notes", lambda c: {"notes": "Rewritten; with, punctuation\nand two lines"}, {"NOTE"}, {"notes"}),
    ("organization-only", lambda c: {"organization": "Renamed Inc."}, {"ORG"}, {"organization"}),
    ("given-name-only", lambda c: {"name": {"given": "Alexandra"}}, {"N"}, {"name"}),
    ("photo-url", lambda c: {"photo": {"url": "https://example.org/p.jpg"}}, {"PHOTO"}, {"photo"}),
    ("categories", lambda c: {"categories": {"add": ["VIP"]}}, {"CATEGORIES"}, {"categories"}),
    ("birthday", lambda c: {"birthday": "1970-01-31"}, {"BDAY"}, {"birthday"}),
]


@pytest.mark.parametrize("name", FILES)
@pytest.mark.parametrize(("edit", "changes", "touched", "changed_fields"), EDITS, ids=[e[0] for e in EDITS])
def test_an_edit_changes_only_its_field(name: str, edit: str, changes: Any, touched: set[str], changed_fields: set[str]) -> None:
    text = read(name)
    card = vcard.parse(text)
    before = fields.full(card)
    if edit == "move-first-address" and not before["addresses"]:
        pytest.skip("no address")
    assert patch.apply_changes(card, changes(before))
    after_text = vcard.serialize(card)
    after = fields.full(vcard.parse(after_text))

    allowed = touched | {"REV"}
    if before["version"].startswith("2"):
        allowed |= {"VERSION", "PHOTO"}  # 2.1 is written back as 3.0 (base64 spelled ENCODING=b)
    old, new = lines(text), lines(after_text)
    lost, gained = old - new, new - old
    assert {key[1] for key in lost} <= allowed, f"{edit} on {name} lost {lost}"
    assert {key[1] for key in gained} <= allowed, f"{edit} on {name} added {gained}"
    assert lost or gained, "the edit changed nothing"

    # Field for field: everything but the edited fields reads exactly as before.
    skip = changed_fields | {"version", "other_properties"}
    assert {k: v for k, v in after.items() if k not in skip} == {k: v for k, v in before.items() if k not in skip}
    rev = [p for p in after["other_properties"] if p["name"] != "REV"]
    assert rev == [p for p in before["other_properties"] if p["name"] != "REV"]


def test_the_edits_do_what_they_say() -> None:
    card = vcard.parse(read("apple_icloud.vcf"))
    assert patch.apply_changes(card, {
        "emails": {"add": [{"value": "a@b.example", "types": ["work"], "pref": True, "label": "Team"}],
                   "update": [{"match": "ZOE.HOME@example.com", "types": ["work", "home"]}]},
        "phones": {"remove": ["+46 8 555 01020"]},  # matched by digits
        "addresses": {"update": [{"match": 1, "street": "Ny gata 2"}]},
        "name": {"family": "Berg"}, "birthday": "--12-24", "anniversary": "2013-06-21", "title": "",
    })
    got = fields.full(vcard.parse(vcard.serialize(card)))
    assert [(e["value"], e["types"], e["pref"], e.get("label")) for e in got["emails"]] == [
        ("zoe@angstrom-labs.example", [], False, "Other"),  # pref moved to the new address
        ("zoe.home@example.com", ["work", "home"], False, None),
        ("a@b.example", ["work"], True, "Team")]
    assert [p["value"] for p in got["phones"]] == ["+46 70 123 45 67", "+46 8 555 010 99"]
    assert got["addresses"][1]["street"] == "Ny gata 2" and got["addresses"][1]["locality"] == "Uppsala"
    assert got["name"] == {"family": "Berg", "given": "Zoë", "additional": "Marie", "prefix": "Dr.", "suffix": "PhD"}
    assert got["birthday"] == "--12-24" and got["anniversary"] == "2013-06-21" and "title" not in got
    text = vcard.serialize(card)
    assert "BDAY;X-APPLE-OMIT-YEAR=1604:1604-12-24" in text  # Apple's year-less form in 3.0
    assert "item6.X-ABDATE;TYPE=pref:2013-06-21" in text  # the anniversary stays where Apple keeps it


def test_removing_a_labelled_item_removes_its_label_but_not_a_shared_group() -> None:
    card = vcard.parse(read("apple_icloud.vcf"))
    patch.apply_changes(card, {"emails": {"remove": ["zoe@angstrom-labs.example"]}})
    assert not card.in_group("item1")
    text = "\r\n".join(["BEGIN:VCARD", "VERSION:3.0", "UID:g", "FN:G", "item1.EMAIL:a@b.example",
                        "item1.X-ABLabel:work", "item1.X-CUSTOM:keep me", "END:VCARD", ""])
    card = vcard.parse(text)
    patch.apply_changes(card, {"emails": {"remove": ["a@b.example"]}})
    assert [line.name for line in card.in_group("item1")] == ["X-ABLABEL", "X-CUSTOM"]


@pytest.mark.parametrize("version", ["3.0", "4.0"])
def test_new_cards_in_both_versions(version: str) -> None:
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
    card = patch.new_card({
        "name": {"given": "Ада", "family": "Лавлейс"}, "nickname": "Ada", "organization": "Analytical Engines",
        "department": "Research", "title": "Mathematician",
        "emails": [{"value": "ada@example.org", "types": ["home"], "pref": True}],
        "phones": [{"value": "+44 20 7946 0000", "types": ["cell"]}, {"value": "+44 20 7946 0001", "label": "Lab"}],
        "addresses": [{"street": "12 St James's Square", "locality": "London", "postal_code": "SW1Y 4JH",
                       "country": "United Kingdom", "types": ["home"]}],
        "urls": [{"value": "https://example.org/ada"}], "birthday": "1815-12-10", "anniversary": "--07-08",
        "notes": "First programmer; notes, with commas.", "categories": ["History", "Science"],
        "photo": {"data": png, "mime_type": "image/png"},
    }, uid="ada-1", version=version)
    text = vcard.serialize(card)
    got = fields.full(vcard.parse(text))
    assert got["version"] == version and got["uid"] == "ada-1" and got["formatted_name"] == "Ада Лавлейс"
    assert got["emails"] == [{"value": "ada@example.org", "types": ["home"], "pref": True}]
    assert got["phones"][1] == {"value": "+44 20 7946 0001", "types": [], "pref": False, "label": "Lab"}
    assert got["addresses"][0]["postal_code"] == "SW1Y 4JH" and got["addresses"][0]["types"] == ["home"]
    assert got["birthday"] == "1815-12-10" and got["anniversary"] == "--07-08"
    assert got["notes"] == "First programmer; notes, with commas." and got["categories"] == ["History", "Science"]
    assert got["photo"] == {"kind": "inline", "mime_type": "image/png", "size": 70}
    assert got["organization"] == "Analytical Engines" and got["department"] == "Research"
    if version == "4.0":
        assert "PHOTO:data:image/png;base64," + png[:20] in text and "EMAIL;PREF=1;TYPE=home:" in text
    else:
        assert "PHOTO;ENCODING=b;TYPE=PNG:" in text and "EMAIL;TYPE=HOME,PREF:" in text and "N:Лавлейс;Ада;;;" in text


SIMPLE = "\r\n".join(["BEGIN:VCARD", "VERSION:3.0", "UID:s", "FN:Simple", "N:;Simple;;;", "EMAIL:s@example.org",
                      "TEL;TYPE=CELL:+1 555 0000", "ADR:;;1 Road;Town;;;", "END:VCARD", ""])


@pytest.mark.parametrize(("changes", "message"), [
    ({"formatted_name": " "}, "cannot be empty"),
    ({"birthday": "31.01.1970"}, "not a date"),
    ({"birthday": "1970-02-30"}, "not a valid date"),
    ({"emails": {"add": [{"value": "not an address"}]}}, "not an email address"),
    ({"emails": {"remove": ["other@example.org"]}}, "has no email 'other@example.org' (it has: 's@example.org')"),
    ({"phones": {"update": [{"match": "999", "types": ["work"]}]}}, "has no phone"),
    ({"addresses": {"update": [{"match": 3, "locality": "X"}]}}, "no address at index 3"),
    ({"addresses": {"add": [{"types": ["home"]}]}}, "an address needs at least one of"),
    ({"photo": {"data": "%%%", "mime_type": "image/png"}}, "must be base64"),
    ({"photo": {"url": "ftp://example.org/x.png"}}, "http(s) URL"),
    ({"urls": {"add": [{"value": "https://example.org/a b"}]}}, "not a URL"),
])
def test_bad_changes_are_refused_and_change_nothing(changes: dict[str, Any], message: str) -> None:
    from ncmcp import InvalidArgument

    card = vcard.parse(SIMPLE)
    with pytest.raises(InvalidArgument, match=re.escape(message)):
        patch.apply_changes(card, changes)


def test_a_changed_2_1_card_is_written_as_3_0() -> None:
    card = vcard.parse(read("outlook_2_1.vcf"))
    patch.apply_changes(card, {"title": "Director"})
    text = vcard.serialize(card)
    assert "VERSION:3.0" in text and "PHOTO;ENCODING=b;TYPE=PNG:" in text
    assert "TEL;TYPE=WORK,VOICE:(425) 555-0100" in text
    note = vcard.parse(text).first("NOTE")
    assert note is not None and note.value == "Prefers calls before noon.\\nFlüent in Irish and English."
    assert "ENCODING" not in note.params  # quoted-printable is gone: the newline is an escape now
    assert fields.full(vcard.parse(text))["photo"]["size"] == 1060


def test_setting_the_same_values_changes_nothing() -> None:
    card = vcard.parse(read("nextcloud_contacts.vcf"))
    assert not patch.apply_changes(card, {"title": "Kierownik", "name": {"given": "Łukasz"}, "categories": {"add": ["rodzina"]},
                                          "phones": {"update": [{"match": "+48 601 234 567", "types": ["cell"]}]}})
    assert vcard.serialize(card) == vcard.serialize(vcard.parse(read("nextcloud_contacts.vcf")))


_D = b'<?xml version="1.0"?><d:error xmlns:d="DAV:" xmlns:s="http://sabredav.org/ns" xmlns:card="urn:ietf:params:xml:ns:carddav">'


@pytest.mark.parametrize(("body", "conflict"), [
    # Newest Nextcloud (UidConflict::forAddressBook) and Radicale: 409 with the RFC 6352 precondition.
    (_D + b"<card:no-uid-conflict><d:href>/remote.php/dav/x.vcf</d:href></card:no-uid-conflict></d:error>", True),
    # Older Nextcloud: 400 Sabre BadRequest with this message.
    (_D + b"<s:exception>Sabre\\DAV\\Exception\\BadRequest</s:exception>"
          b"<s:message>VCard object with uid already exists in this addressbook collection.</s:message></d:error>", True),
    (_D + b"<s:message>Bad Request</s:message></d:error>", False),
    (b"not xml at all", False),
])
def test_server_duplicate_uid_answers_are_recognised(body: bytes, conflict: bool) -> None:
    from ncmcp_contacts import carddav

    assert carddav._is_uid_conflict(body) is conflict
