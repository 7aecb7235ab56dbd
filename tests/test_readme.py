"""The README's shell blocks run as written and its shown output is real; across README.md and docs/, links
resolve, every `review-transfer` command names real options and every Python example's import exists.

Every ```bash block of README.md carries a marker comment on the line before it:

    <!-- readme-test: run -->                  cheap: run here, in a fresh directory
    <!-- readme-test: slow (why) -->           run by the slow test, in order, in one directory
    <!-- readme-test: skip (why) -->           never run (set-up commands, placeholders for your files)

A block marked ``run`` that is followed by a plain ``` block must print exactly that output.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
MARKER = re.compile(r"<!--\s*readme-test:\s*(run|slow|skip)\b\s*(.*?)\s*-->")
FENCE = re.compile(r"^```(\w*)\s*$")
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")
SHELLS = {"bash", "sh", "shell", "console"}
MAX_README_LINES = 300


@dataclass
class Block:
    """One fenced block of a Markdown file."""

    lang: str
    text: str
    line: int  # 1-based line of the opening fence
    end: int  # 1-based line of the closing fence
    marker: str | None  # run, slow, skip, or None when the line before has no marker
    reason: str
    output: str | None  # the plain block right after it, if any


def blocks(path: Path) -> list[Block]:
    """The fenced blocks of a Markdown file, each with its marker and the plain block that follows it."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        marker = MARKER.search(before)
        found.append(Block(opening.group(1), "\n".join(lines[i + 1:end]), i + 1, end + 1,
                           marker.group(1) if marker else None, marker.group(2) if marker else "", None))
        i = end + 1
    for prev, nxt in zip(found, found[1:]):
        between = lines[prev.end:nxt.line - 1]
        if prev.lang in SHELLS and nxt.lang == "" and not any(s.strip() for s in between):
            prev.output = nxt.text
    return found


def shell_blocks(kind: str) -> list[Block]:
    return [b for b in blocks(README) if b.lang in SHELLS and b.marker == kind]


def run_block(block: Block, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run one block with bash -e in cwd, the test interpreter's scripts first on PATH, a private cache."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["REVIEW_TRANSFER_CACHE"] = str(cwd / "cache")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("REVIEW_TRANSFER_SIGNING_KEY", None)
    return subprocess.run(["bash", "-e", "-c", block.text], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=1800)


def test_every_shell_block_says_whether_it_runs():
    untagged = [f"README.md line {b.line}" for b in blocks(README) if b.lang in SHELLS and b.marker is None]
    assert not untagged, ("put <!-- readme-test: run|slow (why)|skip (why) --> on the line before each shell "
                          f"block: {untagged}")
    unexplained = [f"README.md line {b.line}" for b in blocks(README) if b.marker in ("slow", "skip") and not b.reason]
    assert not unexplained, f"say why a block is slow or skipped, e.g. <!-- readme-test: skip (why) -->: {unexplained}"


def test_cheap_blocks_run_as_written(tmp_path):
    cheap = shell_blocks("run")
    assert cheap, "README.md has no block marked <!-- readme-test: run -->"
    for block in cheap:
        done = run_block(block, tmp_path)
        assert done.returncode == 0, f"README.md line {block.line}: {block.text!r} failed:\n{done.stderr[-2000:]}"
        if block.output is not None:
            assert done.stdout.rstrip() == block.output.rstrip(), (
                f"README.md line {block.line}: the output shown is not what {block.text!r} prints now; "
                f"paste this instead:\n{done.stdout}")


TOUR_TEXTS = 2400  # RT rows the tour runs on here: every step and printed line, a fifth of the encoding


@pytest.mark.slow
def test_tour_runs_as_written(tmp_path, rt):
    """The slow blocks in order, in one directory: embed, fit, predict, compare, each as written but on
    :data:`TOUR_TEXTS` rows of RT written as ``rt.csv`` (grouped by film; bundles keep their names), so the
    run encodes a fifth of what the README's does and prints the same lines."""
    from helpers import write_reviews_csv

    rows = np.sort(np.random.default_rng(0).choice(len(rt), TOUR_TEXTS, replace=False))
    write_reviews_csv(tmp_path / "rt.csv", rt, rows)
    for block in shell_blocks("slow"):
        done = run_block(replace(block, text=_on_sample(block.text)), tmp_path)
        assert done.returncode == 0, f"README.md line {block.line}: {block.text!r} failed:\n{done.stderr[-2000:]}"
        if block.output is not None:  # figures and timings differ from run to run; what each line says must not
            printed = {_shape(line) for line in (done.stdout + done.stderr).splitlines()}
            missing = [line for line in block.output.splitlines()
                       if line.strip() and _shape(_on_sample(line)) not in printed]
            assert not missing, (f"README.md line {block.line}: {block.text!r} no longer prints lines like "
                                 f"{missing}; it printed:\n{done.stdout}{done.stderr}")


def _on_sample(text: str) -> str:
    """``text`` with the source ``rt`` read from the sample ``rt.csv`` (commands get its group column too)."""
    text = re.sub(r"(review-transfer (?:embed|fit|compare)) rt\b(?![-.])", r"\1 rt.csv --group-col movie", text)
    return re.sub(r"(?<![-/\w])rt(?=:| *$)", "rt.csv", text, flags=re.M)


def _shape(line: str) -> tuple[str, ...]:
    """The first two words of a line with its figures masked: what the line says, not what it measured."""
    return tuple(re.sub(r"[\d.,:±%/]+", "#", line).split()[:2])


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    in_fence = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_fence = not in_fence
        if in_fence or not line.startswith("#"):
            continue
        base = slug(line.lstrip("#"))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def markdown_files() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


def links(path: Path) -> list[tuple[int, str]]:
    """(line, target) of every relative link of a Markdown file, outside code."""
    found = []
    in_fence = False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith("```"):
            in_fence = not in_fence
        if in_fence:
            continue
        line = re.sub(r"`[^`]*`", "", line)
        for match in LINK.finditer(line):
            target = match.group(1) or match.group(2)
            if not re.match(r"^[a-z]+:", target):
                found.append((number, target))
    return found


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_links_resolve(path):
    broken = []
    for number, target in links(path):
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            broken.append(f"line {number}: {target} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"line {number}: {target} (no heading #{anchor} in {dest.name})")
    assert not broken, f"{path.relative_to(ROOT)}: broken links: {broken}"


def test_readme_links_into_docs():
    targets = {t.partition("#")[0] for _, t in links(README)}
    for page in ("docs/guide/README.md", "docs/benchmarks/README.md", "docs/design.md"):
        assert page in targets, f"README.md should link {page}"


def test_readme_is_short():
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines < MAX_README_LINES, f"README.md has {lines} lines; keep it under {MAX_README_LINES} (details go in docs/)"


def python_imports() -> list[tuple[str, int, str, str]]:
    """(file, line, module, name) of every ``from pipeline... import name`` in the docs' Python blocks."""
    found = []
    for path in markdown_files():
        for block in blocks(path):
            if block.lang != "python":
                continue
            for offset, line in enumerate(block.text.splitlines(), 1):
                match = re.match(r"\s*from (pipeline[\w.]*) import (.+)", line)
                if match:
                    for name in match.group(2).split("#")[0].split(","):
                        found.append((str(path.relative_to(ROOT)), block.line + offset, match.group(1),
                                      name.strip().split(" as ")[0]))
    return found


def test_docs_python_imports_exist():
    """What the docs' Python examples import is there (a moved module or a renamed function fails here)."""
    import importlib

    missing = []
    for where, line, module, name in python_imports():
        try:
            if not hasattr(importlib.import_module(module), name):
                missing.append(f"{where} line {line}: {module} has no {name}")
        except ImportError as e:
            missing.append(f"{where} line {line}: {e}")
    assert python_imports(), "no Python examples found in the docs"
    assert not missing, missing


def docs_commands() -> list[tuple[str, int, str]]:
    """(file, line, command) of every ``review-transfer ...`` line in the docs' shell blocks."""
    found = []
    for path in markdown_files():
        for block in blocks(path):
            if block.lang not in SHELLS:
                continue
            for offset, line in enumerate(block.text.replace("\\\n", " ").splitlines(), 1):
                line = line.split(" # ")[0].strip()
                if line.startswith("review-transfer "):
                    found.append((str(path.relative_to(ROOT)), block.line + offset, line))
    return found


def test_docs_commands_name_real_options():
    """Every command in the docs parses: its command, subcommand and flags exist (files it names need not)."""
    import shlex

    import click

    from pipeline.cli import main

    wrong = []
    for where, line, command in docs_commands():
        args = shlex.split(command)[1:]
        try:
            ctx = main.make_context("review-transfer", list(args))
            cmd, rest = main.get_command(ctx, args[0]), args[1:]
            if isinstance(cmd, click.Group):
                cmd, rest = cmd.get_command(ctx, rest[0]), rest[1:]
            if cmd is None:
                raise click.UsageError(f"no such command: {args[:2]}")
            cmd.make_context(args[0], rest)
        except click.BadParameter as e:
            if "does not exist" not in str(e):  # a file the example names, e.g. reviews.csv, is fine
                wrong.append(f"{where} line {line}: {command}: {e}")
        except click.UsageError as e:
            wrong.append(f"{where} line {line}: {command}: {e}")
    assert docs_commands(), "no review-transfer commands found in the docs"
    assert not wrong, wrong


def benchmark_scripts() -> list[Path]:
    """The runnable scripts of ``benchmarks/`` (helpers without a ``__main__`` block are not scripts)."""
    return [p for p in sorted((ROOT / "benchmarks").glob("*.py")) if "__main__" in p.read_text(encoding="utf-8")]


def test_every_benchmark_script_is_indexed_and_its_command_shown():
    """docs/benchmarks/README.md names every script, and some page of docs/benchmarks shows the command that runs it."""
    index = (DOCS / "benchmarks" / "README.md").read_text(encoding="utf-8")
    pages = "\n".join(p.read_text(encoding="utf-8") for p in (DOCS / "benchmarks").glob("*.md"))
    scripts = benchmark_scripts()
    assert scripts, "no benchmark scripts found"
    unindexed = [p.name for p in scripts if f"`{p.name}" not in index and f"benchmarks.{p.stem}`" not in index]
    assert not unindexed, f"name these in docs/benchmarks/README.md's table, beside their page: {unindexed}"
    no_command = [p.name for p in scripts
                  if f"benchmarks.{p.stem}" not in pages and f"benchmarks/{p.name}" not in pages]
    assert not no_command, f"show how to run these on their page (python -m benchmarks.NAME ...): {no_command}"
