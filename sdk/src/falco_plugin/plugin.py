"""The base every plugin derives from: identity, lifetime, configuration, logging.

A plugin is a class. Its class attributes say who it is (``name``,
``version``...); its methods say what it does. Capabilities are mixins:
derive from :class:`~falco_plugin.SourcePlugin` to produce events,
:class:`~falco_plugin.ExtractPlugin` to offer fields, or both. The SDK
exports exactly the C symbols of the capabilities the class has.

The host creates one instance per configured plugin and calls :meth:`init`
with the parsed configuration; the type annotation of ``init``'s ``config``
parameter (a :class:`~falco_plugin.Config` subclass) is the configuration's
schema.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from .tables import Tables

__all__ = ["Plugin", "API_VERSION"]

API_VERSION = "3.12.0"
"""The newest plugin API the SDK declares (Falco 0.44)."""


class Plugin:
    """Base class of every plugin.

    Set ``name``, ``version``, ``description`` and ``contact``; override
    :meth:`init` to read the configuration and :meth:`destroy` to release
    what ``init`` acquired.
    """

    name: ClassVar[str]
    """Unique plugin name, as registered in the plugin registry."""
    version: ClassVar[str] = "0.1.0"
    """Semantic version of the plugin."""
    description: ClassVar[str] = ""
    contact: ClassVar[str] = ""
    """Where to reach the authors (a URL or an email address)."""
    required_api_version: ClassVar[str | None] = None
    """Plugin API version the plugin needs; by default the lowest that has every
    capability the class implements."""
    required_event_schema_version: ClassVar[str | None] = None
    """Version of the host's event schema (syscall event layouts) the plugin
    relies on. Hosts reject a plugin that may see syscall events without one,
    so the SDK declares ``"4.0.0"`` (any current host) for plugins whose
    fields apply to the ``syscall`` source; set it when you read event
    parameters whose layout changed in a later schema."""

    log: logging.Logger
    """A standard logger whose records go to the host's log (Falco's log)."""
    tables: Tables
    """The host's state tables (see :mod:`falco_plugin.tables`): open them and
    obtain field accessors in :meth:`init`."""

    def init(self, config: Any) -> None:
        """Called once after the host validated the configuration.

        Annotate ``config`` with a :class:`~falco_plugin.Config` subclass to
        receive it parsed; annotate it with ``str`` for the raw string.
        """

    def set_config(self, config: Any) -> None:
        """Apply a configuration change at run time (Falco's ``plugin_set_config``).

        Override it to support changes without a restart; the SDK exports
        ``plugin_set_config`` only for classes that do. ``config`` is parsed
        and validated like ``init``'s; an invalid one never reaches this
        method, and raising keeps the current configuration in force.
        """
        raise NotImplementedError

    def destroy(self) -> None:
        """Called once when the host unloads the plugin, if :meth:`init` succeeded.

        Stop every thread the plugin started: after it returns, ``self.log``
        no longer reaches the host.
        """
