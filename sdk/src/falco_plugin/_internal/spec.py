"""What a plugin class declares, resolved once: the builder bakes it into C,
the runtime checks that the library still matches the code it loads.

The parts common to every plugin (identity, configuration, API and event
schema versions) are resolved here; each capability resolves its own part
(see :mod:`.capabilities`).
"""

from __future__ import annotations

import json

from ..config import Config, config_type_of
from ..errors import SpecError
from ..plugin import Plugin
from .capabilities import ALWAYS_REQUIRED, CapabilitySpec, implemented, selectable, selectable_features
from .capabilities.extraction import ExtractionSpec
from .capabilities.sourcing import SourcingSpec
from .fields import FieldSpec
from .names import NAME_RE, VERSION_RE

__all__ = ["PluginSpec", "SpecError", "resolve"]


# The first plugin API minor that has each optional feature the SDK may use; a
# plugin requires the highest of those it uses, so it loads in as many Falco
# versions as possible.
LOG_MINOR = 4  # init_input.log_fn
SET_CONFIG_MINOR = 4

# Hosts since libs 0.22 check this for plugins that may see syscall events and
# assume 3.0.0 when it is missing, which their 4.x schema rejects. 4.0.0 is
# met by every 4.x host.
DEFAULT_EVENT_SCHEMA = "4.0.0"


class PluginSpec:
    # Not a dataclass: the runtime resolves one at every plugin start-up, and
    # a dataclass compiles its generated methods when this module is imported.
    def __init__(
        self,
        cls: type[Plugin],
        name: str,
        version: str,
        description: str,
        contact: str,
        required_api_version: str,
        config_type: type[Config] | None,
        init_schema: str | None,
        has_set_config: bool,
        event_schema_version: str | None = None,
        caps: dict[str, CapabilitySpec] | None = None,
        features: dict[str, CapabilitySpec] | None = None,
    ) -> None:
        self.cls = cls
        self.name = name
        self.version = version
        self.description = description
        self.contact = contact
        self.required_api_version = required_api_version
        self.config_type = config_type
        self.init_schema = init_schema
        self.has_set_config = has_set_config
        self.event_schema_version = event_schema_version
        self.caps: dict[str, CapabilitySpec] = {} if caps is None else caps
        """Each implemented capability's declarations, by capability name."""
        self.features: dict[str, CapabilitySpec] = {} if features is None else features
        """Each optional feature's declarations (``metrics``), by feature name."""

    @property
    def units(self) -> dict[str, CapabilitySpec]:
        """Capabilities then features: everything with glue of its own."""
        return {**self.caps, **self.features}

    @property
    def capabilities(self) -> tuple[str, ...]:
        return tuple(self.caps)

    @property
    def sourcing(self) -> SourcingSpec | None:
        spec = self.caps.get("sourcing")
        return spec if isinstance(spec, SourcingSpec) else None

    @property
    def extraction(self) -> ExtractionSpec | None:
        spec = self.caps.get("extraction")
        return spec if isinstance(spec, ExtractionSpec) else None

    @property
    def fields(self) -> list[FieldSpec]:
        return self.extraction.fields if self.extraction else []

    @property
    def fields_json(self) -> str:
        return self.extraction.fields_json if self.extraction else "[]"

    def symbols(self) -> list[str]:
        """The exact set of ``plugin_*`` symbols the library must export."""
        syms = list(ALWAYS_REQUIRED)
        if self.init_schema is not None:
            syms.append("get_init_schema")
        if self.has_set_config:
            syms.append("set_config")
        for cap in self.units.values():
            syms += cap.symbols()
        if "get_metrics" not in syms:
            syms.append("get_metrics")  # the glue's own, reporting sdk.errors (older hosts never ask)
        if self.event_schema_version is not None:
            syms.append("get_required_event_schema_version")
        return ["plugin_" + s for s in syms]

    def baked(self) -> str:
        """What the runtime compares with the library it runs in (JSON)."""
        return json.dumps({name: cap.baked() for name, cap in self.units.items()}, separators=(",", ":"))


def _overrides(cls: type, base: type, name: str) -> bool:
    return getattr(cls, name, None) is not getattr(base, name, None)


def resolve(cls: type[Plugin]) -> PluginSpec:
    """Check a plugin class and gather its declarations."""
    if not (isinstance(cls, type) and issubclass(cls, Plugin)):
        raise SpecError(f"{cls!r} is not a falco_plugin.Plugin subclass")
    where = cls.__qualname__
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise SpecError(f"{where}.name must match {NAME_RE.pattern}, got {name!r}")
    if not VERSION_RE.match(cls.version):
        raise SpecError(f"{where}.version must be a semantic version, got {cls.version!r}")
    impls = [impl for impl in selectable() if impl.selects(cls)]
    if not impls:
        bases = " and/or ".join(impl.base.__name__ for impl in implemented())
        raise SpecError(f"{where} implements no capability: derive from {bases}")
    config_type = config_type_of(cls.init, "config")
    spec = PluginSpec(
        cls=cls,
        name=name,
        version=cls.version,
        description=cls.description,
        contact=cls.contact,
        required_api_version="",
        config_type=config_type,
        init_schema=json.dumps(config_type.json_schema(), separators=(",", ":")) if config_type else None,
        has_set_config=_overrides(cls, Plugin, "set_config"),
    )
    for impl in impls:
        spec.caps[impl.capability.name] = impl.resolve(cls, where)
    for feature in selectable_features():
        if feature.selects(cls):
            spec.features[feature.capability.name] = feature.resolve(cls, where)

    explicit_schema = cls.required_event_schema_version
    if explicit_schema is not None and not VERSION_RE.match(explicit_schema):
        raise SpecError(f"{where}.required_event_schema_version must be x.y.z, got {explicit_schema!r}")
    sees_syscalls = any(getattr(cap, "sees_syscall_events", False) for cap in spec.caps.values())
    spec.event_schema_version = explicit_schema or (DEFAULT_EVENT_SCHEMA if sees_syscalls else None)

    floor = _lowest_api_version(spec, optional=False)
    spec.required_api_version = cls.required_api_version or _lowest_api_version(spec)
    if not VERSION_RE.match(spec.required_api_version):
        raise SpecError(f"{where}.required_api_version must be x.y.z, got {spec.required_api_version!r}")
    wanted = tuple(int(x) for x in spec.required_api_version.split("-")[0].split(".")[:2])
    if wanted[0] != 3 or wanted < tuple(int(x) for x in floor.split(".")[:2]):
        raise SpecError(
            f"{where}.required_api_version {spec.required_api_version} is below {floor}, the oldest plugin API "
            "that has everything this plugin uses"
        )
    return spec


def _lowest_api_version(spec: PluginSpec, optional: bool = True) -> str:
    """The lowest API with what the plugin uses; ``optional=False`` leaves out
    what the SDK can do without on an older host (value offsets)."""
    minors = [LOG_MINOR]
    if spec.has_set_config:
        minors.append(SET_CONFIG_MINOR)
    for cap in spec.units.values():
        minors.append(cap.min_api_minor(optional))
    return f"3.{max(minors)}.0"
