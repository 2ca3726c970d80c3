"""Event parsing in the Python host, dispatched as libsinsp does.

libsinsp calls a parser's ``plugin_parse_event`` for every event whose type
is among the plugin's parse event types (resolved after init: the plugin's
list, or, when it gives none, every type for plugins compatible with the
``syscall`` source and plugin events only otherwise) and whose source is
among its parse sources (an empty list: every source; never an event of no
known source). The call carries the table reader and writer vtables.
libsinsp (0.25) ignores a failed call and goes on with the next event, as the
Python host's event loops do (``strict=False``); called directly, a failure
raises :class:`HostError` with the plugin's error (``strict=True``), so that a
test sees it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from falco_plugin_tools.host._ffi import Rc, ffi
from falco_plugin_tools.host.errors import HostError
from falco_plugin_tools.host.events import HostEvent

if TYPE_CHECKING:
    from falco_plugin_tools.host.views import HandleView

__all__ = ["parse_event", "parses"]


def parses(handle: HandleView, event: HostEvent) -> bool:
    """Whether libsinsp would hand ``event`` to this plugin's parser."""
    if "parsing" not in handle.info.capabilities:
        return False
    if event.source is None:
        return False  # libsinsp rejects events of no known source before anything else
    codes = handle.parse_event_types
    sources = handle.info.parse_event_sources
    return (codes is None or event.type in codes) and (not sources or event.source in sources)


def _parse_input(handle: HandleView) -> Any:
    inp = getattr(handle, "_parse_input", None)
    if inp is None:
        from falco_plugin_tools.host.raw import _owner_last_error

        inp = ffi.new("ss_plugin_event_parse_input *")
        inp.owner = handle._state._owner
        inp.get_owner_last_error = _owner_last_error
        tables = handle.tables
        inp.table_reader_ext = tables.reader_ext if tables is not None else ffi.NULL
        inp.table_writer_ext = tables.writer_ext if tables is not None else ffi.NULL
        handle._parse_input = inp  # type: ignore[attr-defined]
    return inp


def parse_event(handle: HandleView, event: HostEvent, strict: bool = True) -> bool:
    """Parse ``event`` if the plugin parses it; ``False`` when it does not, or when it failed and not
    ``strict`` (counted in ``handle.parse_failures``, the plugin's error in ``handle.last_error``)."""
    state = handle._state
    if not parses(handle, event):
        return False
    rc = state.library.call("parse_event", state.state, event.event_input(), _parse_input(handle))
    if handle.tables is not None:
        handle.tables.check_released(state, "parse_event")
    if rc != Rc.SUCCESS:
        handle.parse_failures += 1
        if not strict:
            return False
        raise HostError(f"cannot parse event with plugin {handle.info.name}: {handle.last_error}")
    return True
