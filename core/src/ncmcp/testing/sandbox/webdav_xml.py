"""XML helpers for the WebDAV files sandbox: Nextcloud-style serialisation and Sabre errors.

Nextcloud (Sabre) writes every DAV body with the prefixes ``d:`` (``DAV:``), ``s:``
(Sabre), ``oc:`` (ownCloud), ``nc:`` (Nextcloud) declared on the root element and
``x1:``, ``x2:`` … for other namespaces.  The standard-library serialiser would write
``ns0:`` and depends on process-wide prefix registrations (Radicale registers some), so
this module has its own small serialiser; WsgiDAV's 207 bodies are re-serialised with it.
Request bodies are parsed with ``defusedxml``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable
from xml.sax.saxutils import escape, quoteattr

from defusedxml import ElementTree as SafeET

from ncmcp.testing.sandbox import sabre

DAV = "DAV:"
SABRE = "http://sabredav.org/ns"
OC = "http://owncloud.org/ns"
NC = "http://nextcloud.org/ns"
OCS = "http://open-collaboration-services.org/ns"
OCM = "http://open-cloud-mesh.org/ns"

PREFIXES: dict[str, str] = {DAV: "d", SABRE: "s", OC: "oc", NC: "nc", OCS: "ocs", OCM: "ocm"}
_ROOT_DECLARED = (DAV, SABRE, OC, NC)

XML_CONTENT_TYPE = "application/xml; charset=utf-8"

SABRE_EXCEPTIONS = sabre.SABRE_EXCEPTIONS


def clark(ns: str, local: str) -> str:
    return f"{{{ns}}}{local}"


def split_clark(tag: str) -> tuple[str, str]:
    if tag.startswith("{"):
        ns, _, local = tag[1:].partition("}")
        return ns, local
    return "", tag


class SabreError(Exception):
    """An error answered in Sabre's XML shape (``<d:error>`` with exception and message)."""

    def __init__(
        self,
        status: int,
        message: str = "",
        *,
        exception: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
        extra: Iterable[ET.Element] = (),
    ) -> None:
        super().__init__(f"{status} {message}")
        self.status = status
        self.message = message
        self.exception = exception or SABRE_EXCEPTIONS.get(status, "Sabre\\DAV\\Exception")
        self.headers = list(headers)
        self.extra = list(extra)

    def body(self) -> bytes:
        return sabre_error_body(self.exception, self.message, self.extra)


def sabre_error_body(exception: str, message: str, extra: Iterable[ET.Element] = ()) -> bytes:
    root = ET.Element(clark(DAV, "error"))
    ET.SubElement(root, clark(SABRE, "exception")).text = exception
    ET.SubElement(root, clark(SABRE, "message")).text = message
    for element in extra:
        root.append(element)
    return to_bytes(root, declare=(DAV, SABRE))


def to_bytes(root: ET.Element, *, declare: Iterable[str] = _ROOT_DECLARED) -> bytes:
    """Serialise ``root`` with Nextcloud's prefixes, all namespaces declared on the root."""
    prefixes: dict[str, str] = {}
    for ns in declare:
        prefixes[ns] = PREFIXES[ns]
    counter = 0
    for element in root.iter():
        names = [element.tag, *element.attrib.keys()]
        for name in names:
            if not isinstance(name, str):
                continue
            ns, _ = split_clark(name)
            if ns and ns not in prefixes:
                if ns in PREFIXES:
                    prefixes[ns] = PREFIXES[ns]
                else:
                    counter += 1
                    prefixes[ns] = f"x{counter}"
    out: list[str] = ['<?xml version="1.0" encoding="utf-8"?>\n']
    decl = "".join(f" xmlns:{p}={quoteattr(ns)}" for ns, p in prefixes.items())
    _write(root, prefixes, out, decl)
    out.append("\n")
    return "".join(out).encode("utf-8")


def _qname(tag: str, prefixes: dict[str, str]) -> str:
    ns, local = split_clark(tag)
    return f"{prefixes[ns]}:{local}" if ns else local


def _write(element: ET.Element, prefixes: dict[str, str], out: list[str], decl: str = "") -> None:
    if not isinstance(element.tag, str):  # comments / processing instructions
        return
    name = _qname(element.tag, prefixes)
    attrs = "".join(f" {_qname(k, prefixes)}={quoteattr(v)}" for k, v in element.attrib.items())
    children = list(element)
    text = element.text or ""
    if not children and not text:
        out.append(f"<{name}{decl}{attrs}/>")
    else:
        out.append(f"<{name}{decl}{attrs}>")
        out.append(escape(text))
        for child in children:
            _write(child, prefixes, out)
            if child.tail:
                out.append(escape(child.tail))
        out.append(f"</{name}>")


def parse(body: bytes) -> ET.Element:
    """Parse a request body safely; malformed or hostile XML raises ``SabreError(400)``."""
    try:
        return SafeET.fromstring(body)
    except Exception as exc:  # ParseError, DefusedXmlException, ValueError
        raise SabreError(400, f"The request body is not valid XML: {exc}") from None


def reserialize(body: bytes) -> bytes:
    """Re-serialise an XML body (WsgiDAV's) with Nextcloud's prefixes; unchanged on failure."""
    try:
        root = SafeET.fromstring(body)
    except Exception:
        return body
    return to_bytes(root)


def multistatus() -> ET.Element:
    return ET.Element(clark(DAV, "multistatus"))


def add_response(
    ms: ET.Element,
    href: str,
    found: Iterable[tuple[str, str | ET.Element | None]],
    missing: Iterable[str] = (),
) -> None:
    """Append ``<d:response>`` with a 200 propstat for ``found`` and a 404 one for ``missing``."""
    response = ET.SubElement(ms, clark(DAV, "response"))
    ET.SubElement(response, clark(DAV, "href")).text = href
    groups = (("HTTP/1.1 200 OK", list(found)), ("HTTP/1.1 404 Not Found", [(m, None) for m in missing]))
    for status, items in groups:
        if not items:
            continue
        propstat = ET.SubElement(response, clark(DAV, "propstat"))
        prop = ET.SubElement(propstat, clark(DAV, "prop"))
        for name, value in items:
            if isinstance(value, ET.Element):
                prop.append(value)
            else:
                el = ET.SubElement(prop, name)
                if value is not None:
                    el.text = str(value)
        ET.SubElement(propstat, clark(DAV, "status")).text = status


def parse_propfind(body: bytes) -> tuple[str, list[str]]:
    """Return ``("allprop"|"propname"|"prop", names)`` for a PROPFIND body (empty = allprop)."""
    if not body.strip():
        return "allprop", []
    root = parse(body)
    if root.tag != clark(DAV, "propfind"):
        raise SabreError(400, "The root element of a PROPFIND body must be {DAV:}propfind")
    for child in root:
        if child.tag == clark(DAV, "allprop"):
            return "allprop", []
        if child.tag == clark(DAV, "propname"):
            return "propname", []
        if child.tag == clark(DAV, "prop"):
            return "prop", [p.tag for p in child if isinstance(p.tag, str)]
    return "allprop", []


def collection_type() -> ET.Element:
    el = ET.Element(clark(DAV, "resourcetype"))
    ET.SubElement(el, clark(DAV, "collection"))
    return el
