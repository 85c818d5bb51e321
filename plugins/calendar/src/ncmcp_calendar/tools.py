"""All calendar tools, gathered for the plugin hook."""

from ncmcp_calendar.availability import TOOLS as AVAILABILITY
from ncmcp_calendar.bulk import TOOLS as BULK
from ncmcp_calendar.tools_calendars import TOOLS as CALENDARS
from ncmcp_calendar.tools_events import TOOLS as EVENTS
from ncmcp_calendar.tools_todos import TOOLS as TODOS

TOOLS = [*CALENDARS, *EVENTS, *AVAILABILITY, *BULK, *TODOS]
