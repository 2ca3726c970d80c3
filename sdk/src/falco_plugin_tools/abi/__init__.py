"""Our plugin API declarations (``plugin_abi.h``) in the forms cffi needs."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from falco_plugin._internal.capabilities import ALWAYS_REQUIRED

HERE = Path(__file__).parent
HEADER = HERE / "plugin_abi.h"

# What every plugin exports, whatever its capabilities (without "plugin_").
REQUIRED_SYMBOLS = ALWAYS_REQUIRED

# Every plugin_* entry point, as the host resolves them (name -> C prototype).
# fmt: off
ENTRY_POINTS: dict[str, str] = {
    "get_required_api_version": "const char *plugin_get_required_api_version(void);",
    "get_init_schema": "const char *plugin_get_init_schema(ss_plugin_schema_type *schema_type);",
    "init": "ss_plugin_t *plugin_init(const ss_plugin_init_input *input, ss_plugin_rc *rc);",
    "destroy": "void plugin_destroy(ss_plugin_t *s);",
    "get_last_error": "const char *plugin_get_last_error(ss_plugin_t *s);",
    "get_name": "const char *plugin_get_name(void);",
    "get_description": "const char *plugin_get_description(void);",
    "get_contact": "const char *plugin_get_contact(void);",
    "get_version": "const char *plugin_get_version(void);",
    "get_id": "uint32_t plugin_get_id(void);",
    "get_event_source": "const char *plugin_get_event_source(void);",
    "open": "ss_instance_t *plugin_open(ss_plugin_t *s, const char *params, ss_plugin_rc *rc);",
    "close": "void plugin_close(ss_plugin_t *s, ss_instance_t *h);",
    "list_open_params": "const char *plugin_list_open_params(ss_plugin_t *s, ss_plugin_rc *rc);",
    "get_progress": "const char *plugin_get_progress(ss_plugin_t *s, ss_instance_t *h, uint32_t *progress_pct);",
    "event_to_string": "const char *plugin_event_to_string(ss_plugin_t *s, const ss_plugin_event_input *evt);",
    "next_batch": "ss_plugin_rc plugin_next_batch(ss_plugin_t *s, ss_instance_t *h, uint32_t *nevts, ss_plugin_event ***evts);",  # noqa: E501
    "get_extract_event_types": "uint16_t *plugin_get_extract_event_types(uint32_t *numtypes, ss_plugin_t *s);",
    "get_extract_event_sources": "const char *plugin_get_extract_event_sources(void);",
    "get_fields": "const char *plugin_get_fields(void);",
    "extract_fields": "ss_plugin_rc plugin_extract_fields(ss_plugin_t *s, const ss_plugin_event_input *evt, const ss_plugin_field_extract_input *in);",  # noqa: E501
    "get_parse_event_types": "uint16_t *plugin_get_parse_event_types(uint32_t *numtypes, ss_plugin_t *s);",
    "get_parse_event_sources": "const char *plugin_get_parse_event_sources(void);",
    "parse_event": "ss_plugin_rc plugin_parse_event(ss_plugin_t *s, const ss_plugin_event_input *evt, const ss_plugin_event_parse_input *in);",  # noqa: E501
    "get_async_event_sources": "const char *plugin_get_async_event_sources(void);",
    "get_async_events": "const char *plugin_get_async_events(void);",
    "set_async_event_handler": "ss_plugin_rc plugin_set_async_event_handler(ss_plugin_t *s, ss_plugin_owner_t *owner, const ss_plugin_async_event_handler_t handler);",  # noqa: E501
    "dump_state": "ss_plugin_rc plugin_dump_state(ss_plugin_t *s, ss_plugin_owner_t *owner, const ss_plugin_async_event_handler_t handler);",  # noqa: E501
    "set_config": "ss_plugin_rc plugin_set_config(ss_plugin_t *s, const ss_plugin_set_config_input *i);",
    "get_metrics": "ss_plugin_metric *plugin_get_metrics(ss_plugin_t *s, uint32_t *num_metrics);",
    "capture_open": "ss_plugin_rc plugin_capture_open(ss_plugin_t *s, const ss_plugin_capture_listen_input *i);",
    "capture_close": "ss_plugin_rc plugin_capture_close(ss_plugin_t *s, const ss_plugin_capture_listen_input *i);",
    "get_required_event_schema_version": "const char *plugin_get_required_event_schema_version(ss_plugin_t *s);",
}
# fmt: on


def strip_preprocessor(text: str) -> str:
    return "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#"))


@cache
def _split() -> tuple[str, str]:
    text = HEADER.read_text()
    text = re.sub(r"/\*.*?\*/", lambda m: m.group(0) if "@packed" in m.group(0) else "", text, flags=re.S)
    packed = text[text.index("/* @packed-begin */") : text.index("/* @packed-end */")]
    rest = text.replace(packed, "")
    packed_decl = strip_preprocessor(packed).replace("/* @packed-begin */", "")
    # cffi cannot pack one struct of a cdef: the event header gets its own
    # cdef(packed=True), declared before the rest that refers to it.
    rest = strip_preprocessor(rest).replace("/* @packed-end */", "")
    return packed_decl, rest


def cdef_packed() -> str:
    """The declarations that need ``packed=True`` (the event header)."""
    return _split()[0]


def cdef_main() -> str:
    """Everything else."""
    return _split()[1]
