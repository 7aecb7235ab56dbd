"""The package's import graph, read with ast (imports inside functions included): no cycles between
modules or between folders, and each folder imports only the folders written down for it in :data:`ALLOWED`
(so no import runs up the layers, not even one inside a function).

``python tests/test_layering.py`` prints the layers and edges of the folder and module graphs."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pipeline

ROOT = Path(pipeline.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(type_checking: bool = False) -> dict[str, set[str]]:
    """``{module: modules of this package it imports}``, at any depth of the file (functions too).

    ``from pipeline.x import y`` counts as importing ``pipeline.x.y`` when that is a module, else
    ``pipeline.x``; imports under ``if TYPE_CHECKING:`` are left out (they never run) unless ``type_checking``.
    """
    modules = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = set() if type_checking else {
            id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and _is_type_checking(node.test)
            for child in node.body for n in ast.walk(child)}
        targets: set[str] = set()
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                base = node.module if node.level == 0 else _relative(name, path, node)
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.add(sub if sub in modules else base)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _relative(name: str, path: Path, node: ast.ImportFrom) -> str:
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    package = package[: len(package) - node.level + 1]
    return ".".join(package + ([node.module] if node.module else []))


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


# Each folder of pipeline/ and the folders it may import, lowest first; "root" is the package's own modules
# (errors in __init__, paths, progress). Written down once: the folders' __init__ docstrings say the same.
ALLOWED: dict[str, set[str]] = {
    "root": set(),
    "data": {"root"},
    "encoders": {"root", "data"},
    "store": {"root", "data", "encoders"},
    "heads": {"root", "data", "encoders", "store"},
    "bundle": {"root", "data", "encoders", "store", "heads"},
    "predict": {"root", "data", "encoders", "store", "heads", "bundle"},
    "finetune": {"root", "data", "encoders", "store", "heads", "bundle", "predict"},
    "unlabelled": {"root", "data", "encoders", "store", "heads", "bundle", "finetune"},
    "fit": {"root", "data", "encoders", "store", "heads", "bundle", "predict", "finetune", "unlabelled"},
    "active": {"root", "data", "encoders", "store", "heads"},
    "study.engines": {"root", "encoders", "store", "heads", "predict", "unlabelled"},
    "study": {"root", "data", "encoders", "store", "heads", "bundle", "predict", "finetune", "unlabelled", "fit",
              "active", "study.engines"},
    "serve": {"root", "data", "encoders", "store", "heads", "bundle", "predict"},
    "cli": {"root", "data", "encoders", "store", "heads", "bundle", "predict", "finetune", "unlabelled", "fit",
            "active", "study", "study.engines", "serve"},
}
SUBFOLDERS = {"study.engines"}  # folders below a folder, with rules of their own


def folder_of(module: str) -> str:
    """The folder (a key of :data:`ALLOWED`) a module of the package lives in."""
    parts = module.split(".")[1:]
    if not parts or len(parts) == 1 and (ROOT / f"{parts[0]}.py").is_file():
        return "cli" if parts == ["__main__"] else "root"
    for depth in (2, 1):
        name = ".".join(parts[:depth])
        if len(parts) > depth - 1 and name in ALLOWED and (depth == 1 or name in SUBFOLDERS):
            return name
    raise AssertionError(f"{module}: not in a folder of ALLOWED; add its folder there")


def folder_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """``{folder: folders it imports}`` from the module graph."""
    folders: dict[str, set[str]] = {f: set() for f in ALLOWED}
    for module, targets in graph.items():
        here = folder_of(module)
        folders[here].update(folder_of(t) for t in targets if folder_of(t) != here)
    return folders


def layers(graph: dict[str, set[str]]) -> int:
    """How many layers an acyclic graph has: the longest import chain, counted in nodes."""
    depth: dict[str, int] = {}

    def visit(node: str) -> int:
        if node not in depth:
            depth[node] = 1 + max((visit(t) for t in graph[node]), default=0)
        return depth[node]

    return max(visit(n) for n in graph)


def counts() -> dict[str, tuple[int, int, int]]:
    """(nodes, edges, layers) of the folder graph and of the module graph."""
    modules = import_graph()
    folders = folder_graph(modules)
    return {name: (len(g), sum(map(len, g.values())), layers(g)) for name, g in
            (("folders", folders), ("modules", modules))}


def test_the_checker_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_graph_sees_imports_inside_functions():
    graph = import_graph()
    assert "pipeline.store.cache" in graph["pipeline.fit.train"]  # imported inside iter_fit only
    assert len(graph) > 30


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle)


def test_no_import_cycles_through_type_checking_imports():
    """A type two modules both need lives below both, not in one of them imported back for type hints."""
    cycle = find_cycle(import_graph(type_checking=True))
    assert cycle is None, " -> ".join(cycle)


def test_the_rules_themselves_have_no_loop():
    assert find_cycle(ALLOWED) is None


def test_no_folder_level_cycle():
    cycle = find_cycle(folder_graph(import_graph()))
    assert cycle is None, " -> ".join(cycle)


def test_every_import_runs_down_the_layers():
    graph = import_graph()
    offenders = sorted(f"{m} -> {t}" for m, targets in graph.items() for t in targets
                       if folder_of(t) != folder_of(m) and folder_of(t) not in ALLOWED[folder_of(m)])
    assert not offenders, offenders


def test_the_checker_catches_an_import_up_the_layers():
    assert folder_of("pipeline.encoders.registry") == "encoders"
    assert folder_of("pipeline.study.engines.local") == "study.engines"
    assert folder_of("pipeline.paths") == "root" and folder_of("pipeline") == "root"
    assert "bundle" not in ALLOWED["encoders"] and "study" not in ALLOWED["study.engines"]


def test_every_folder_is_a_package_that_says_what_it_may_import():
    for folder in ALLOWED:
        if folder == "root":
            continue
        init = ROOT.joinpath(*folder.split("."), "__init__.py")
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert doc and "May import" in doc, f"{init}: say in its docstring what the folder may import"


def test_encoders_never_import_the_store():
    graph = import_graph()
    offenders = {m: {t for t in graph[m] if folder_of(t) == "store"} for m in graph if folder_of(m) == "encoders"}
    assert not any(offenders.values()), offenders


def test_engines_never_import_compare():
    graph = import_graph()
    engines = [m for m in graph if folder_of(m) == "study.engines"]
    assert {"pipeline.study.engines", "pipeline.study.engines.local", "pipeline.study.engines.ray"} <= set(engines)
    offenders = {m: graph[m] & {"pipeline.study.compare"} for m in engines}
    assert not any(offenders.values()), offenders


def test_counts_are_reported():
    found = counts()
    assert found["folders"][0] == len(ALLOWED) and found["modules"][1] > found["folders"][1] > 0


if __name__ == "__main__":
    for name, (nodes, edges, depth) in counts().items():
        print(f"{name}: {nodes} nodes, {edges} edges, {depth} layers", file=sys.stdout)
