"""``Config``: one class declaration gives the JSON schema, the defaults and
validation errors that name the offending key."""

from __future__ import annotations

import json
from typing import Any, Literal

import jsonschema
import pytest
from falco_plugin import Config, ConfigError, PluginError, setting
from falco_plugin.errors import SpecError


class Header(Config):
    """An HTTP header."""

    name: str = setting(description="Header name", min_length=1, max_length=20)
    # `default=` by keyword: type checkers only see field defaults passed that way.
    value: str = setting(default="", description="Header value")


class Sample(Config):
    """Configuration of a sample plugin.

    Spread over two lines.
    """

    url: str = setting(description="Where to connect", pattern=r"^https?://")
    max_events: int = setting("How many events", default=20, key="maxEvents", minimum=0, maximum=1000)
    ratio: float = setting("A ratio", default=0.5, minimum=0, maximum=1)
    verbose: bool = setting("Talk more", default=False)
    mode: Literal["fast", "slow"] = setting("Speed", default="fast")
    level: Literal[1, 2, 3] = setting("Level", default=1)
    tags: list[str] = setting("Tags", default=["a"], min_length=1, max_length=3)
    headers: list[Header] = setting("Headers", default=[])
    labels: dict[str, int] = setting("Labels", default={})
    proxy: str | None = setting("Optional proxy", default=None)
    timeout: float | None = setting("Optional timeout", default=1.5)
    token: str = setting("A token", default="", secret=True, min_length=0, pattern="^[a-z]*$")
    extra: Any = setting("Anything", default=None)


def parse_error(text: str, cls: type[Config] = Sample) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        cls.parse(text)
    return info.value


def doc(**kw: Any) -> str:
    return json.dumps({"url": "http://x", **kw})


# -- schema -------------------------------------------------------------------------------


def test_schema_is_a_draft_07_object_that_rejects_unknown_keys() -> None:
    schema = Sample.json_schema()
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    jsonschema.Draft7Validator.check_schema(schema)


def test_schema_uses_key_aliases_in_declaration_order() -> None:
    assert list(Sample.json_schema()["properties"]) == [
        "url",
        "maxEvents",
        "ratio",
        "verbose",
        "mode",
        "level",
        "tags",
        "headers",
        "labels",
        "proxy",
        "timeout",
        "token",
        "extra",
    ]


def test_schema_lists_only_settings_without_default_as_required() -> None:
    assert Sample.json_schema()["required"] == ["url"]
    assert "required" not in Header.json_schema()["properties"]["value"]


def test_schema_of_a_config_without_required_settings_has_no_required_list() -> None:
    class AllDefaults(Config):
        a: int = 1

    assert "required" not in AllDefaults.json_schema()


def test_schema_describes_types_defaults_bounds_and_descriptions() -> None:
    props = Sample.json_schema()["properties"]
    assert props["maxEvents"] == {
        "type": "integer",
        "description": "How many events",
        "default": 20,
        "minimum": 0,
        "maximum": 1000,
    }
    assert props["url"] == {"type": "string", "description": "Where to connect", "pattern": "^https?://"}
    assert props["ratio"]["type"] == "number"
    assert props["verbose"] == {"type": "boolean", "description": "Talk more", "default": False}
    assert props["mode"] == {"type": "string", "enum": ["fast", "slow"], "description": "Speed", "default": "fast"}
    assert props["level"]["type"] == "integer" and props["level"]["enum"] == [1, 2, 3]
    assert props["tags"] == {
        "type": "array",
        "items": {"type": "string"},
        "description": "Tags",
        "default": ["a"],
        "minItems": 1,
        "maxItems": 3,
    }
    assert props["labels"]["type"] == "object" and props["labels"]["additionalProperties"] == {"type": "integer"}
    assert props["proxy"] == {"type": ["string", "null"], "description": "Optional proxy"}
    assert props["timeout"]["type"] == ["number", "null"] and props["timeout"]["default"] == 1.5
    assert props["extra"] == {"description": "Anything"}


def test_schema_nests_config_classes_as_closed_objects() -> None:
    items = Sample.json_schema()["properties"]["headers"]["items"]
    assert items["type"] == "object"
    assert items["additionalProperties"] is False
    assert items["required"] == ["name"]
    assert items["description"] == "An HTTP header."
    assert items["properties"]["name"] == {
        "type": "string",
        "description": "Header name",
        "minLength": 1,
        "maxLength": 20,
    }


def test_schema_description_is_the_class_docstring_on_one_line() -> None:
    assert Sample.json_schema()["description"] == "Configuration of a sample plugin. Spread over two lines."


def test_schema_of_an_undocumented_config_has_no_description() -> None:
    class Bare(Config):
        a: int = 1

    assert "description" not in Bare.json_schema()


@pytest.mark.parametrize(
    "document",
    [
        {"url": "http://x"},
        {"url": "https://x", "maxEvents": 3, "headers": [{"name": "h"}], "labels": {"a": 1}, "proxy": None},
        {"url": "http://x", "maxEvents": -1},
        {"url": "ftp://x"},
        {"url": "http://x", "bogus": 1},
        {"url": "http://x", "headers": [{"name": ""}]},
        {"url": "http://x", "headers": [{"value": "v"}]},
        {"url": "http://x", "tags": []},
        {"url": "http://x", "mode": "medium"},
        {"url": "http://x", "labels": {"a": "b"}},
        {"url": "http://x", "verbose": 1},
        {"maxEvents": 3},
    ],
)
def test_schema_and_parser_accept_and_reject_the_same_documents(document: dict[str, Any]) -> None:
    # libsinsp validates against the schema before init; the plugin parses
    # afterwards: they must agree or users get errors the schema let through.
    schema_ok = jsonschema.Draft7Validator(Sample.json_schema()).is_valid(document)
    try:
        Sample.from_dict(document)
        parser_ok = True
    except ConfigError:
        parser_ok = False
    assert schema_ok == parser_ok


# -- parsing -------------------------------------------------------------------------------


def test_parse_fills_in_defaults_and_maps_key_aliases() -> None:
    cfg = Sample.parse(doc(maxEvents=7, headers=[{"name": "h"}]))
    assert cfg.max_events == 7
    assert cfg.headers == [Header(name="h", value="")]
    assert (cfg.ratio, cfg.verbose, cfg.mode, cfg.tags, cfg.proxy, cfg.timeout) == (
        0.5,
        False,
        "fast",
        ["a"],
        None,
        1.5,
    )


def test_to_dict_round_trips_with_key_aliases() -> None:
    cfg = Sample.parse(doc(maxEvents=7, headers=[{"name": "h", "value": "v"}], labels={"x": 1}))
    assert Sample.from_dict(cfg.to_dict()) == cfg
    assert cfg.to_dict()["maxEvents"] == 7


def test_mutable_defaults_are_not_shared_between_instances() -> None:
    a, b = Sample.parse(doc()), Sample.parse(doc())
    a.tags.append("changed")
    assert b.tags == ["a"]
    assert Sample.parse(doc()).tags == ["a"]


@pytest.mark.parametrize("text", ["", "   ", "\n"])
def test_an_empty_document_means_all_defaults(text: str) -> None:
    assert Header.parse('{"name": "n"}') == Header(name="n")
    with pytest.raises(ConfigError, match=r"^name: missing required setting$"):
        Header.parse(text)


def test_an_integral_float_is_accepted_as_an_int() -> None:
    assert Sample.parse(doc(maxEvents=5.0)).max_events == 5


def test_an_int_is_accepted_as_a_float() -> None:
    value = Sample.parse(doc(ratio=1)).ratio
    assert value == 1.0 and isinstance(value, float)


@pytest.mark.parametrize(
    ("document", "path", "reason"),
    [
        (doc(maxEvents="3"), "maxEvents", "expected an integer, got a string"),
        (doc(maxEvents=2.5), "maxEvents", "expected an integer, got a number"),
        (doc(maxEvents=True), "maxEvents", "expected an integer, got a boolean"),
        (doc(maxEvents=-1), "maxEvents", "must be >= 0, got -1"),
        (doc(maxEvents=1001), "maxEvents", "must be <= 1000, got 1001"),
        (doc(ratio=1.5), "ratio", "must be <= 1, got 1.5"),
        (doc(ratio=False), "ratio", "expected a number, got a boolean"),
        (doc(verbose="yes"), "verbose", "expected a boolean, got a string"),
        (doc(verbose=1), "verbose", "expected a boolean, got an integer"),
        (doc(mode="medium"), "mode", 'must be one of "fast", "slow", got "medium"'),
        (doc(level=4), "level", "must be one of 1, 2, 3, got 4"),
        (doc(level=True), "level", "must be one of 1, 2, 3, got true"),
        (doc(tags=[]), "tags", "must have at least 1 items, got 0"),
        (doc(tags=["a", "b", "c", "d"]), "tags", "must have at most 3 items, got 4"),
        (doc(tags=["a", 2]), "tags[1]", "expected a string, got an integer"),
        (doc(tags="a"), "tags", "expected an array, got a string"),
        (doc(headers=[{"name": "a"}, {"name": ""}]), "headers[1].name", "must have at least 1 characters, got 0"),
        (doc(headers=[{"name": "x" * 21}]), "headers[0].name", "must have at most 20 characters, got 21"),
        (doc(headers=[{"name": "a"}, {}]), "headers[1].name", "missing required setting"),
        (doc(headers=[{"name": "a", "nope": 1}]), "headers[0].nope", "unknown setting (expected one of: name, value)"),
        (doc(headers=["a"]), "headers[0]", "expected an object, got a string"),
        (doc(labels={"a": "b"}), "labels.a", "expected an integer, got a string"),
        (doc(labels=[]), "labels", "expected an object, got an array"),
        (doc(proxy=3), "proxy", "expected a string, got an integer"),
        (doc(url="ftp://x"), "url", "\"ftp://x\" does not match pattern '^https?://'"),
        (json.dumps({"maxEvents": 1}), "url", "missing required setting"),
    ],
)
def test_invalid_values_are_rejected_naming_the_key(document: str, path: str, reason: str) -> None:
    error = parse_error(document)
    assert (error.path, error.reason) == (path, reason)
    assert str(error) == f"{path}: {reason}"


def test_unknown_keys_are_rejected_listing_the_known_ones() -> None:
    error = parse_error(doc(max_events=3))
    assert error.path == "max_events"
    assert error.reason == (
        "unknown setting (expected one of: extra, headers, labels, level, maxEvents, mode, "
        "proxy, ratio, tags, timeout, token, url, verbose)"
    )


def test_unknown_key_in_a_config_without_settings() -> None:
    class Empty(Config):
        pass

    assert str(parse_error('{"a": 1}', Empty)) == "a: unknown setting (expected one of: no settings)"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{", "not valid JSON: Expecting property name enclosed in double quotes at line 1 column 2"),
        ('{"url": "x",}', "not valid JSON: Expecting property name enclosed in double quotes at line 1 column 13"),
        ("[1]", "expected an object, got an array"),
        ("null", "expected an object, got null"),
        ('"text"', "expected an object, got a string"),
    ],
)
def test_documents_that_are_not_a_json_object_are_rejected_as_a_whole(text: str, reason: str) -> None:
    error = parse_error(text)
    assert (error.path, str(error)) == ("", reason)


def test_secret_values_are_never_echoed() -> None:
    error = parse_error(doc(token="Hunter2"))
    assert str(error) == "token: <secret> does not match pattern '^[a-z]*$'"


def test_long_values_are_shortened_in_messages() -> None:
    error = parse_error(doc(mode="m" * 500))
    assert len(str(error)) < 150 and str(error).endswith('..."')


def test_config_error_is_an_operator_facing_plugin_error() -> None:
    assert issubclass(ConfigError, PluginError)


def test_unsupported_setting_types_are_rejected() -> None:
    class Odd(Config):
        when: complex = setting(default=1j)

    with pytest.raises(
        SpecError, match=r"Odd\.when: unsupported setting type <class 'complex'>; supported setting types"
    ):
        Odd.json_schema()
    with pytest.raises(TypeError, match="unsupported setting type"):
        Odd.parse('{"when": 1}')


def test_config_classes_are_dataclasses_with_keyword_construction() -> None:
    assert Header(name="n") == Header(name="n", value="")
    assert repr(Header(name="n")) == "Header(name='n', value='')"
