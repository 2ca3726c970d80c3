"""The plugin API's capabilities, each described once.

A capability is a group of ``plugin_*`` symbols: the host decides that a
plugin has it when its required symbols are exported. :data:`API` lists all
five capabilities of plugin API 3.x with their symbols, so that the builder,
both hosts and the registry tooling agree on them.

The SDK implements a capability with one module here (``sourcing.py``,
``extraction.py``, ...) defining an :class:`Implementation`: the author-facing
base class that selects it, how a plugin class's declarations are resolved
into a :class:`CapabilitySpec`, the C file of its glue (``build/glue/<name>.c``)
and the runtime mixin the C glue calls into. Adding a capability means adding
such a module, its C file, and a line to :data:`CAPABILITY_UNITS` (which also
names the author module of its base class: a plugin library imports a
capability's modules only when its plugin can have it, see :func:`selectable`).

An optional *feature* is a group of symbols that is not a capability
(:data:`FEATURES`: ``get_metrics``): the host never lists it, and any plugin
may have it, whatever its bases. The SDK implements one the same way, with a
:class:`FeatureImplementation` (``metrics.py`` + ``build/glue/metrics.c``) listed
in :data:`FEATURE_UNITS`, which selects a plugin by what its class
declares instead of by a base class. Capabilities and features are both
*glue units*: each contributes symbols, C defines, a C file with its
attach/release hooks (``FP_CAPABILITIES`` in ``build/glue/common.h`` lists every
unit a library has) and a runtime mixin.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib import import_module
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from ...plugin import Plugin


ALWAYS_REQUIRED = (
    "get_required_api_version",
    "get_version",
    "get_name",
    "get_description",
    "get_contact",
    "init",
    "destroy",
    "get_last_error",
)
"""What every plugin exports, whatever its capabilities (without ``plugin_``),
in the order libsinsp checks them."""


# The records of this package are plain classes, not dataclasses: every
# @dataclass compiles its generated methods when the module is imported,
# about a millisecond each, and a plugin library imports these at start-up.


class Capability:
    """What the plugin API says about one capability (one instance per capability)."""

    __slots__ = ("name", "title", "required", "optional", "min_api_minor")

    def __init__(
        self, name: str, title: str, required: tuple[str, ...], optional: tuple[str, ...], min_api_minor: int
    ) -> None:
        self.name = name
        """The name used by the registry and our hosts (``"sourcing"``)."""
        self.title = title
        """How Falco lists it (``--list-plugins``)."""
        self.required = required
        """Symbols (without ``plugin_``) whose presence means the capability."""
        self.optional = optional
        """Symbols a plugin with the capability may also export."""
        self.min_api_minor = min_api_minor
        """The first plugin API 3.x minor that has it."""

    def __repr__(self) -> str:
        return f"Capability({self.name!r})"

    def symbols(self) -> tuple[str, ...]:
        return self.required + self.optional


SOURCING = Capability(
    "sourcing",
    "Event Sourcing",
    ("open", "close", "next_batch"),
    ("get_id", "get_event_source", "get_progress", "event_to_string", "list_open_params"),
    0,
)
EXTRACTION = Capability(
    "extraction",
    "Field Extraction",
    ("get_fields", "extract_fields"),
    ("get_extract_event_sources", "get_extract_event_types"),
    0,
)
PARSING = Capability(
    "parsing", "Event Parsing", ("parse_event",), ("get_parse_event_types", "get_parse_event_sources"), 6
)
ASYNC = Capability(
    "async",
    "Async Events",
    ("get_async_events", "set_async_event_handler"),
    ("get_async_event_sources", "dump_state"),
    6,
)
CAPTURE_LISTENING = Capability("capture_listening", "Capture Listening", ("capture_open", "capture_close"), (), 9)


class Feature:
    """An optional group of symbols that is not a capability (one instance per feature)."""

    __slots__ = ("name", "required", "optional", "min_api_minor")

    def __init__(self, name: str, required: tuple[str, ...], optional: tuple[str, ...], min_api_minor: int) -> None:
        self.name = name
        self.required = required
        """Symbols (without ``plugin_``) a plugin with the feature exports."""
        self.optional = optional
        self.min_api_minor = min_api_minor
        """The first plugin API 3.x minor whose hosts call it (older ones ignore it)."""

    def __repr__(self) -> str:
        return f"Feature({self.name!r})"

    def symbols(self) -> tuple[str, ...]:
        return self.required + self.optional


METRICS = Feature("metrics", ("get_metrics",), (), 5)
FEATURES: tuple[Feature, ...] = (METRICS,)
"""The optional features of plugin API 3.x the SDK implements."""
JSON_FIELDS = Feature("json_fields", (), (), 0)
"""Fields by JSON pointer, answered in C: a glue unit of the SDK's own that adds no
symbol (so not in :data:`FEATURES`, which the plugin API defines)."""

API: tuple[Capability, ...] = (SOURCING, EXTRACTION, PARSING, ASYNC, CAPTURE_LISTENING)
"""Every capability of plugin API 3.x, in the order Falco lists them."""
BY_NAME: dict[str, Capability] = {c.name: c for c in API}


def c_string(text: str) -> str:
    """``text`` as a C string literal (UTF-8, octal escapes, no trigraphs)."""
    out = ['"']
    for byte in text.encode("utf-8"):
        ch = chr(byte)
        if ch in '"\\':
            out.append("\\" + ch)
        elif 32 <= byte < 127 and ch != "?":
            out.append(ch)
        else:
            out.append(f"\\{byte:03o}")
    out.append('"')
    return "".join(out)


class CapabilitySpec:
    """One plugin's declarations for one capability, resolved from its class."""

    capability: ClassVar[Capability | Feature]

    def symbols(self) -> list[str]:
        """The symbols (without ``plugin_``) the library exports for it."""
        return list(self.capability.required)

    def min_api_minor(self, optional: bool = True) -> int:
        """The lowest plugin API minor with everything this plugin uses of it;
        ``optional=False`` leaves out what the glue can do without on an older host."""
        return self.capability.min_api_minor

    def c_defines(self) -> list[str]:
        """Lines of C (``#define``s, constant tables) its glue is compiled with."""
        return []

    def baked(self) -> Any:
        """What the runtime must find unchanged when it loads the library (JSON-able)."""
        return None


class Implementation:
    """How the SDK implements one capability."""

    capability: ClassVar[Capability | Feature]
    base: ClassVar[type[Plugin]]
    """The class plugin authors derive from to get the capability."""

    def selects(self, cls: type[Plugin]) -> bool:
        """Whether plugin class ``cls`` has this capability."""
        return issubclass(cls, self.base)

    @property
    def c_source(self) -> str:
        """File of its C glue, in the tooling's ``falco_plugin_tools/build/glue`` directory."""
        return f"{self.capability.name}.c"

    def resolve(self, cls: type[Plugin], where: str) -> CapabilitySpec:
        """Check ``cls``'s declarations; raise ``SpecError`` naming what is wrong."""
        raise NotImplementedError

    state_mixin: ClassVar[type]
    """Methods the runtime ``State`` gets for this capability (what the glue calls)."""

    def setup(self, state: Any, spec: CapabilitySpec) -> None:
        """Prepare a new runtime state (e.g. bind the hot-path callables)."""


# Each glue unit, in the order its glue is linked: the module here that
# implements it, the name of its implementation there, and the author-API
# module through which a plugin class selects it (that of its base class, or
# for a feature that of what a class declares: metrics.Metric).
CAPABILITY_UNITS: tuple[tuple[str, str, str], ...] = (
    ("sourcing", "SOURCING_IMPL", "source"),
    ("extraction", "EXTRACTION_IMPL", "extract"),
    ("parsing", "PARSING_IMPL", "parse"),
    ("async_events", "ASYNC_IMPL", "asyncevents"),
    ("capture_listening", "CAPTURE_LISTENING_IMPL", "capture"),
)
FEATURE_UNITS: tuple[tuple[str, str, str], ...] = (
    ("metrics", "METRICS_IMPL", "metrics"),
    ("json_fields", "JSON_FIELDS_IMPL", "jsonfields"),
)
_SDK = __name__.rsplit(".", 2)[0]  # the falco_plugin package


def imported_author_module(name: str) -> ModuleType | None:
    """The author-API module ``falco_plugin.<name>`` when something imported it
    already, else None. A class cannot derive from a base, nor declare a
    Metric, whose module was never imported: asking this instead of importing
    spares a plugin library, at start-up, the capabilities it does not use."""
    full = f"{_SDK}.{name}"
    # import_module, not sys.modules' entry: another thread may be importing it still.
    return import_module(full) if full in sys.modules else None


def _implementations(units: tuple[tuple[str, str, str], ...], selectable_only: bool) -> tuple[Any, ...]:
    found = []
    for module, name, author_module in units:
        # leaving out the units of modules never imported changes nothing a class selects
        if selectable_only and imported_author_module(author_module) is None:
            continue
        found.append(getattr(import_module(f"{__name__}.{module}"), name))
    return tuple(found)


def implemented() -> Sequence[Implementation]:
    """The capabilities the SDK implements, in the order their glue is linked."""
    return _implementations(CAPABILITY_UNITS, selectable_only=False)


def selectable() -> Sequence[Implementation]:
    """Those of :func:`implemented` that a plugin class can select now, in the
    same order: what resolving a plugin needs, importing no other."""
    return _implementations(CAPABILITY_UNITS, selectable_only=True)


class FeatureImplementation(Implementation):
    """How the SDK implements an optional feature: like a capability, but
    :meth:`selects` looks at what the class declares, and no class has only
    features (a plugin still needs a capability)."""

    capability: ClassVar[Feature]

    def selects(self, cls: type[Plugin]) -> bool:
        raise NotImplementedError


def implemented_features() -> Sequence[FeatureImplementation]:
    """The optional features the SDK implements, in the order their glue is linked."""
    return _implementations(FEATURE_UNITS, selectable_only=False)


def selectable_features() -> Sequence[FeatureImplementation]:
    """Those of :func:`implemented_features` that a plugin class can select now (see :func:`selectable`)."""
    return _implementations(FEATURE_UNITS, selectable_only=True)


__all__ = [
    "ALWAYS_REQUIRED",
    "API",
    "ASYNC",
    "BY_NAME",
    "CAPTURE_LISTENING",
    "EXTRACTION",
    "FEATURES",
    "JSON_FIELDS",
    "METRICS",
    "PARSING",
    "SOURCING",
    "Capability",
    "CapabilitySpec",
    "Feature",
    "FeatureImplementation",
    "Implementation",
    "c_string",
    "implemented",
    "implemented_features",
    "selectable",
    "selectable_features",
]
