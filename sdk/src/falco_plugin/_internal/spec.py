"""What a plugin class declares, resolved once: the builder bakes it into C,
the runtime checks the library still matches the code it loads."""

from __future__ import annotations

import json
import re
import typing
from dataclasses import dataclass, field

from ..config import Config, config_type_of
from ..extract import TYPE_CODES, ExtractPlugin, FieldSpec, fields_of
from ..plugin import Plugin
from ..source import SourceInstance, SourcePlugin
from .._abi import REQUIRED_SYMBOLS

NAME_RE = re.compile(r"^[a-z]+[a-z0-9-_]*$")
SOURCE_RE = re.compile(r"^[a-z]+[a-z0-9_]*$")
VERSION_RE = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")

# The first plugin API minor that has each thing the SDK may use; a plugin
# requires the highest of those it actually uses, so it loads in as many
# Falco versions as possible.
MIN_MINOR = {
    "base": 0,
    "log": 4,  # init_input.log_fn
    "set_config": 4,
    "metrics": 6,
    "value_offsets": 12,
}


# Hosts since libs 0.22 check this for plugins that may see syscall events and
# assume 3.0.0 when it is missing, which their 4.x schema rejects. 4.0.0 is
# met by every 4.x host.
DEFAULT_EVENT_SCHEMA = "4.0.0"


def _overrides(cls: type, base: type, name: str) -> bool:
    return getattr(cls, name, None) is not getattr(base, name, None)


@dataclass
class PluginSpec:
    cls: type[Plugin]
    name: str
    version: str
    description: str
    contact: str
    required_api_version: str
    capabilities: tuple[str, ...]
    config_type: type[Config] | None
    init_schema: str | None
    # sourcing
    id: int = 0
    event_source: str = ""
    open_params_type: type[Config] | None = None
    has_progress: bool = False
    has_list_open_params: bool = False
    has_event_to_string: bool = False
    # extraction
    fields: list[FieldSpec] = field(default_factory=list)
    extract_event_sources: list[str] | None = None
    extract_event_types: list[int] | None = None
    # optional
    has_set_config: bool = False
    event_schema_version: str | None = None

    @property
    def fields_json(self) -> str:
        return json.dumps([f.to_json() for f in self.fields], separators=(",", ":"))

    @property
    def uses_offsets(self) -> bool:
        return any(f.located for f in self.fields)

    def symbols(self) -> list[str]:
        """The exact set of ``plugin_*`` symbols the library must export."""
        syms = list(REQUIRED_SYMBOLS)
        if self.init_schema is not None:
            syms.append("get_init_schema")
        if self.has_set_config:
            syms.append("set_config")
        if "sourcing" in self.capabilities:
            syms += ["get_id", "get_event_source", "open", "close", "next_batch"]
            if self.has_progress:
                syms.append("get_progress")
            if self.has_event_to_string:
                syms.append("event_to_string")
            if self.has_list_open_params:
                syms.append("list_open_params")
        if "extraction" in self.capabilities:
            syms += ["get_fields", "extract_fields"]
            if self.extract_event_sources is not None:
                syms.append("get_extract_event_sources")
            if self.extract_event_types is not None:
                syms.append("get_extract_event_types")
        if self.event_schema_version is not None:
            syms.append("get_required_event_schema_version")
        return ["plugin_" + s for s in syms]

    @property
    def sees_syscall_events(self) -> bool:
        """Whether the host may hand the plugin's fields syscall events."""
        if "extraction" not in self.capabilities:
            return False
        if self.extract_event_sources is None:
            return "sourcing" not in self.capabilities  # a source plugin's fields default to its own source
        return "syscall" in self.extract_event_sources


class SpecError(TypeError):
    """The plugin class cannot be turned into a plugin library."""


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
    caps = []
    is_source = issubclass(cls, SourcePlugin)
    is_extract = issubclass(cls, ExtractPlugin)
    if is_source:
        caps.append("sourcing")
    if is_extract:
        caps.append("extraction")
    if not caps:
        raise SpecError(f"{where} implements no capability: derive from SourcePlugin and/or ExtractPlugin")

    config_type = config_type_of(cls.init, "config")
    spec = PluginSpec(
        cls=cls,
        name=name,
        version=cls.version,
        description=cls.description,
        contact=cls.contact,
        required_api_version="",
        capabilities=tuple(caps),
        config_type=config_type,
        init_schema=json.dumps(config_type.json_schema(), separators=(",", ":")) if config_type else None,
        has_set_config=_overrides(cls, Plugin, "set_config") if hasattr(cls, "set_config") else False,
    )
    if is_source:
        assert issubclass(cls, SourcePlugin)
        pid = getattr(cls, "id", None)
        if not isinstance(pid, int) or isinstance(pid, bool) or not 0 < pid < 2**32:
            raise SpecError(f"{where}.id must be a positive 32-bit integer, got {pid!r}")
        src = getattr(cls, "event_source", None)
        if not isinstance(src, str) or not SOURCE_RE.match(src):
            raise SpecError(f"{where}.event_source must match {SOURCE_RE.pattern}, got {src!r}")
        if src in ("syscall", "internal", "plugins"):
            raise SpecError(f"{where}.event_source {src!r} is reserved by Falco")
        spec.id, spec.event_source = pid, src
        spec.open_params_type = config_type_of(cls.open, "params")
        spec.has_list_open_params = _overrides(cls, SourcePlugin, "open_params")
        spec.has_event_to_string = _overrides(cls, SourcePlugin, "event_to_string")
        try:
            ret = typing.get_type_hints(cls.open).get("return")
        except Exception:  # noqa: BLE001 - an unresolvable annotation just hides progress
            ret = None
        spec.has_progress = (
            isinstance(ret, type) and issubclass(ret, SourceInstance) and _overrides(ret, SourceInstance, "progress")
        )
    if is_extract:
        assert issubclass(cls, ExtractPlugin)
        spec.fields = fields_of(cls)
        if not spec.fields:
            raise SpecError(f"{where} is an ExtractPlugin but declares no @field")
        names = [f.name for f in spec.fields]
        for f in spec.fields:
            if f.type not in TYPE_CODES:
                raise SpecError(f"{where}: field {f.name} has unknown type {f.type}")
        if len(set(names)) != len(names):
            raise SpecError(f"{where}: duplicate field names")
        if cls.extract_event_sources is not None:
            spec.extract_event_sources = list(cls.extract_event_sources)
        if cls.extract_event_types is not None:
            spec.extract_event_types = [int(t) for t in cls.extract_event_types]
    explicit_schema = cls.required_event_schema_version
    if explicit_schema is not None and not VERSION_RE.match(explicit_schema):
        raise SpecError(f"{where}.required_event_schema_version must be x.y.z, got {explicit_schema!r}")
    spec.event_schema_version = explicit_schema or (DEFAULT_EVENT_SCHEMA if spec.sees_syscall_events else None)
    floor = _default_api_version(spec, optional=False)
    spec.required_api_version = cls.required_api_version or _default_api_version(spec)
    if not VERSION_RE.match(spec.required_api_version):
        raise SpecError(f"{where}.required_api_version must be x.y.z, got {spec.required_api_version!r}")
    wanted = tuple(int(x) for x in spec.required_api_version.split("-")[0].split(".")[:2])
    if wanted[0] != 3 or wanted < tuple(int(x) for x in floor.split(".")[:2]):
        raise SpecError(
            f"{where}.required_api_version {spec.required_api_version} is below {floor}, the oldest plugin API "
            "that has everything this plugin uses"
        )
    return spec


def _default_api_version(spec: PluginSpec, optional: bool = True) -> str:
    """The lowest API with what the plugin uses; ``optional=False`` leaves out
    what the SDK can do without on an older host (value offsets)."""
    used = ["base", "log"]
    if spec.has_set_config:
        used.append("set_config")
    if spec.uses_offsets and optional:
        used.append("value_offsets")
    minor = max(MIN_MINOR[u] for u in used)
    return f"3.{minor}.0"
