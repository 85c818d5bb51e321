"""WebDAV XML in one place: parsing (always through defusedxml) and building (through ElementTree,
so every user value is escaped by the serializer, never by string formatting)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urljoin, urlsplit
from xml.etree import ElementTree as ET

from defusedxml import ElementTree as SafeET

NS = {
    "d": "DAV:",
    "c": "urn:ietf:params:xml:ns:caldav",
    "card": "urn:ietf:params:xml:ns:carddav",
    "oc": "http://owncloud.org/ns",
    "nc": "http://nextcloud.org/ns",
    "s": "http://sabredav.org/ns",
    "cs": "http://calendarserver.org/ns/",
    "x1": "http://apple.com/ns/ical/",
}


def _register_prefixes() -> None:
    # ElementTree keeps prefixes in one process-wide table that other libraries change too
    # (Radicale maps DAV: to the default namespace), so they are set again before each serialization.
    for prefix, uri in NS.items():
        if ET._namespace_map.get(uri) != prefix:  # noqa: SLF001 - the table register_namespace writes
            ET.register_namespace(prefix, uri)


_register_prefixes()


def qname(name: str) -> str:
    """``"d:getetag"`` → ``"{DAV:}getetag"``."""
    prefix, _, local = name.partition(":")
    return f"{{{NS[prefix]}}}{local}"


def element(name: str, text: str | None = None, attrib: Mapping[str, str] | None = None, children: Iterable[ET.Element] = ()) -> ET.Element:
    el = ET.Element(qname(name), dict(attrib or {}))
    if text is not None:
        el.text = text
    el.extend(children)
    return el


def to_bytes(root: ET.Element) -> bytes:
    _register_prefixes()
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def parse(body: bytes) -> ET.Element:
    return SafeET.fromstring(body)


@dataclass(slots=True)
class DavResponse:
    """One ``d:response`` of a multistatus: its decoded path, status and the properties found (200)."""

    href: str  # absolute path, percent-decoded
    raw_href: str  # as sent by the server (still encoded): use it to address the object
    status: int | None
    props: dict[str, ET.Element] = field(default_factory=dict)
    missing: set[str] = field(default_factory=set)

    def text(self, name: str) -> str | None:
        el = self.props.get(qname(name))
        return None if el is None else (el.text or "")

    def has(self, name: str, child: str) -> bool:
        el = self.props.get(qname(name))
        return el is not None and el.find(qname(child)) is not None


def _status_code(text: str | None) -> int | None:
    parts = (text or "").split()
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


def parse_multistatus(body: bytes, base_url: str) -> list[DavResponse]:
    """Parse a 207 body. Hrefs may be absolute URLs or paths; both resolve against the server origin."""
    root = parse(body)
    out: list[DavResponse] = []
    for resp in root.findall(qname("d:response")):
        raw = (resp.findtext(qname("d:href")) or "").strip()
        path = urlsplit(urljoin(base_url + "/", raw)).path
        item = DavResponse(href=unquote(path), raw_href=path, status=_status_code(resp.findtext(qname("d:status"))))
        for propstat in resp.findall(qname("d:propstat")):
            code = _status_code(propstat.findtext(qname("d:status")))
            prop = propstat.find(qname("d:prop"))
            if prop is None:
                continue
            for child in prop:
                if code == 200:
                    item.props[child.tag] = child
                else:
                    item.missing.add(child.tag)
        out.append(item)
    return out


def propfind_body(props: Iterable[str]) -> bytes:
    return to_bytes(element("d:propfind", children=[element("d:prop", children=[element(p) for p in props])]))


def sabre_message(body: bytes) -> str | None:
    """The ``s:message`` of a Sabre error body, if any."""
    try:
        root = parse(body)
    except (ET.ParseError, ValueError):
        return None
    return root.findtext(qname("s:message"))


def href_text(el: ET.Element | None, name: str = "d:href") -> str | None:
    if el is None:
        return None
    found = el.find(qname(name))
    return None if found is None else (found.text or "").strip()
