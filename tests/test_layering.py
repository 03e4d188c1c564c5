"""The import direction of pbrl (DESIGN.md, "Layering"), read from the source with ``ast``: nothing is imported.

types <- data <- envs <- feedback / rewards <- agents <- run <- cli, with viewer and export on top of what they use
(run composes the viewer with the human labeller; cli composes export) and analysis on the foundation only. Every import counts, also one inside a function or
under ``TYPE_CHECKING``: a lazy upward import is still an upward dependency. Today's exceptions are listed in
:data:`ALLOWED` with the issue-22 item that removes them; a new one fails, and so does an entry whose import is gone
(delete it, so the list only shrinks).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Iterator, Optional

import pytest

PKG = Path(__file__).resolve().parents[1] / "pbrl"
FOUNDATION = {"types", "utils", "resources", "devices"}
PIPELINE = FOUNDATION | {"data", "envs", "feedback", "rewards", "agents", "report"}
#: unit (``pbrl/<unit>.py`` or ``pbrl/<unit>/``) -> the units it may import besides itself
MAY_IMPORT: dict[str, set[str]] = {
    "pbrl": set(),  # `import pbrl` has no side effects (item 9)
    "types": set(),
    "utils": {"types"}, "resources": {"types"}, "devices": {"types"},
    "report": FOUNDATION,  # metrics.csv, summary.json, curves.png
    "data": FOUNDATION,
    "envs": FOUNDATION | {"data"},
    "feedback": FOUNDATION | {"data", "envs"},
    "rewards": FOUNDATION | {"data", "envs"},
    "agents": FOUNDATION | {"data", "envs", "feedback", "rewards"},
    "run": PIPELINE | {"viewer"},  # composes the viewer with the human labeller (feedback=human)
    "viewer": PIPELINE,
    "export": PIPELINE,
    "analysis": FOUNDATION,  # reads run directories as files
    "cli": PIPELINE | {"run", "viewer", "export", "analysis"},
}
#: Upward imports that exist today: (importing module, imported unit) -> the issue-22 item that removes it.
ALLOWED: dict[tuple[str, str], str] = {
}
#: Import cycles between modules that exist today (sorted module names) -> the item that removes them.
ALLOWED_CYCLES: dict[tuple[str, ...], str] = {
}


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name (packages by their ``__init__``)."""
    out = {}
    for path in sorted(PKG.rglob("*.py")):
        parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imported(module: str, path: Path, known: set[str]) -> Iterator[tuple[str, int]]:
    """(pbrl module, line) for each import in ``path``, at any depth; ``from pkg import name`` names the
    submodule when ``name`` is one, else the package."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [(a.name, None) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([node.module] if node.module else []))
            names = [(base, a.name) for a in node.names]
        else:
            continue
        for base, name in names:
            if base != "pbrl" and not base.startswith("pbrl."):
                continue
            target = f"{base}.{name}" if name and f"{base}.{name}" in known else base
            yield target, node.lineno


def unit(module: str) -> str:
    return module.split(".")[1] if "." in module else "pbrl"


def graph() -> dict[str, dict[str, int]]:
    mods = modules()
    edges: dict[str, dict[str, int]] = {m: {} for m in mods}
    for m, path in mods.items():
        for target, line in imported(m, path, set(mods)):
            if target != m:
                edges[m].setdefault(target, line)
    return edges


def layer_violations() -> dict[tuple[str, str], str]:
    """(module, unit it must not import) -> where."""
    found, paths = {}, modules()
    for m, targets in graph().items():
        src = unit(m)
        for target, line in targets.items():
            dst = unit(target)
            if dst != src and dst not in MAY_IMPORT.get(src, set()):
                found.setdefault((m, dst), f"{paths[m].relative_to(PKG.parent)}:{line} imports {target}")
    return found


def cycles() -> list[tuple[str, ...]]:
    """Strongly connected sets of more than one module (Tarjan)."""
    edges = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[tuple[str, ...]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(tuple(sorted(comp)))

    for v in edges:
        if v not in index:
            visit(v)
    return out


def test_every_unit_has_a_place_in_the_layering() -> None:
    units = {unit(m) for m in modules()}
    assert units == set(MAY_IMPORT), f"add {sorted(units - set(MAY_IMPORT))} to MAY_IMPORT (and DESIGN.md)"


def test_no_new_upward_import() -> None:
    found = layer_violations()
    new = {k: v for k, v in found.items() if k not in ALLOWED}
    assert not new, "imports against the layering (DESIGN.md):\n" + "\n".join(sorted(new.values()))
    gone = sorted(set(ALLOWED) - set(found))
    assert not gone, f"no longer imported, delete from ALLOWED: {gone}"


def test_no_import_cycle() -> None:
    found = set(cycles())
    assert found <= set(ALLOWED_CYCLES), f"import cycles: {sorted(found - set(ALLOWED_CYCLES))}"
    assert not set(ALLOWED_CYCLES) - found, "cycle gone: delete it from ALLOWED_CYCLES"


def test_the_checks_see_what_they_look_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A lazy upward import and a two-module cycle in a scratch package are found (so the checks above can fail)."""
    pkg = tmp_path / "pbrl"
    for name, text in {"__init__.py": "", "types.py": "", "data/__init__.py": "",
                       "data/a.py": "def f():\n    from pbrl.envs import b\n",
                       "envs/__init__.py": "from . import b\n", "envs/b.py": "from pbrl.data import a\n"}.items():
        (pkg / name).parent.mkdir(parents=True, exist_ok=True)
        (pkg / name).write_text(text)
    monkeypatch.setitem(globals(), "PKG", pkg)
    assert layer_violations() == {("pbrl.data.a", "envs"): "pbrl/data/a.py:2 imports pbrl.envs.b"}
    assert cycles() == [("pbrl.data.a", "pbrl.envs.b")]


def _python_files(*roots: str) -> Iterator[Path]:
    for root in roots:
        yield from sorted((PKG.parent / root).rglob("*.py"))


def _private_store_access(path: Path) -> Optional[str]:
    match = re.search(r"\bstore_?\._[a-z]\w*", path.read_text())
    return None if match is None else f"{path.relative_to(PKG.parent)}: {match.group(0)}"


def test_only_pbrl_data_touches_the_store_internals_and_sql() -> None:
    """No ``store._*`` and no sqlite3 outside pbrl/data (tests of pbrl/data may look inside)."""
    outside = [p for p in _python_files("pbrl", "bench") if PKG / "data" not in p.parents]
    private = [hit for p in outside if (hit := _private_store_access(p))]
    assert not private, f"private PreferenceStore access outside pbrl/data: {private}"
    sql = [str(p.relative_to(PKG.parent)) for p in outside if p.is_relative_to(PKG)
           and re.search(r"^\s*(import sqlite3|from sqlite3 import)", p.read_text(), re.M)]
    assert not sql, f"SQL outside pbrl/data: {sql}"
    probe = PKG.parent / "tests" / "data" / "test_store.py"  # the pattern finds what it is meant to find
    assert _private_store_access(probe) is not None


def test_every_subcommand_lives_in_pbrl_cli() -> None:
    """Argument parsing, Hydra entry points and exits belong to ``pbrl/cli/`` (one module per subcommand)."""
    from pbrl.cli import COMMANDS

    outside = [str(p.relative_to(PKG.parent)) for p in _python_files("pbrl") if PKG / "cli" not in p.parents
               and re.search(r"^\s*(import argparse|from argparse|.*\bhydra\.main\(|.*\bsys\.exit\()", p.read_text(), re.M)]
    assert not outside, f"command-line code outside pbrl/cli: {outside}"
    for module in COMMANDS.values():
        assert callable(getattr(__import__(f"pbrl.cli.{module}", fromlist=["main"]), "main")), module
