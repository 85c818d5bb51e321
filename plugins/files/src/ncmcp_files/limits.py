"""Size limits, from ``NEXTCLOUD_MCP_FILES_<KEY>`` settings (bytes)."""

from __future__ import annotations

from dataclasses import dataclass

from ncmcp import ToolContext

MIB = 1024 * 1024
DEFAULT_MAX_READ = 4 * MIB
DEFAULT_MAX_WRITE = 64 * MIB
DEFAULT_CHUNK = 10 * MIB
#: Nextcloud numbers the chunks of one upload 1…10000.
MAX_CHUNKS = 10_000


@dataclass(frozen=True, slots=True)
class Limits:
    max_read: int  # bytes one read returns (whole file or one range)
    max_write: int  # bytes one write call accepts
    chunk_size: int  # above this a write goes through chunked upload v2, in chunks of this size


def _setting(ctx: ToolContext, key: str, default: int, minimum: int) -> int:
    raw = ctx.settings.get(key)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        ctx.log.warning("files_bad_setting", key=key, value=raw)
        return default
    return max(value, minimum)


def limits(ctx: ToolContext) -> Limits:
    return Limits(
        max_read=_setting(ctx, "max_read_bytes", DEFAULT_MAX_READ, 1024),
        max_write=_setting(ctx, "max_write_bytes", DEFAULT_MAX_WRITE, 1024),
        chunk_size=_setting(ctx, "chunk_size", DEFAULT_CHUNK, 64 * 1024),
    )
