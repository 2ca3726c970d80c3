"""A plugin host that behaves like libsinsp, in Python.

Load any plugin library (one built with this SDK, or a C/Go/Rust one) and
drive it the way Falco does::

    from falco_plugin_tools.host import PluginLibrary

    with PluginLibrary.load("libdummy_py.so") as lib:
        with lib.init('{"jitter": 0}') as plugin, plugin.open('{"maxEvents": 3}') as capture:
            for event in capture.events():
                print(event.num, plugin.extract(event, "dummy.value"))

Loading follows libsinsp's checks and messages (API version, required
symbols, capabilities, fields JSON); ``init`` validates the configuration
against the plugin's schema first; events are copied out of the plugin,
checked like libscap does and numbered from 1; ``extract`` sends one field
per call with the argument parsed like a Falco filter would.

That checking layer is built on :mod:`falco_plugin_tools.host.raw`, which calls
each ``plugin_*`` function directly and checks nothing: use it to do what no
real host does (malformed events, arbitrary requests, reading returned
memory after later calls). ``PluginLibrary.raw`` and ``PluginHandle.raw``
lead from one layer to the other. :mod:`falco_plugin_tools.host.runners` puts this
host and the C host program (``chost.c``) behind one small interface, so a
test can run on both (the ``host`` fixture of :mod:`falco_plugin_tools.testing`).
"""

from falco_plugin_tools.host import raw
from falco_plugin_tools.host._ffi import Rc
from falco_plugin_tools.host.capture import Capture
from falco_plugin_tools.host.errors import ExtractionError, FieldExpressionError, HostError, LoadError
from falco_plugin_tools.host.events import HostEvent
from falco_plugin_tools.host.fields import FieldInfo, FieldRequest, parse_field_expression
from falco_plugin_tools.host.handle import LogRecord, PluginHandle, Value
from falco_plugin_tools.host.loader import HOST_API_VERSION, PluginInfo, PluginLibrary

__all__ = [
    "HOST_API_VERSION",
    "Capture",
    "ExtractionError",
    "FieldExpressionError",
    "FieldInfo",
    "FieldRequest",
    "HostError",
    "HostEvent",
    "LoadError",
    "LogRecord",
    "PluginHandle",
    "PluginInfo",
    "PluginLibrary",
    "Rc",
    "Value",
    "parse_field_expression",
    "raw",
]
