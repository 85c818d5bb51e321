"""Sabre/Nextcloud DAV error bodies, shared by every part of the sandbox."""

from __future__ import annotations

from xml.sax.saxutils import escape

#: Sabre exception class per HTTP status, as Nextcloud names them in error bodies.
SABRE_EXCEPTIONS: dict[int, str] = {
    400: "Sabre\\DAV\\Exception\\BadRequest",
    401: "Sabre\\DAV\\Exception\\NotAuthenticated",
    403: "Sabre\\DAV\\Exception\\Forbidden",
    404: "Sabre\\DAV\\Exception\\NotFound",
    405: "Sabre\\DAV\\Exception\\MethodNotAllowed",
    409: "Sabre\\DAV\\Exception\\Conflict",
    412: "Sabre\\DAV\\Exception\\PreconditionFailed",
    415: "Sabre\\DAV\\Exception\\UnsupportedMediaType",
    416: "Sabre\\DAV\\Exception\\RequestedRangeNotSatisfiable",
    423: "Sabre\\DAV\\Exception\\Locked",
    501: "Sabre\\DAV\\Exception\\NotImplemented",
    503: "Sabre\\DAV\\Exception\\ServiceUnavailable",
    507: "Sabre\\DAV\\Exception\\InsufficientStorage",
}


def exception_for(status: int) -> str:
    return SABRE_EXCEPTIONS.get(status, "Sabre\\DAV\\Exception")


def error_body(exception: str, message: str, extra_xml: str = "") -> bytes:
    """``<d:error>`` with ``s:exception`` and ``s:message`` (``extra_xml``: more child elements)."""
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<d:error xmlns:d="DAV:" xmlns:s="http://sabredav.org/ns"'
        ' xmlns:cal="urn:ietf:params:xml:ns:caldav">\n'
        f"  <s:exception>{escape(exception)}</s:exception>\n"
        f"  <s:message>{escape(message)}</s:message>\n"
        f"{extra_xml}"
        "</d:error>\n"
    ).encode("utf-8")
