"""Calendar (collection) tools: list and manage."""

from __future__ import annotations

import re
import unicodedata
import uuid
from typing import Any

from ncmcp import Access, InvalidArgument, ToolContext, ToolSpec

from ncmcp_calendar import caldav
from ncmcp_calendar.schemas import CALENDAR_IN, CALENDAR_OUT, DESTRUCTIVE, NO_CONTROLS, READ, TEXT_CHARS, obj

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_HEX = re.compile(r"^#(?:[0-9A-Fa-f]{3}|[0-9A-Fa-f]{6}|[0-9A-Fa-f]{8})$")


async def list_calendars(ctx: ToolContext, component: str | None = None) -> dict[str, Any]:
    calendars = await caldav.list_calendars(ctx)
    if component:
        calendars = [c for c in calendars if c.accepts(component)]
    return {"calendars": [c.as_dict() for c in calendars], "home": await caldav.calendar_home(ctx)}


def slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    name = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:60]
    return name or f"calendar-{uuid.uuid4().hex[:8]}"


async def manage_calendar(ctx: ToolContext, action: str, calendar: str | None = None, name: str | None = None,
                          display_name: str | None = None, color: str | None = None, description: str | None = None,
                          components: list[str] | None = None) -> dict[str, Any]:
    if color is not None and not _HEX.match(color):
        raise InvalidArgument("color must be #RRGGBB (or #RGB / #RRGGBBAA)")
    if action == "create":
        if not display_name and not name:
            raise InvalidArgument("Give display_name (and optionally name) for the new calendar")
        uri = name or slug(display_name or "")
        if not _NAME.match(uri):
            raise InvalidArgument("name may contain letters, digits, '.', '_' and '-' (it becomes part of the URL)")
        comps = sorted({c.upper() for c in (components or ["VEVENT"])})
        href = await caldav.make_calendar(ctx, uri, display_name or uri, color, comps, description)
        created = caldav.pick_calendar(await caldav.list_calendars(ctx), href)
        return {"action": action, "calendar": created.as_dict(), "deleted": False}
    if not calendar:
        raise InvalidArgument(f"Give `calendar` to {action}")
    target = caldav.pick_calendar(await caldav.list_calendars(ctx), calendar)
    if action == "update":
        if components is not None or name is not None:
            raise InvalidArgument("A calendar's name and components cannot change after creation; create a new one")
        if display_name is None and color is None and description is None:
            raise InvalidArgument("Nothing to change: give display_name, color or description")
        if target.read_only:
            raise InvalidArgument(f"Calendar {target.name!r} is read-only")
        await caldav.update_calendar(ctx, target, display_name, color, description)
        updated = caldav.pick_calendar(await caldav.list_calendars(ctx), target.href)
        return {"action": action, "calendar": updated.as_dict(), "deleted": False}
    await caldav.delete_calendar(ctx, target)
    return {"action": action, "calendar": target.as_dict(), "deleted": True}


TOOLS = [
    ToolSpec(name="nc_calendar_list_calendars", title="List calendars", access=Access.READ, handler=list_calendars,
             hints=READ,
             description="The user's calendars: name (use it as `calendar` in other tools), display name, colour, the "
                         "components each accepts (VEVENT events, VTODO tasks) and whether it is read-only.",
             input_schema=obj({"component": {"type": "string", "enum": ["VEVENT", "VTODO", "VJOURNAL"],
                                             "description": "Only calendars accepting this component"}}),
             output_schema={"type": "object", "properties": {"calendars": {"type": "array", "items": CALENDAR_OUT},
                                                             "home": {"type": "string"}}, "required": ["calendars"]}),
    ToolSpec(name="nc_calendar_manage_calendar", title="Create, rename, recolour or delete a calendar",
             access=Access.WRITE, handler=manage_calendar, hints=DESTRUCTIVE,
             description="action 'create' (display_name, optional name, color, description and components, e.g. "
                         "['VTODO'] for a task list or ['VEVENT','VTODO']; default ['VEVENT']), 'update' (rename with "
                         "display_name, recolour with color, description) or 'delete' (removes the calendar and "
                         "everything in it).",
             input_schema=obj({"action": {"type": "string", "enum": ["create", "update", "delete"]},
                               "calendar": CALENDAR_IN,
                               "name": {"type": "string", "maxLength": 100, "pattern": r"^[A-Za-z0-9._-]*$",
                                        "description": "URL name for a new calendar"},
                               "display_name": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": NO_CONTROLS},
                               "color": {"type": "string", "maxLength": 9, "pattern": "^#[0-9A-Fa-f]{3,8}$",
                                         "description": "#RRGGBB"},
                               "description": {"type": "string", "maxLength": 2000, "pattern": TEXT_CHARS},
                               "components": {"type": "array", "minItems": 1, "uniqueItems": True,
                                              "items": {"type": "string", "enum": ["VEVENT", "VTODO", "VJOURNAL"]}}},
                              ["action"]),
             output_schema={"type": "object", "properties": {"action": {"type": "string"}, "calendar": CALENDAR_OUT,
                                                             "deleted": {"type": "boolean"}},
                            "required": ["action", "calendar", "deleted"]}),
]
