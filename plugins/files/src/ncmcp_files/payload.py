"""Content a write call brings: text or base64 in the JSON argument, handed out in chunks.

Base64 is decoded chunk by chunk, so a chunked upload holds the argument plus one decoded chunk,
never a second full copy of the file.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from dataclasses import dataclass

from ncmcp import InvalidArgument

_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_SPACE = re.compile(r"\s")


@dataclass(slots=True)
class Payload:
    """``size`` decoded bytes, available whole (:meth:`data`) or as consecutive chunks."""

    size: int
    _bytes: bytes | None = None
    _b64: str | None = None

    @classmethod
    def from_argument(cls, content: str, encoding: str) -> Payload:
        if encoding == "text":
            data = content.encode("utf-8")
            return cls(size=len(data), _bytes=data)
        text = _SPACE.sub("", content) if _SPACE.search(content) else content
        if len(text) % 4:
            text += "=" * (-len(text) % 4)  # tolerate missing padding
        if not _BASE64.fullmatch(text) or len(text) % 4:
            raise InvalidArgument("content is not valid base64 (standard alphabet A-Z a-z 0-9 + /, '=' padding)")
        padding = len(text) - len(text.rstrip("="))
        return cls(size=len(text) // 4 * 3 - padding, _b64=text)

    def data(self) -> bytes:
        if self._bytes is not None:
            return self._bytes
        return _decode(self._b64 or "")

    def chunks(self, chunk_size: int) -> Iterator[bytes]:
        """Consecutive chunks of ``chunk_size`` bytes (the last may be shorter)."""
        if self._bytes is not None:
            view = memoryview(self._bytes)
            for start in range(0, self.size, chunk_size):
                yield bytes(view[start:start + chunk_size])
            return
        text = self._b64 or ""
        step = max(3, chunk_size - chunk_size % 3) // 3 * 4  # whole base64 quanta per chunk
        for start in range(0, len(text), step):
            yield _decode(text[start:start + step])


def _decode(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidArgument(f"content is not valid base64: {exc}") from None
