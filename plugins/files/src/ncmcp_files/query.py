"""Server-side search: RFC 5323 ``SEARCH`` bodies and the ``oc:filter-files`` REPORT.

Every value a user gives ends up as element text built by :func:`ncmcp.nextcloud.xml.element`, so
the XML serializer escapes ``&``, ``<``, quotes and the rest in this one place; nothing here
formats XML by hand.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from xml.etree import ElementTree as ET

from ncmcp import InvalidArgument
from ncmcp.nextcloud.xml import element, to_bytes

from ncmcp_files.entries import ENTRY_PROPS
from ncmcp_files.paths import FOLDER_MIME

ORDER_PROPS = {"name": "d:displayname", "modified": "d:getlastmodified", "size": "oc:size"}
_MIME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}(/([A-Za-z0-9!#$&^_.+-]{1,127}|\*))?$")


@dataclass(frozen=True, slots=True)
class Criteria:
    name: str | None = None  # glob: * any run of characters, ? one character
    mime_type: str | None = None  # "image/png", "image/*" or "image"
    kind: str = "any"  # "file" | "directory" | "any"
    min_size: int | None = None
    max_size: int | None = None
    modified_after: datetime | None = None
    modified_before: datetime | None = None
    favorites_only: bool = False
    file_id: int | None = None


def _prop(name: str) -> ET.Element:
    return element("d:prop", children=[element(name)])


def _compare(op: str, prop: str, literal: str) -> ET.Element:
    return element(f"d:{op}", children=[_prop(prop), element("d:literal", literal)])


def like_pattern(glob: str) -> str:
    """A glob as an SQL LIKE pattern. A pattern without wildcards matches names containing it.

    LIKE's own wildcards in the name (``%``, ``_``) cannot be escaped portably (SQLite has no
    default escape character), so they become ``_`` (one character, which matches them too) and
    :func:`name_matcher` filters the results exactly.
    """
    if not any(c in glob for c in "*?"):
        glob = f"*{glob}*"
    out = []
    for char in glob:
        out.append({"*": "%", "?": "_", "%": "_", "_": "_"}.get(char, char))
    return "".join(out)


def name_matcher(glob: str) -> re.Pattern[str]:
    """The exact, case-insensitive meaning of a name glob (see :func:`like_pattern`)."""
    if not any(c in glob for c in "*?"):
        glob = f"*{glob}*"
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in glob)
    return re.compile(regex, re.IGNORECASE | re.DOTALL)


def mime_condition(mime: str) -> ET.Element:
    mime = mime.strip().lower()
    if not _MIME.match(mime):
        raise InvalidArgument("mime_type must look like 'image/png', 'image/*' or 'image'")
    if "/" not in mime or mime.endswith("/*"):
        major = mime.split("/")[0]
        return _compare("like", "d:getcontenttype", f"{major}/%")
    return _compare("eq", "d:getcontenttype", mime)


def where(criteria: Criteria) -> ET.Element:
    conditions: list[ET.Element] = []
    if criteria.name:
        conditions.append(_compare("like", "d:displayname", like_pattern(criteria.name)))
    if criteria.mime_type:
        conditions.append(mime_condition(criteria.mime_type))
    if criteria.kind == "directory":
        conditions.append(_compare("eq", "d:getcontenttype", FOLDER_MIME))
    elif criteria.kind == "file":
        conditions.append(element("d:not", children=[_compare("eq", "d:getcontenttype", FOLDER_MIME)]))
    if criteria.min_size is not None:
        conditions.append(_compare("gte", "oc:size", str(criteria.min_size)))
    if criteria.max_size is not None:
        conditions.append(_compare("lte", "oc:size", str(criteria.max_size)))
    # Nextcloud takes a Unix timestamp (or an ATOM date) for date properties.
    if criteria.modified_after is not None:
        conditions.append(_compare("gt", "d:getlastmodified", str(int(criteria.modified_after.timestamp()))))
    if criteria.modified_before is not None:
        conditions.append(_compare("lt", "d:getlastmodified", str(int(criteria.modified_before.timestamp()))))
    if criteria.favorites_only:
        conditions.append(_compare("eq", "oc:favorite", "yes"))  # Nextcloud's boolean literal
    if criteria.file_id is not None:
        conditions.append(_compare("eq", "oc:fileid", str(criteria.file_id)))
    if not conditions:
        # A SEARCH without a where clause fails on some servers (500): match every name instead.
        conditions.append(_compare("like", "d:displayname", "%"))
    if len(conditions) == 1:
        return element("d:where", children=conditions)
    return element("d:where", children=[element("d:and", children=conditions)])


def search_body(scope_href: str, criteria: Criteria, *, limit: int, order_by: str, descending: bool) -> bytes:
    direction = "d:descending" if descending else "d:ascending"
    basic = element("d:basicsearch", children=[
        element("d:select", children=[element("d:prop", children=[element(p) for p in ENTRY_PROPS])]),
        element("d:from", children=[element("d:scope", children=[element("d:href", scope_href),
                                                                 element("d:depth", "infinity")])]),
        where(criteria),
        element("d:orderby", children=[element("d:order", children=[_prop(ORDER_PROPS[order_by]), element(direction)])]),
        element("d:limit", children=[element("d:nresults", str(limit))]),
    ])
    return to_bytes(element("d:searchrequest", children=[basic]))


def favorites_body() -> bytes:
    return to_bytes(element("oc:filter-files", children=[
        element("d:prop", children=[element(p) for p in ENTRY_PROPS]),
        element("oc:filter-rules", children=[element("oc:favorite", "1")]),
    ]))


def favorite_patch(on: bool) -> bytes:
    return to_bytes(element("d:propertyupdate", children=[
        element("d:set", children=[element("d:prop", children=[element("oc:favorite", "1" if on else "0")])]),
    ]))
