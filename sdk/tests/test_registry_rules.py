"""Every registry rule, with a registry that satisfies it and one that breaks it.

Each case starts from the same valid registry (a reserved entry, two
upstream-style entries, one hosted plugin with its folder and its built
library's facts), applies one change that keeps it valid and one that breaks
exactly the rule under test, and expects the finding to name the entry.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from falco_plugin_tools import cli
from falco_plugin_tools.registry import RULES, BuiltFacts, Finding, check, dump
from falco_plugin_tools.registry.check import check_upstream_rules

OURS_FACTS = BuiltFacts(
    name="ours",
    version="0.1.0",
    capabilities=frozenset({"sourcing", "extraction"}),
    id=40,
    event_source="ours",
    extract_event_sources=("ours",),
)


def registered(name: str, **caps: Any) -> dict[str, Any]:
    return {
        "name": name,
        "description": f"The {name} plugin",
        "authors": "Someone",
        "contact": "https://example.com/contact",
        "maintainers": [{"name": "Someone", "email": "someone@example.com"}],
        "keywords": [name],
        "url": f"https://example.com/{name}",
        "license": "Apache-2.0",
        "capabilities": caps,
    }


def hosted(name: str, pid: int) -> dict[str, Any]:
    entry = registered(
        name,
        sourcing={"supported": True, "id": pid, "source": name},
        extraction={"supported": True},
        parsing={"supported": False},
        capture_listening={"supported": False},
    )
    entry["capabilities"]["async"] = {"supported": False}
    entry["url"] = f"plugins/{name}"
    return entry


@dataclass
class Reg:
    """A registry plus the repository around it (folders, built libraries, an upstream file)."""

    root: Path
    data: dict[str, Any]
    folders: dict[str, bool] = field(default_factory=lambda: {"plugins/ours": False})
    """folder -> has rules files"""
    built: dict[str, BuiltFacts | str] = field(default_factory=lambda: {"plugins/ours": OURS_FACTS})
    upstream: dict[str, Any] | None = None

    def entry(self, name: str) -> dict[str, Any]:
        return next(e for e in self.data["plugins"] if e.get("name") == name)

    def caps(self, name: str) -> dict[str, Any]:
        caps: dict[str, Any] = self.entry(name)["capabilities"]
        return caps

    def findings(self) -> list[Finding]:
        for folder, has_rules in self.folders.items():
            (self.root / folder).mkdir(parents=True, exist_ok=True)
            (self.root / folder / "pyproject.toml").write_text("[project]\nname = 'x'\n")
            if has_rules:
                (self.root / folder / "rules").mkdir(exist_ok=True)
                (self.root / folder / "rules" / "x_rules.yaml").write_text("[]\n")
        return check(self.data, root=self.root, built=self.built, upstream=self.upstream)


@pytest.fixture
def reg(tmp_path: Path) -> Reg:
    data = {
        "reserved_sources": ["syscall", "internal", "plugins"],
        "plugins": [
            {
                "name": "plugin-id-zero-value",
                "description": "reserved",
                "reserved": True,
                "capabilities": {"sourcing": {"supported": True, "id": 0}},
            },
            registered(
                "k8saudit", sourcing={"supported": True, "id": 1, "source": "k8s_audit"}, extraction={"supported": True}
            ),
            registered("k8smeta", extraction={"supported": True, "sources": ["syscall"]}),
            hosted("ours", 40),
        ],
    }
    return Reg(tmp_path, copy.deepcopy(data))


@dataclass(frozen=True)
class Case:
    rule: str
    entry: str
    """the entry (or folder) the finding must name"""
    good: Callable[[Reg], None]
    bad: Callable[[Reg], None]


def _set(path: str, value: Any) -> Callable[[Reg], None]:
    """A change to entry ``name`` at dotted ``path`` (``ours.capabilities.sourcing.id``)."""

    def apply(r: Reg) -> None:
        name, *keys = path.split(".")
        target: Any = r.entry(name)
        for key in keys[:-1]:
            target = target[key]
        if value is _DELETE:
            del target[keys[-1]]
        else:
            target[keys[-1]] = value

    return apply


_DELETE = object()


def _add(entry: dict[str, Any]) -> Callable[[Reg], None]:
    return lambda r: r.data["plugins"].append(entry)


def _facts(**changes: Any) -> Callable[[Reg], None]:
    def apply(r: Reg) -> None:
        r.built["plugins/ours"] = replace(OURS_FACTS, **changes)

    return apply


def _both(*changes: Callable[[Reg], None]) -> Callable[[Reg], None]:
    def apply(r: Reg) -> None:
        for change in changes:
            change(r)

    return apply


def _nothing(r: Reg) -> None:
    pass


def FIELD(name: str) -> dict[str, Any]:  # noqa: N802 - reads as a constructor
    """A field as a library's get_fields reports it."""
    return {"name": name, "type": "string", "desc": name}


def _on_syscall(*names: str) -> Callable[[Reg], None]:
    """Our plugin's library extracts ``names`` from the syscall source too, as its entry says."""
    return _both(
        _set("ours.capabilities.extraction.sources", ["syscall"]),
        _facts(extract_event_sources=("ours", "syscall"), fields=tuple(FIELD(n) for n in names)),
    )


def _hosted_extractor(name: str, field_name: str) -> Callable[[Reg], None]:
    """A second plugin of ours, with its folder and a library extracting ``field_name`` from the source ``ours``."""

    def apply(r: Reg) -> None:
        entry = hosted(name, 42)
        entry["capabilities"]["extraction"] = {"supported": True, "sources": ["ours"]}
        r.data["plugins"].append(entry)
        r.folders[f"plugins/{name}"] = False
        r.built[f"plugins/{name}"] = replace(
            OURS_FACTS,
            name=name,
            id=42,
            event_source=name,
            extract_event_sources=(name, "ours"),
            fields=(FIELD(field_name),),
        )

    return apply


def _extra_folder(name: str, rules: bool = False) -> Callable[[Reg], None]:
    return lambda r: r.folders.__setitem__(f"plugins/{name}", rules)


CASES = [
    Case(
        "structure",
        "registry",
        lambda r: r.data.__setitem__("reserved_sources", []),
        lambda r: r.data.__setitem__("plugins", "none"),
    ),
    Case("structure", "plugins[4]", _nothing, lambda r: r.data["plugins"].append("k8saudit")),
    Case(
        "strict-keys",
        "k8saudit",
        _set("k8saudit.signature", {"cosign": {"certificate-oidc-issuer": "https://token.example.com"}}),
        _set("k8saudit.homepage", "https://example.com"),
    ),
    Case(
        "strict-keys",
        "ours",
        _set("ours.capabilities.async.sources", ["ours"]),
        _set("ours.capabilities.tracing", {"supported": False}),
    ),
    Case("strict-keys", "registry", _nothing, lambda r: r.data.__setitem__("version", 2)),
    Case("required", "k8smeta", _set("k8smeta.keywords", _DELETE), _set("k8smeta.license", _DELETE)),
    Case("required", "ours", _set("ours.maintainers", _DELETE), _set("ours.capabilities.parsing", _DELETE)),
    Case("required", "k8saudit", _nothing, _set("k8saudit.capabilities.sourcing.source", _DELETE)),
    Case(
        "type", "k8saudit", _set("k8saudit.capabilities.sourcing.id", 1), _set("k8saudit.capabilities.sourcing.id", "1")
    ),
    Case("type", "k8smeta", _set("k8smeta.keywords", ["a", "b"]), _set("k8smeta.keywords", "a, b")),
    Case(
        "name-pattern",
        "My.Plugin",
        _add(registered("my-plugin_2", extraction={"supported": True})),
        _add(registered("My.Plugin", extraction={"supported": True})),
    ),
    Case(
        "unique-name",
        "k8smeta",
        _add(registered("k8smeta2", extraction={"supported": True})),
        _add(registered("k8smeta", extraction={"supported": True})),
    ),
    Case(
        "source-pattern",
        "k8saudit",
        _set("k8saudit.capabilities.sourcing.source", "k8s_audit2"),
        _set("k8saudit.capabilities.sourcing.source", "k8s-audit"),
    ),
    Case(
        "source-pattern",
        "k8smeta",
        _set("k8smeta.capabilities.extraction.sources", ["k8s_audit"]),
        _set("k8smeta.capabilities.extraction.sources", ["Syscall"]),
    ),
    Case(
        "reserved-source",
        "k8saudit",
        _set("k8saudit.capabilities.sourcing.source", "syscalls"),  # an extractor may read syscall (k8smeta does)
        _set("k8saudit.capabilities.sourcing.source", "syscall"),
    ),
    Case(
        "unique-id",
        "k8saudit-eks",
        # several plugins may share a source (k8saudit-eks reads k8s_audit too), not an ID
        _add(registered("k8saudit-eks", sourcing={"supported": True, "id": 9, "source": "k8s_audit"})),
        _add(registered("k8saudit-eks", sourcing={"supported": True, "id": 1, "source": "k8s_audit"})),
    ),
    Case(
        "unique-id", "late", _nothing, _add(registered("late", sourcing={"supported": True, "id": 0, "source": "late"}))
    ),
    Case(
        "id-range",
        "k8saudit",
        _set("k8saudit.capabilities.sourcing.id", 2**30 - 1),
        _set("k8saudit.capabilities.sourcing.id", 2**30),
    ),
    Case("id-range", "k8saudit", _nothing, _set("k8saudit.capabilities.sourcing.id", -1)),
    Case(
        "capability",
        "k8smeta",
        _set("k8smeta.capabilities.extraction", {"supported": True}),
        _set("k8smeta.capabilities.extraction", {"supported": False}),
    ),
    Case(
        "upstream-collision",
        "ours",
        lambda r: setattr(
            r, "upstream", {"plugins": [registered("newer", sourcing={"supported": True, "id": 41, "source": "newer"})]}
        ),
        lambda r: setattr(
            r, "upstream", {"plugins": [registered("newer", sourcing={"supported": True, "id": 40, "source": "newer"})]}
        ),
    ),
    Case("upstream-collision", "ours", _nothing, _set("ours.capabilities.sourcing.id", 1)),
    Case("upstream-collision", "k8smeta", _nothing, lambda r: r.entry("ours").__setitem__("name", "k8smeta")),
    Case("folder-entry", "plugins/stray", _nothing, _extra_folder("stray")),
    Case("entry-folder", "gone", _both(_extra_folder("gone"), _add(hosted("gone", 42))), _add(hosted("gone", 42))),
    Case(
        "rules-url",
        "ours",
        _both(_extra_folder("ours", rules=True), _set("ours.rules_url", "plugins/ours/rules")),
        _extra_folder("ours", rules=True),
    ),
    Case("rules-url", "ours", _nothing, _set("ours.rules_url", "plugins/ours/rules")),
    Case("built-library", "plugins/ours", _nothing, lambda r: r.built.__setitem__("plugins/ours", "no library built")),
    Case("built-name", "ours", _facts(description="another text"), _facts(name="ours2")),
    Case("built-id", "ours", _facts(version="9.9.9"), _facts(id=41)),
    Case("built-source", "ours", _nothing, _facts(event_source="ours2", extract_event_sources=("ours2",))),
    Case(
        "built-capabilities",
        "ours",
        _both(
            _set("ours.capabilities.parsing.supported", True),
            _facts(capabilities=frozenset({"sourcing", "extraction", "parsing"}), parse_event_sources=("ours",)),
        ),
        _facts(capabilities=frozenset({"sourcing", "extraction", "parsing"}), parse_event_sources=("ours",)),
    ),
    Case(
        "built-sources",
        "ours",
        # the plugin's own source may go unlisted
        _both(
            _set("ours.capabilities.extraction.sources", ["syscall"]), _facts(extract_event_sources=("ours", "syscall"))
        ),
        _facts(extract_event_sources=("ours", "syscall")),
    ),
    # Fields: against Falco's own, the container plugin's (loaded by Falco by default), k8smeta's, ours.
    Case(
        "field-overlap",
        "ours",
        # a field of the container plugin's is fine on a source the container plugin does not extract from
        _facts(fields=(FIELD("container.id"),)),
        _on_syscall("ours.x", "k8s.pod.name"),
    ),
    Case(
        "field-overlap",
        "ours",
        _facts(fields=(FIELD("ours.evt"),)),
        _facts(fields=(FIELD("evt.source"),)),  # Falco's own field of every plugin source
    ),
    Case(
        "field-overlap",
        "ours",
        _on_syscall("ours.pod.name"),
        _on_syscall("proc.name"),  # Falco's own syscall field
    ),
    Case(
        "field-overlap",
        "ours",
        _both(_hosted_extractor("theirs", "theirs.x"), _facts(fields=(FIELD("ours.x"),))),
        _both(_hosted_extractor("theirs", "ours.x"), _facts(fields=(FIELD("ours.x"),))),
    ),
    Case(
        "field-prefix",
        "ours",
        _on_syscall("k8s_ours.pod.name"),
        # no overlap today, but the container plugin owns k8s.*: its next field could be this one
        _on_syscall("k8s.pod.namespace"),
    ),
    Case(
        "field-prefix",
        "ours",
        _nothing,
        _on_syscall("k8smeta.pod.owner"),
    ),
]

CASE_IDS = [f"{c.rule}-{i}" for i, c in enumerate(CASES)]


def test_every_rule_has_a_good_and_a_bad_case() -> None:
    assert {c.rule for c in CASES} == set(RULES)


def test_the_base_registry_is_valid(reg: Reg) -> None:
    assert reg.findings() == []


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_registry_satisfying_the_rule_has_no_finding(case: Case, reg: Reg) -> None:
    case.good(reg)
    assert reg.findings() == []


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_registry_breaking_the_rule_gets_a_finding_naming_entry_and_rule(case: Case, reg: Reg) -> None:
    case.bad(reg)
    findings = reg.findings()
    assert any(f.rule == case.rule and f.entry == case.entry for f in findings), findings
    finding = next(f for f in findings if f.rule == case.rule)
    assert str(finding).startswith(f"{finding.entry}: ") and str(finding).endswith(f"[{case.rule}]")


def test_upstream_rules_alone_ignore_our_stricter_ones(reg: Reg) -> None:
    _set("k8saudit.homepage", "https://example.com")(reg)  # strict keys: ours
    _add(registered("k8saudit", extraction={"supported": True}))(reg)  # unique names: upstream's
    assert [f.rule for f in check_upstream_rules(reg.data)] == ["unique-name"]


def test_cli_check_prints_each_finding_and_fails(reg: Reg, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _set("ours.capabilities.sourcing.id", 1)(reg)
    path = tmp_path / "registry" / "plugins.yaml"
    path.parent.mkdir()
    path.write_text(dump(reg.data))
    assert cli.main(["registry", "check", "--registry", str(path), "--no-libraries"]) == 1
    out = capsys.readouterr().out
    assert f"{path}: ours: sourcing ID 1 is already used by k8saudit [unique-id]" in out
    assert "ours: sourcing ID 1 is taken by upstream k8saudit [upstream-collision]" in out


def test_cli_check_passes_a_valid_registry(reg: Reg, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "plugins" / "ours").mkdir(parents=True)
    (tmp_path / "plugins" / "ours" / "pyproject.toml").write_text("")
    path = tmp_path / "registry" / "plugins.yaml"
    path.parent.mkdir()
    path.write_text(dump(reg.data))
    assert cli.main(["registry", "check", "--registry", str(path), "--no-libraries"]) == 0
    assert "0 finding(s)" in capsys.readouterr().out


def test_cli_check_reports_an_unreadable_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "plugins.yaml"
    path.write_text("plugins: [unclosed\n")
    assert cli.main(["registry", "check", "--registry", str(path), "--no-libraries"]) == 1
    assert "not valid YAML" in capsys.readouterr().err


def test_k8s_parse_with_its_old_field_names_is_refused_next_to_the_container_plugin(reg: Reg) -> None:
    """k8s_parse 0.1.0 declared the container plugin's pod fields for the syscall source (issue 22)."""
    old = ("k8s.pod.name", "k8s.pod.uid", "k8s.pod.namespace", "k8s.ns.name", "k8s.pod.label", "k8s.container.name")
    _on_syscall(*old)(reg)
    overlaps = sorted(f.message.split("'")[1] for f in reg.findings() if f.rule == "field-overlap")
    assert overlaps == ["k8s.ns.name", "k8s.pod.label", "k8s.pod.name", "k8s.pod.uid"]
    assert [f.rule for f in reg.findings() if "container plugin" in f.message].count("field-prefix") == 1
