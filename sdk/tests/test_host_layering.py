"""The host's modules import in one direction (issue 17, item 11): no import cycle among them.

Every import counts, at the top, inside a function or under ``TYPE_CHECKING``:
a cycle of any kind means no module of it can be read, tested or changed alone.
The capability modules (async_events, capture, parsing, routines) see a plugin
handle through the protocols of ``host/views.py``; ``handle`` combines them and
``loader`` creates handles.
"""

from __future__ import annotations

import ast
from pathlib import Path

import falco_plugin_tools.host

HOST = Path(falco_plugin_tools.host.__file__).parent
PACKAGE = "falco_plugin_tools.host"


def host_imports(path: Path) -> set[str]:
    """The modules of host/ that ``path`` imports, wherever the import statement is."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == PACKAGE:  # from falco_plugin_tools.host import raw
                found |= {a.name for a in node.names if (HOST / f"{a.name}.py").is_file()}
            elif node.module.startswith(PACKAGE + "."):
                found.add(node.module.removeprefix(PACKAGE + ".").split(".")[0])
        elif isinstance(node, ast.Import):
            found |= {
                a.name.removeprefix(PACKAGE + ".").split(".")[0] for a in node.names if a.name.startswith(PACKAGE + ".")
            }
    return found - {path.stem}


def import_graph() -> dict[str, set[str]]:
    # __init__ re-exports the public names, so it imports everything and nothing imports it
    return {p.stem: host_imports(p) for p in sorted(HOST.glob("*.py")) if p.stem != "__init__"}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle found by a depth-first search (one per back edge)."""
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                found.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def test_the_graph_is_read_from_the_sources() -> None:
    graph = import_graph()
    assert {"handle", "loader", "capture", "async_events", "parsing", "routines", "raw"} <= graph.keys()
    assert "capture" in graph["handle"]  # the reader sees imports


def test_the_host_modules_import_without_a_cycle() -> None:
    assert cycles(import_graph()) == []


def test_the_capability_modules_see_the_handle_through_its_protocol() -> None:
    graph = import_graph()
    for module in ("async_events", "capture", "parsing", "routines"):
        assert "handle" not in graph[module] and "loader" not in graph[module], module
    assert "handle" not in graph["loader"] or "loader" not in graph["handle"]
    assert "loader" not in graph["handle"]  # loader creates handles: it is above
