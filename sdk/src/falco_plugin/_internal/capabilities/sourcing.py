"""Event sourcing: ``open``/``next_batch``/``close`` and the optional extras.

The glue (``build/glue/sourcing.c``) writes the event headers of each batch in C
and calls the instance's bound ``next_batch`` directly; the cold entry points
(open, list_open_params, get_progress, event_to_string) call the
:class:`SourcingState` methods below.
"""

from __future__ import annotations

import json
from typing import Any

from ...config import Config, config_type_of
from ...errors import ConfigError, PluginError, SpecError
from ...event import Event
from ...plugin import Plugin
from ...source import SourceInstance, SourcePlugin
from ..hints import EMPTY, UnresolvedAnnotationError, resolved_annotation
from ..names import SOURCE_RE
from . import SOURCING, CapabilitySpec, Implementation, c_string

RESERVED_SOURCES = ("syscall", "internal", "plugins")


def _overrides(cls: type, base: type, name: str) -> bool:
    return getattr(cls, name, None) is not getattr(base, name, None)


class SourcingSpec(CapabilitySpec):
    capability = SOURCING

    def __init__(
        self,
        id: int,  # noqa: A002 - the plugin attribute it comes from
        event_source: str,
        open_params_type: type[Config] | None,
        instance_type: type[SourceInstance],
        has_progress: bool,
        has_list_open_params: bool,
        has_event_to_string: bool,
    ) -> None:
        self.id = id
        self.event_source = event_source
        self.open_params_type = open_params_type
        self.instance_type = instance_type
        self.has_progress = has_progress
        self.has_list_open_params = has_list_open_params
        self.has_event_to_string = has_event_to_string

    def symbols(self) -> list[str]:
        syms = ["get_id", "get_event_source", *SOURCING.required]
        if self.has_progress:
            syms.append("get_progress")
        if self.has_event_to_string:
            syms.append("event_to_string")
        if self.has_list_open_params:
            syms.append("list_open_params")
        return syms

    def c_defines(self) -> list[str]:
        return [
            f"#define FP_ID {self.id}u",
            f"#define FP_EVENT_SOURCE {c_string(self.event_source)}",
            f"#define FP_HAS_PROGRESS {int(self.has_progress)}",
            f"#define FP_HAS_LIST_OPEN_PARAMS {int(self.has_list_open_params)}",
            f"#define FP_HAS_EVENT_TO_STRING {int(self.has_event_to_string)}",
        ]

    def baked(self) -> Any:
        return [self.id, self.event_source, self.has_progress, self.has_list_open_params, self.has_event_to_string]


def _instance_type(cls: type[SourcePlugin], where: str) -> type[SourceInstance]:
    """The instance class ``open`` is annotated to return: it decides whether
    ``plugin_get_progress`` exists, so it may not be left to guesswork."""
    try:
        ret = resolved_annotation(cls.open, "return")
    except UnresolvedAnnotationError as exc:
        raise SpecError(f"{where}.open: {exc}") from None
    if ret is EMPTY:
        raise SpecError(
            f"{where}.open needs a return annotation naming the SourceInstance subclass it returns "
            "(def open(self, params) -> MyInstance): the SDK exports plugin_get_progress only if that class "
            "overrides progress()"
        )
    if not (isinstance(ret, type) and issubclass(ret, SourceInstance)):
        raise SpecError(f"{where}.open must be annotated to return a SourceInstance subclass, not {ret!r}")
    if ret is SourceInstance:
        raise SpecError(
            f"{where}.open is annotated '-> SourceInstance': name the subclass it returns, so that the SDK "
            "knows whether it overrides progress()"
        )
    if not _overrides(ret, SourceInstance, "next_batch"):
        # Else every open() would fail in Falco at the first batch, with NotImplementedError.
        own = [n for n, v in vars(ret).items() if callable(v) and not n.startswith("__")]
        import difflib  # only on this error path

        close = difflib.get_close_matches("next_batch", own, n=1, cutoff=0.6)
        hint = f" (is {close[0]} meant to be next_batch?)" if close else ""
        raise SpecError(
            f"{where}.open returns {ret.__qualname__}, which does not define next_batch(self) -> Batch, "
            f"the method that produces the events{hint}"
        )
    return ret


class SourcingImplementation(Implementation):
    capability = SOURCING
    base = SourcePlugin

    def resolve(self, cls: type[Plugin], where: str) -> SourcingSpec:
        assert issubclass(cls, SourcePlugin)
        pid = getattr(cls, "id", None)
        if not isinstance(pid, int) or isinstance(pid, bool) or not 0 < pid < 2**32:
            raise SpecError(f"{where}.id must be a positive 32-bit integer, got {pid!r}")
        src = getattr(cls, "event_source", None)
        if not isinstance(src, str) or not SOURCE_RE.match(src):
            raise SpecError(f"{where}.event_source must match {SOURCE_RE.pattern}, got {src!r}")
        if src in RESERVED_SOURCES:
            raise SpecError(f"{where}.event_source {src!r} is reserved by Falco")
        instance = _instance_type(cls, where)
        return SourcingSpec(
            id=pid,
            event_source=src,
            open_params_type=config_type_of(cls.open, "params"),
            instance_type=instance,
            has_progress=_overrides(instance, SourceInstance, "progress"),
            has_list_open_params=_overrides(cls, SourcePlugin, "open_params"),
            has_event_to_string=_overrides(cls, SourcePlugin, "event_to_string"),
        )

    def setup(self, state: Any, spec: CapabilitySpec) -> None:
        state.sourcing = spec


class SourcingState:
    """What ``build/glue/sourcing.c`` calls on a runtime state."""

    plugin: Plugin
    sourcing: SourcingSpec

    def open(self, raw: str) -> SourceInstance:
        plugin = self.plugin
        assert isinstance(plugin, SourcePlugin)
        ptype = self.sourcing.open_params_type
        params: Any = raw
        if ptype is not None:
            try:
                params = ptype.parse(raw)
            except ConfigError as exc:
                raise PluginError(f"invalid open params: {exc}") from None
        inst = plugin.open(params)
        if not isinstance(inst, SourceInstance):
            raise PluginError(f"{type(plugin).__name__}.open returned {type(inst).__name__}, not a SourceInstance")
        if not self.sourcing.has_progress and _overrides(type(inst), SourceInstance, "progress"):
            # The library has no plugin_get_progress: the host would never see it.
            raise PluginError(
                f"{type(plugin).__name__}.open returned a {type(inst).__name__}, which defines progress(), but "
                f"open is annotated to return {self.sourcing.instance_type.__name__}, which does not; "
                "fix the annotation and rebuild"
            )
        return inst

    def list_open_params(self) -> str:
        plugin = self.plugin
        assert isinstance(plugin, SourcePlugin)
        return json.dumps([{"value": p.value, "desc": p.desc, "separator": p.separator} for p in plugin.open_params()])

    @staticmethod
    def progress(inst: SourceInstance) -> tuple[int, str]:
        got = inst.progress()
        if got is None:
            return 0, ""
        pct, text = got if isinstance(got, tuple) else (got, f"{float(got):.2f}")
        pct = min(max(float(pct), 0.0), 100.0)
        return round(pct * 100), text

    def event_to_string(self, num: int, ts: int, payload: bytes, addr: int, src: int) -> str:
        plugin = self.plugin
        assert isinstance(plugin, SourcePlugin)
        return str(plugin.event_to_string(Event(num, ts, payload, addr, src)))


SourcingImplementation.state_mixin = SourcingState
SOURCING_IMPL = SourcingImplementation()
