"""Downloads: one GET streamed into a buffer bounded by the read limit, and text decoding.

The body is consumed as a stream and reading stops as soon as the requested bytes are in, so the
memory a read needs is the size of what it returns, whatever the size of the file.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

import anyio
import charset_normalizer
from ncmcp import Conflict, InvalidArgument, ToolContext, UpstreamError

#: MIME types outside text/* that are text.
TEXT_TYPES = frozenset({
    "application/json", "application/ld+json", "application/xml", "application/javascript", "application/x-javascript",
    "application/ecmascript", "application/yaml", "application/x-yaml", "application/toml", "application/sql",
    "application/x-sh", "application/x-shellscript", "application/x-python", "application/x-php", "application/x-httpd-php",
    "application/x-tex", "application/x-latex", "application/rtf", "application/x-ndjson", "application/csv",
    "application/x-empty", "image/svg+xml", "message/rfc822", "inode/x-empty",
})
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
#: charset detection looks at this much of a file without a declared charset.
DETECT_SAMPLE = 256 * 1024


def is_text_type(mime: str) -> bool:
    mime = mime.split(";")[0].strip().lower()
    return mime.startswith("text/") or mime in TEXT_TYPES or mime.endswith(("+xml", "+json"))


@dataclass(slots=True)
class Download:
    data: bytes
    offset: int  # where ``data`` starts in the file
    content_type: str
    charset: str | None  # declared in Content-Type, if any


async def fetch(ctx: ToolContext, path: str, *, offset: int, length: int, etag: str | None, ranged: bool) -> Download:
    """GET ``length`` bytes from ``offset`` (a Range request when ``ranged``).

    ``If-Match`` ties the bytes to the ETag the caller reports; a change in between is a
    :class:`Conflict` the caller retries. A server that ignores Range (200) is handled by skipping.
    """
    headers = {"Accept-Encoding": "identity"}  # byte ranges of the stored bytes, not of a compressed stream
    if ranged and length > 0:
        headers["Range"] = f"bytes={offset}-{offset + length - 1}"
    if etag:
        headers["If-Match"] = etag
    async with ctx.http.stream("GET", path, headers=headers, ok=(412, 416)) as response:
        if response.status_code == 412:
            raise Conflict("The file changed while it was being read", current_etag=response.headers.get("ETag"))
        if response.status_code == 416:
            raise InvalidArgument(f"offset {offset} is beyond the end of the file")
        skip = offset if (ranged and response.status_code == 200) else 0
        buffer = bytearray()
        async for block in response.aiter_bytes():
            if skip:
                if len(block) <= skip:
                    skip -= len(block)
                    continue
                block = block[skip:]
                skip = 0
            buffer += block[: length - len(buffer)]
            if len(buffer) >= length:
                break  # leave the rest unread: closing the stream drops the connection's remainder
        content_type = response.headers.get("Content-Type", "application/octet-stream")
        charset = response.charset_encoding
    if len(buffer) < length and not ranged:
        raise UpstreamError(f"Nextcloud sent {len(buffer)} of {length} bytes; try again")
    return Download(data=bytes(buffer), offset=offset, content_type=content_type, charset=charset)


async def decode_text(data: bytes, declared: str | None, *, partial: bool) -> tuple[str, str] | None:
    """``(text, charset)``, or ``None`` when the bytes are not text in any charset we can trust.

    The declared charset wins, then a byte-order mark, then UTF-8, then detection. A ``partial``
    read (a byte range) may cut a multi-byte character at either end: those bytes become U+FFFD.
    """
    errors = "replace" if partial else "strict"
    candidates: list[str] = []
    if declared:
        candidates.append(declared)
    for bom, name in _BOMS:
        if data.startswith(bom):
            candidates.append(name)
            break
    candidates.append("utf-8")
    for charset in candidates:
        try:
            codecs.lookup(charset)
            text = data.decode(charset, errors="strict")
        except (LookupError, UnicodeDecodeError):
            if partial and charset == "utf-8" and _mostly_utf8(data):
                return data.decode("utf-8", errors=errors), "utf-8"
            continue
        return text, codecs.lookup(charset).name
    if b"\x00" in data[:DETECT_SAMPLE]:
        return None  # NUL bytes without a UTF-16/32 BOM: binary
    best = await anyio.to_thread.run_sync(_detect, data[:DETECT_SAMPLE])
    if best is None:
        return None
    try:
        return data.decode(best, errors=errors), best
    except (LookupError, UnicodeDecodeError):
        return None


def _mostly_utf8(data: bytes) -> bool:
    """Valid UTF-8 once up to three bytes are trimmed at each end (a range cut mid-character)."""
    for head in range(4):
        for tail in range(4):
            try:
                data[head:len(data) - tail].decode("utf-8")
                return True
            except UnicodeDecodeError:
                continue
    return False


#: How much more "chaos" than the best guess Windows-1252 may show and still be preferred.
WESTERN_PREFERENCE = 0.2


def _detect(sample: bytes) -> str | None:
    """The most likely charset. Short Western texts are ambiguous between the single-byte code
    pages (a French line scores best as Baltic cp1257); Windows-1252, by far the most common
    legacy charset, wins when it is nearly as plausible as the best guess."""
    matches = list(charset_normalizer.from_bytes(sample))
    if not matches:
        return None
    best = matches[0]
    western = next((m for m in matches if m.encoding == "cp1252"), None)
    if western is not None and western.chaos <= best.chaos + WESTERN_PREFERENCE:
        return "cp1252"
    return best.encoding
