"""Init configuration checks, done by the host before ``plugin_init`` as libsinsp does.

When a plugin publishes a JSON schema, an empty configuration becomes
``"{}"``, the configuration must be JSON, and it must validate; only the
top-most validation error is reported, located with valijson's context
notation (``<root>[key][0]``). The string the plugin receives is otherwise
unchanged (schema defaults are not injected).
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
from falco_plugin_tools.host.errors import HostError
from jsonschema import exceptions as jsonschema_errors

__all__ = ["SCHEMA_NONE", "SCHEMA_JSON", "parse_init_schema", "validate_init_config"]

SCHEMA_NONE = 0
SCHEMA_JSON = 1


def parse_init_schema(schema_type: int, text: str) -> dict[str, Any] | None:
    """The schema as a JSON object, or ``None`` when there is none or it is unusable."""
    if not text or schema_type != SCHEMA_JSON:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _context(path: Any) -> str:
    return "<root>" + "".join(f"[{p}]" for p in path)


def _describe(error: jsonschema_errors.ValidationError) -> str:
    message = str(error.message)
    # A schema may flag a setting as a secret (JSON Schema's writeOnly): never echo it.
    # Whatever its type: a secret given as a list or number is as secret as a string.
    if isinstance(error.schema, dict) and error.schema.get("writeOnly"):
        message = message.replace(repr(error.instance), "<secret>")
    return message


def validate_init_config(plugin: str, schema_type: int, schema_text: str, config: str) -> str:
    """Check ``config`` against the plugin's init schema; return the string to pass to ``init``."""
    if not schema_text or schema_type == SCHEMA_NONE:
        return config
    if schema_type != SCHEMA_JSON:
        raise HostError(f"error in plugin {plugin}: get_init_schema returned an unknown schema type {schema_type}")
    schema = parse_init_schema(schema_type, schema_text)
    if schema is None:
        raise HostError(f"error in plugin {plugin}: get_init_schema did not return a json object")
    if not config:
        config = "{}"
    try:
        document = json.loads(config)
    except ValueError:
        raise HostError(f"error in plugin {plugin}: init config is not a valid json") from None
    try:
        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
        cls.check_schema(schema)
        error = jsonschema_errors.best_match(cls(schema).iter_errors(document))
    except Exception as exc:  # a broken schema fails in many ways, all meaning the same
        raise HostError(f"error in plugin {plugin} init config: failed parsing with provided schema") from exc
    if error is not None:
        raise HostError(f"error in plugin {plugin} init config: In {_context(error.absolute_path)}, {_describe(error)}")
    return config
