"""Write Falco plugins in Python.

A plugin is a class deriving from the capabilities it implements::

    from falco_plugin import SourcePlugin, ExtractPlugin, field

Everything a plugin author needs is importable from here; ``falco_plugin_tools.build``
compiles a plugin into a shared library and ``falco_plugin_tools.host`` loads and
drives any plugin library the way Falco does.
"""

from typing import TYPE_CHECKING, Any

from ._internal.version import SDK_VERSION
from .config import Config, setting
from .errors import ConfigError, EndOfStream, PluginError, SDKError, SpecError, Timeout
from .event import ASYNC_EVENT, PLUGIN_EVENT, Event, per_event
from .extract import AbsTime, ExtractPlugin, Located, RelTime, field
from .jsonfields import JsonField, json_field
from .plugin import API_VERSION, Plugin
from .source import Batch, OpenParam, SourceInstance, SourcePlugin
from .tables import (
    BOOL,
    INT8,
    INT16,
    INT32,
    INT64,
    STRING,
    UINT8,
    UINT16,
    UINT32,
    UINT64,
    Entry,
    Field,
    HostTable,
    PluginTable,
    Row,
    StateType,
    SubtableField,
    TableError,
    Tables,
    TableView,
)

if TYPE_CHECKING:
    from .asyncevents import AsyncPlugin, AsyncSession, AsyncStats, Emit, block_sigpipe
    from .capture import CaptureListenPlugin, Routine, Routines
    from .extract import IPAddr, IPNet
    from .jsonrecords import JsonRecord, JsonRecordsError, NoRecordsError, NotJsonError, json_records
    from .metrics import Counter, Gauge, Metric, MetricValue
    from .parse import ALL_EVENTS, ALL_SOURCES, ParsePlugin

# The modules of the capabilities most plugins do without are imported on the
# first use of one of their names (and ipaddress on that of IPAddr/IPNet):
# every plugin library imports this package when it starts, and a plugin that
# never names them never pays for them.
_LAZY = {
    **dict.fromkeys(("IPAddr", "IPNet"), "extract"),
    **dict.fromkeys(("AsyncPlugin", "AsyncSession", "AsyncStats", "Emit", "block_sigpipe"), "asyncevents"),
    **dict.fromkeys(("CaptureListenPlugin", "Routine", "Routines"), "capture"),
    **dict.fromkeys(("Counter", "Gauge", "Metric", "MetricValue"), "metrics"),
    **dict.fromkeys(
        ("JsonRecord", "JsonRecordsError", "NoRecordsError", "NotJsonError", "json_records"), "jsonrecords"
    ),
    **dict.fromkeys(("ALL_EVENTS", "ALL_SOURCES", "ParsePlugin"), "parse"),
}

if not TYPE_CHECKING:  # for type checkers every name is imported above, and a typo stays an error

    def __getattr__(name: str) -> Any:
        module = _LAZY.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        from importlib import import_module

        value = getattr(import_module(f".{module}", __name__), name)
        globals()[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *_LAZY})


__version__ = SDK_VERSION

__all__ = [
    "ASYNC_EVENT",
    "PLUGIN_EVENT",
    "ALL_EVENTS",
    "ALL_SOURCES",
    "BOOL",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "STRING",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "CaptureListenPlugin",
    "Entry",
    "Field",
    "HostTable",
    "ParsePlugin",
    "PluginTable",
    "Routine",
    "Routines",
    "Row",
    "StateType",
    "SubtableField",
    "TableError",
    "TableView",
    "Tables",
    "API_VERSION",
    "AbsTime",
    "AsyncPlugin",
    "AsyncSession",
    "AsyncStats",
    "block_sigpipe",
    "Batch",
    "Config",
    "ConfigError",
    "Counter",
    "Emit",
    "EndOfStream",
    "Event",
    "ExtractPlugin",
    "Gauge",
    "IPAddr",
    "IPNet",
    "JsonField",
    "JsonRecord",
    "JsonRecordsError",
    "Located",
    "Metric",
    "MetricValue",
    "NoRecordsError",
    "NotJsonError",
    "OpenParam",
    "Plugin",
    "PluginError",
    "RelTime",
    "SDKError",
    "SourceInstance",
    "SourcePlugin",
    "SpecError",
    "Timeout",
    "field",
    "json_field",
    "json_records",
    "per_event",
    "setting",
]
