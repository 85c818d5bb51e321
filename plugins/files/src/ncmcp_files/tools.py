"""The Files tools and resource: schemas and descriptions. Handlers live in :mod:`browse`,
:mod:`change`, :mod:`find` and :mod:`history`; they never see tokens or check scopes."""

from __future__ import annotations

from typing import Any

from ncmcp import Access, ResourceSpec, ToolHints, ToolSpec

from ncmcp_files import browse, change, find, history
from ncmcp_files.entries import ENTRY_SCHEMA
from ncmcp_files.limits import DEFAULT_CHUNK, DEFAULT_MAX_READ, DEFAULT_MAX_WRITE, MIB


def _obj(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required or [], "additionalProperties": False}


def _out(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required or list(properties)}


PATH_HELP = "Path relative to your Nextcloud root, e.g. 'Documents/report.pdf'; '' or '/' is the root"
DATE_HELP = "ISO 8601 date or date-time (UTC unless it says otherwise)"


def _path(description: str = PATH_HELP) -> dict[str, Any]:
    return {"type": "string", "maxLength": 4096, "description": description}


PATH = _path()
ETAG = {"type": "string", "minLength": 1, "maxLength": 256, "description": "An etag from an earlier result of these tools"}
FOLDER = {**_path("Only look inside this folder (and below); '' is everything"), "default": ""}
OFFSET = {"type": "integer", "minimum": 0, "default": 0, "description": "How many entries to skip (paging)"}
NULL = {"type": "null"}
MAYBE_ENTRY = {"anyOf": [ENTRY_SCHEMA, NULL]}
NEXT = {"type": ["integer", "null"], "description": "Pass as offset for the next page; null when there is none"}
ENTRIES = {"type": "array", "items": ENTRY_SCHEMA}


def _limit(default: int, maximum: int) -> dict[str, Any]:
    return {"type": "integer", "minimum": 1, "maximum": maximum, "default": default}


LIST_OUT = _out({"directory": ENTRY_SCHEMA, "entries": ENTRIES, "total": {"type": "integer"}, "offset": {"type": "integer"},
                 "next_offset": NEXT})
READ_OUT = _out({
    "entry": ENTRY_SCHEMA,
    "encoding": {"type": "string", "enum": ["text", "binary"], "description": "binary: the bytes are in the embedded resource"},
    "text": {"type": ["string", "null"]},
    "charset": {"type": ["string", "null"]},
    "offset": {"type": "integer", "description": "First byte returned"},
    "length": {"type": "integer", "description": "Bytes returned"},
    "size": {"type": "integer", "description": "Size of the whole file"},
    "next_offset": NEXT,
})
WRITE_OUT = _out({
    "status": {"type": "string", "enum": ["written", "uploading", "cancelled", "not_found"]},
    "path": {"type": "string"},
    "entry": MAYBE_ENTRY,
    "created": {"type": ["boolean", "null"], "description": "true: a new file; false: an existing file was replaced"},
    "bytes": {"type": "integer", "description": "Bytes written (for an upload in pieces: received so far)"},
    "chunked": {"type": "boolean"},
    "upload_id": {"type": ["string", "null"], "description": "While status is 'uploading': pass it with the next piece"},
})
MKDIR_OUT = _out({"entry": ENTRY_SCHEMA, "created": {"type": "boolean"}})
DELETE_OUT = _out({"deleted": {"type": "boolean"}, "path": {"type": "string"}, "type": {"type": "string"},
                   "file_id": {"type": ["integer", "null"]}, "etag": {"type": ["string", "null"]}})
TRANSFER_OUT = _out({"source": {"type": "string"}, "destination": {"type": "string"}, "entry": ENTRY_SCHEMA,
                     "overwritten": {"type": "boolean", "description": "true when an existing destination was replaced"}})
SEARCH_OUT = _out({"results": ENTRIES, "count": {"type": "integer"}, "folder": {"type": "string"},
                   "may_have_more": {"type": "boolean", "description": "The limit was reached; raise it or narrow the search"}})
FAVORITES_OUT = _out({"favorites": ENTRIES, "total": {"type": "integer"}, "offset": {"type": "integer"}, "next_offset": NEXT})
TRASH_ITEM = _out({
    "trash_name": {"type": "string", "description": "Pass to nc_files_restore_from_trash"},
    "name": {"type": "string"},
    "original_location": {"type": "string"},
    "deleted": {"type": ["string", "null"], "description": "When it was deleted, ISO 8601 UTC"},
    "type": {"type": "string", "enum": ["file", "directory"]},
    "size": {"type": "integer"},
    "mime_type": {"type": "string"},
    "file_id": {"type": ["integer", "null"]},
    "etag": {"type": ["string", "null"]},
})
TRASH_OUT = _out({"items": {"type": "array", "items": TRASH_ITEM}, "total": {"type": "integer"}, "offset": {"type": "integer"},
                  "next_offset": NEXT})
RESTORE_TRASH_OUT = _out({"restored": {"type": "boolean"}, "trash_name": {"type": "string"},
                          "original_location": {"type": "string"}, "entry": MAYBE_ENTRY})
VERSION = _out({
    "version_id": {"type": "string", "description": "Pass to nc_files_restore_version"},
    "size": {"type": "integer"},
    "modified": {"type": ["string", "null"]},
    "etag": {"type": ["string", "null"]},
    "mime_type": {"type": "string"},
    "label": {"type": ["string", "null"]},
    "author": {"type": ["string", "null"]},
})
VERSIONS_OUT = _out({"entry": ENTRY_SCHEMA, "versions": {"type": "array", "items": VERSION}, "total": {"type": "integer"}})
RESTORE_VERSION_OUT = _out({"entry": ENTRY_SCHEMA, "restored_version": {"type": "string"}})

SEARCH_IN = {
    "name": {"type": "string", "minLength": 1, "maxLength": 250,
             "description": "Name pattern, case-insensitive: * any characters, ? one character; "
                            "without wildcards, names containing it"},
    "mime_type": {"type": "string", "maxLength": 255,
                  "description": "'application/pdf', or a whole family: 'image/*' or 'image'"},
    "type": {"type": "string", "enum": ["any", "file", "directory"], "default": "any"},
    "min_size": {"type": "integer", "minimum": 0, "description": "Bytes"},
    "max_size": {"type": "integer", "minimum": 0, "description": "Bytes"},
    "modified_after": {"type": "string", "maxLength": 40, "description": DATE_HELP},
    "modified_before": {"type": "string", "maxLength": 40, "description": DATE_HELP},
    "favorites_only": {"type": "boolean", "default": False},
    "folder": FOLDER,
    "limit": _limit(50, 1000),
    "order_by": {"type": "string", "enum": ["modified", "name", "size"], "default": "modified"},
    "descending": {"type": "boolean", "default": True},
}

READ_HINT = ToolHints(read_only=True, destructive=False, idempotent=True)

TOOLS = [
    ToolSpec(name="nc_files_list_directory", title="List a folder", access=Access.READ, handler=browse.list_directory,
             description="List the files and folders directly inside a folder (not recursive), sorted, a page at a "
                         "time. Each entry has path, type, size, modified time, MIME type, etag, file id, favourite "
                         "flag and permissions.",
             input_schema=_obj({"path": {**PATH, "default": ""}, "limit": _limit(100, 1000), "offset": OFFSET,
                                "sort_by": {"type": "string", "enum": ["name", "modified", "size", "type"], "default": "name"},
                                "descending": {"type": "boolean", "default": False},
                                "folders_first": {"type": "boolean", "default": True}}),
             output_schema=LIST_OUT, hints=READ_HINT),
    ToolSpec(name="nc_files_get_file_info", title="Get file information", access=Access.READ, handler=browse.get_file_info,
             description="Information about one file or folder: type, size, modified time, MIME type, etag, file id, "
                         "favourite flag and permissions.",
             input_schema=_obj({"path": PATH}, ["path"]), output_schema=ENTRY_SCHEMA, hints=READ_HINT),
    ToolSpec(name="nc_files_read_file", title="Read a file", access=Access.READ, handler=browse.read_file,
             description="Read a file. Text comes back decoded (its charset is reported); other content comes back as an "
                         f"embedded binary resource. One call returns at most {DEFAULT_MAX_READ // MIB} MiB by default "
                         "(setting NEXTCLOUD_MCP_FILES_MAX_READ_BYTES); larger files are refused unless you read a byte range "
                         "with offset and length, continuing at next_offset. A range that cuts a multi-byte character shows "
                         "U+FFFD at its edges. mode forces 'text' or 'binary'.",
             input_schema=_obj({"path": PATH, "offset": {"type": "integer", "minimum": 0, "description": "First byte to read"},
                                "length": {"type": "integer", "minimum": 1, "description": "Bytes to read from offset"},
                                "mode": {"type": "string", "enum": ["auto", "text", "binary"], "default": "auto"}}, ["path"]),
             output_schema=READ_OUT, hints=READ_HINT),
    ToolSpec(name="nc_files_write_file", title="Write a file", access=Access.WRITE, handler=change.write_file,
             description="Write a file; never replaces anything silently. By default it only creates: if the file "
                         "exists you get a conflict with its current etag. To replace a file pass the etag you read (the "
                         "write fails with a conflict if someone changed it meanwhile), or overwrite=true to replace "
                         "whatever is there. content is text (encoding='text', stored as UTF-8) or base64 "
                         f"(encoding='base64'). One call takes up to {DEFAULT_MAX_WRITE // MIB} MiB by default "
                         "(NEXTCLOUD_MCP_FILES_MAX_WRITE_BYTES), but a request over HTTP is limited to about 4 MiB of "
                         "JSON (about 3 MB of base64-encoded data): send bigger files in pieces: final=false with the "
                         "first piece returns an upload_id; send each next piece with the upload_id the previous call "
                         "returned (it changes) and offset = bytes sent so far (a lost or repeated piece is refused), and "
                         "final=true with the last one. Pieces go to Nextcloud's chunked upload; "
                         f"content above {DEFAULT_CHUNK // MIB} MiB (NEXTCLOUD_MCP_FILES_CHUNK_SIZE) is chunked too. "
                         "cancel=true with an upload_id discards an unfinished upload. create_parents creates missing folders.",
             input_schema=_obj({
                 "path": PATH,
                 "content": {"type": "string", "default": "", "description": "The file content (or this piece of it)"},
                 "encoding": {"type": "string", "enum": ["text", "base64"], "default": "text"},
                 "etag": {**ETAG, "description": "Replace only this version of the file (from read_file/get_file_info)"},
                 "overwrite": {"type": "boolean", "default": False, "description": "Replace the file whatever its version"},
                 "create_parents": {"type": "boolean", "default": False},
                 "upload_id": {"type": "string", "maxLength": 64,
                               "description": "Continue an upload in pieces: the id the previous call returned"},
                 "final": {"type": "boolean", "default": True, "description": "false: more pieces follow"},
                 "offset": {"type": "integer", "minimum": 0, "description": "For a piece: where it starts in the file"},
                 "total_size": {"type": "integer", "minimum": 0, "description": "For pieces: the final size, checked at the end"},
                 "cancel": {"type": "boolean", "default": False},
             }, ["path"]),
             output_schema=WRITE_OUT, hints=ToolHints(read_only=False, destructive=True, idempotent=False)),
    ToolSpec(name="nc_files_create_directory", title="Create a folder", access=Access.WRITE, handler=change.create_directory,
             description="Create a folder. An existing folder is a conflict unless create_parents=true, which also creates "
                         "missing folders above it (like mkdir -p).",
             input_schema=_obj({"path": PATH, "create_parents": {"type": "boolean", "default": False}}, ["path"]),
             output_schema=MKDIR_OUT, hints=ToolHints(read_only=False, destructive=False, idempotent=False)),
    ToolSpec(name="nc_files_delete", title="Delete a file or folder", access=Access.WRITE, handler=change.delete,
             description="Delete a file or a folder with everything inside. Nextcloud moves it to the trash bin, from where "
                         "nc_files_restore_from_trash brings it back. Give the etag you read to delete only that version: if it "
                         "changed meanwhile nothing is deleted and you get a conflict with the current etag.",
             input_schema=_obj({"path": PATH, "etag": ETAG}, ["path"]), output_schema=DELETE_OUT,
             hints=ToolHints(read_only=False, destructive=True, idempotent=True)),
    ToolSpec(name="nc_files_move", title="Move or rename", access=Access.WRITE, handler=change.move,
             description="Move or rename a file or folder. destination is the full new path (folder and name). An existing "
                         "destination is a conflict unless overwrite=true, or destination_etag names the version you "
                         "accept to replace. source_etag moves only if the source is still that version.",
             input_schema=_obj({"source": PATH, "destination": PATH, "overwrite": {"type": "boolean", "default": False},
                                "source_etag": ETAG, "destination_etag": ETAG}, ["source", "destination"]),
             output_schema=TRANSFER_OUT, hints=ToolHints(read_only=False, destructive=True, idempotent=False)),
    ToolSpec(name="nc_files_copy", title="Copy", access=Access.WRITE, handler=change.copy,
             description="Copy a file or a folder (with everything inside). destination is the full new path. An "
                         "existing destination is a conflict unless overwrite=true, or destination_etag names the "
                         "version you accept to replace.",
             input_schema=_obj({"source": PATH, "destination": PATH, "overwrite": {"type": "boolean", "default": False},
                                "destination_etag": ETAG}, ["source", "destination"]),
             output_schema=TRANSFER_OUT, hints=ToolHints(read_only=False, destructive=True, idempotent=False)),
    ToolSpec(name="nc_files_search", title="Search files", access=Access.READ, handler=find.search,
             description="Search files and folders on the server (WebDAV SEARCH) by any combination of name "
                         "pattern, MIME type, file/folder, size range, modification dates and favourites, within a "
                         "folder. Newest first by default.",
             input_schema=_obj(SEARCH_IN), output_schema=SEARCH_OUT, hints=READ_HINT),
    ToolSpec(name="nc_files_find_by_name", title="Find files by name", access=Access.READ, handler=find.find_by_name,
             description="Find files and folders whose name matches a pattern (case-insensitive; * any characters, ? one "
                         "character; without wildcards: names containing the text), anywhere below a folder.",
             input_schema=_obj({"pattern": SEARCH_IN["name"], "folder": FOLDER, "limit": _limit(50, 1000)}, ["pattern"]),
             output_schema=SEARCH_OUT, hints=READ_HINT),
    ToolSpec(name="nc_files_find_by_type", title="Find files by type", access=Access.READ, handler=find.find_by_type,
             description="Find files of a MIME type ('application/pdf') or family ('image/*' or 'image') below a "
                         "folder, newest first.",
             input_schema=_obj({"mime_type": {**SEARCH_IN["mime_type"], "minLength": 1}, "folder": FOLDER,
                                "limit": _limit(50, 1000)}, ["mime_type"]),
             output_schema=SEARCH_OUT, hints=READ_HINT),
    ToolSpec(name="nc_files_list_favorites", title="List favourites", access=Access.READ, handler=find.list_favorites,
             description="List the files and folders marked as favourites (optionally only below a folder), by path.",
             input_schema=_obj({"folder": FOLDER, "limit": _limit(100, 1000), "offset": OFFSET}),
             output_schema=FAVORITES_OUT, hints=READ_HINT),
    ToolSpec(name="nc_files_set_favorite", title="Mark or unmark a favourite", access=Access.WRITE, handler=find.set_favorite,
             description="Mark a file or folder as a favourite (favorite=true) or remove the mark (false). Returns the entry.",
             input_schema=_obj({"path": PATH, "favorite": {"type": "boolean", "default": True}}, ["path"]),
             output_schema=ENTRY_SCHEMA, hints=ToolHints(read_only=False, destructive=False, idempotent=True)),
    ToolSpec(name="nc_files_list_trash", title="List the trash bin", access=Access.READ, handler=history.list_trash,
             description="List deleted files and folders in the trash bin, most recently deleted first, with where they were.",
             input_schema=_obj({"limit": _limit(100, 1000), "offset": OFFSET}), output_schema=TRASH_OUT, hints=READ_HINT),
    ToolSpec(name="nc_files_restore_from_trash", title="Restore from the trash bin", access=Access.WRITE,
             handler=history.restore_from_trash,
             description="Restore an item from the trash bin (trash_name from nc_files_list_trash) to where it was. If that "
                         "name is taken Nextcloud picks a free one, and a missing folder means it lands in the root; the "
                         "returned entry says where it is.",
             input_schema=_obj({"trash_name": {"type": "string", "minLength": 1, "maxLength": 1024}}, ["trash_name"]),
             output_schema=RESTORE_TRASH_OUT, hints=ToolHints(read_only=False, destructive=False, idempotent=False)),
    ToolSpec(name="nc_files_list_versions", title="List file versions", access=Access.READ, handler=history.list_versions,
             description="List the older versions Nextcloud keeps of a file, newest first.",
             input_schema=_obj({"path": PATH}, ["path"]), output_schema=VERSIONS_OUT, hints=READ_HINT),
    ToolSpec(name="nc_files_restore_version", title="Restore a file version", access=Access.WRITE,
             handler=history.restore_version,
             description="Make an older version (version_id from nc_files_list_versions) the current content of a file. "
                         "The content it replaces is kept as a version. Give the file's etag to restore only if the file "
                         "has not changed since you read it.",
             input_schema=_obj({"path": PATH, "version_id": {"type": "string", "minLength": 1, "maxLength": 64},
                                "etag": ETAG}, ["path", "version_id"]),
             output_schema=RESTORE_VERSION_OUT, hints=ToolHints(read_only=False, destructive=True, idempotent=False)),
]

RESOURCES = [
    ResourceSpec(uri_template="nc://files/{path}", name="file",
                 description="A file in your Nextcloud (text or binary), or a folder's listing as JSON. The path is "
                             "percent-encoded like a URL path, e.g. nc://files/Documents/My%20notes.md. Files above "
                             "the read limit are refused: read those in ranges with nc_files_read_file.",
                 mime_type="application/octet-stream", handler=browse.read_resource),
]
