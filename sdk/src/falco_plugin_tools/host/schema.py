"""Init configuration checks, done by the host before ``plugin_init`` as libsinsp does.

When a plugin publishes a JSON schema, an empty configuration becomes
``"{}"``, the configuration must be JSON, and it must validate; only the
top-most validation error is reported, located with valijson's context
notation (``<root>[key][0]``). The string the plugin receives is otherwise
unchanged (schema defaults are not injected).

Which error is reported, and in which words, is libsinsp's (valijson's, checked against real
libsinsp with the libsinsp host, ``tests/test_init_config.py``): :func:`libsinsp_errors` lists the
errors in the order valijson finds them, for the keywords the SDK's schemas use. Keywords are
checked in valijson's order (``anyOf``, ``enum``, ``items``, ``maximum``, ``maxItems``,
``maxLength``, ``minimum``, ``minItems``, ``minLength``, ``pattern``, ``properties`` with
``additionalProperties``, ``required``, ``type``), an object's properties in name order, and a
failing nested value's own error comes before its parent's. Its messages name no value, so a
secret is never echoed. A schema using other keywords is checked with jsonschema and reported in
its words (values of ``writeOnly`` settings masked).
"""

from __future__ import annotations

import json
import re
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


_EMULATED = {
    "anyOf",
    "enum",
    "items",
    "maximum",
    "maxItems",
    "maxLength",
    "minimum",
    "minItems",
    "minLength",
    "pattern",
    "properties",
    "additionalProperties",
    "required",
    "type",
}
# Keywords that validate nothing (annotations), or that valijson ignores for these schemas.
_INERT = {"$schema", "$id", "id", "title", "description", "default", "examples", "writeOnly", "readOnly"}


def _emulated(schema: Any) -> bool:
    """Whether every keyword of ``schema`` (recursively) is one :func:`libsinsp_errors` knows."""
    if isinstance(schema, bool):
        return False
    if not isinstance(schema, dict) or not set(schema) <= _EMULATED | _INERT:
        return False
    subs: list[Any] = [*schema.get("properties", {}).values(), *schema.get("anyOf", [])]
    items = schema.get("items")
    subs += items if isinstance(items, list) else [items] if items is not None else []
    extra = schema.get("additionalProperties")
    if extra is not None and extra is not False:
        subs.append(extra)
    return all(_emulated(sub) for sub in subs)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _type_matches(name: str, value: Any) -> bool:
    # JSON integers, and (as libsinsp's JSON reader has it) floats with an integral value.
    if name == "integer":
        return _is_number(value) and float(value).is_integer()
    return {
        "number": _is_number(value),
        "string": isinstance(value, str),
        "boolean": isinstance(value, bool),
        "object": isinstance(value, dict),
        "array": isinstance(value, list),
        "null": value is None,
    }.get(name, name == "any")


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b if isinstance(a, bool) or isinstance(b, bool) else a == b


def libsinsp_errors(schema: dict[str, Any], value: Any, context: str = "<root>") -> list[tuple[str, str]]:
    """The errors valijson reports for ``value``, in its order, as ``(context, description)``."""
    out: list[tuple[str, str]] = []
    if "anyOf" in schema:
        tried = [libsinsp_errors(sub, value, context) for sub in schema["anyOf"]]
        if all(tried):
            for i, errors in enumerate(tried):
                out += [*errors, (context, f"Failed to validate against child schema #{i}.")]
            out.append((context, "Failed to validate against any schemas allowed by anyOf constraint."))
    if "enum" in schema and not any(_same(value, option) for option in schema["enum"]):
        out.append((context, "Failed to match against any enum values."))
    items = schema.get("items")
    if isinstance(items, dict) and isinstance(value, list):
        for i, item in enumerate(value):
            nested = libsinsp_errors(items, item, f"{context}[{i}]")
            if nested:
                out += [*nested, (context, f"Failed to validate item #{i} in array.")]
    if "maximum" in schema and _is_number(value) and value > schema["maximum"]:
        out.append((context, f"Expected number less than or equal to {schema['maximum']:f}"))
    if "maxItems" in schema and isinstance(value, list) and len(value) > schema["maxItems"]:
        out.append((context, f"Array should contain no more than {schema['maxItems']} elements."))
    if "maxLength" in schema and isinstance(value, str) and len(value) > schema["maxLength"]:
        out.append((context, f"String should be no more than {schema['maxLength']} characters in length."))
    if "minimum" in schema and _is_number(value) and value < schema["minimum"]:
        out.append((context, f"Expected number greater than or equal to {schema['minimum']:f}"))
    if "minItems" in schema and isinstance(value, list) and len(value) < schema["minItems"]:
        out.append((context, f"Array should contain no fewer than {schema['minItems']} elements."))
    if "minLength" in schema and isinstance(value, str) and len(value) < schema["minLength"]:
        out.append((context, f"String should be no fewer than {schema['minLength']} characters in length."))
    if "pattern" in schema and isinstance(value, str) and not re.search(schema["pattern"], value):
        out.append((context, "Failed to match regex specified by 'pattern' constraint."))
    if ("properties" in schema or "additionalProperties" in schema) and isinstance(value, dict):
        properties = schema.get("properties", {})
        for name in sorted(properties):
            if name in value:
                nested = libsinsp_errors(properties[name], value[name], f"{context}[{name}]")
                if nested:
                    out += [
                        *nested,
                        (context, f"Failed to validate against schema associated with property name '{name}'."),
                    ]
        extra = schema.get("additionalProperties", {})
        unmatched = sorted(name for name in value if name not in properties)
        if extra is False and unmatched:
            out.append(
                (
                    context,
                    "Object contains a property that could not be validated using 'properties' or "
                    f"'additionalProperties' constraints: '{unmatched[0]}'.",
                )
            )
        elif isinstance(extra, dict):
            for name in unmatched:
                nested = libsinsp_errors(extra, value[name], f"{context}[{name}]")
                if nested:
                    out += [*nested, (context, "Failed to validate against additional properties schema")]
    if "required" in schema and isinstance(value, dict):
        out += [(context, f"Missing required property '{name}'.") for name in schema["required"] if name not in value]
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_type_matches(t, value) for t in types):
            out.append((context, "Value type not permitted by 'type' constraint."))
    return out


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
        if _emulated(schema):
            found = libsinsp_errors(schema, document)
            error = None
        else:
            found = []
            error = jsonschema_errors.best_match(cls(schema).iter_errors(document))
    except HostError:
        raise
    except Exception as exc:  # a broken schema fails in many ways, all meaning the same
        raise HostError(f"error in plugin {plugin} init config: failed parsing with provided schema") from exc
    if found:
        where, description = found[0]
        raise HostError(f"error in plugin {plugin} init config: In {where}, {description}")
    if error is not None:
        raise HostError(f"error in plugin {plugin} init config: In {_context(error.absolute_path)}, {_describe(error)}")
    return config
