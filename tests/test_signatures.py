"""No function of the package takes more than :data:`MOST` parameters (``self``/``cls`` not counted):
long lists travel as value objects (``Recipe``, ``StudyPlan``, ``FitPlan``, ...). Click command functions are
exempt: their parameters are the command's options, parsed by click."""

from __future__ import annotations

import ast
from pathlib import Path

import pipeline

MOST = 10
ROOT = Path(pipeline.__file__).parent


def parameters(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    a = node.args
    names = [*a.posonlyargs, *a.args, *a.kwonlyargs]
    count = len(names) + (a.vararg is not None) + (a.kwarg is not None)
    return count - bool(names and names[0].arg in ("self", "cls") and names[0] in [*a.posonlyargs, *a.args])


def is_click_command(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    return any("command" in ast.unparse(d) or "group" in ast.unparse(d) for d in node.decorator_list)


def long_signatures(root: Path = ROOT) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not is_click_command(node):
                if parameters(node) > MOST:
                    found.append(f"{path.relative_to(root.parent)}:{node.lineno} {node.name} ({parameters(node)})")
    return found


def test_the_counter_counts_what_a_caller_passes():
    tree = ast.parse("class A:\n    def f(self, a, *b, c, **d): ...\ndef g(a, b=1, /, c=2): ...")
    function, method = (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef))  # breadth first
    assert (parameters(method), parameters(function)) == (4, 3)
    command = ast.parse("@click.command()\ndef fit(a): ...").body[0]
    assert is_click_command(command) and not is_click_command(function)


def test_no_function_takes_more_than_ten_parameters_except_click_commands():
    assert not long_signatures(), "use a value object:\n" + "\n".join(long_signatures())
