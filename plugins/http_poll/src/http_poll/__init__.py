"""http_poll: a Falco source plugin that polls an HTTP JSON API.

Modules, in reading order: :mod:`.config` (what the operator writes),
:mod:`.pointer` (RFC 6901), :mod:`.records` (record to event payload),
:mod:`.poller` (the HTTP worker thread), :mod:`.checkpoint` (what survives a
restart), :mod:`.redact` (secrets out of messages), :mod:`.plugin` (the
plugin class and the delivery guarantee).
"""

__version__ = "0.1.0"
