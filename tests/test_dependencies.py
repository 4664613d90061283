"""Every third-party import of the package (workbench/, conformance/, train/) is declared in pyproject.toml.

An import counts as declared when its distribution is in `[project.dependencies]`, or when it is in an
extra AND either the import sits inside a `try:` that catches ImportError, or its module names the extra
(`workbench[EXTRA]`) in the error it gives when the extra is missing. `pip install .` without extras then runs every entry point; the no-extras
smoke in `.ci/run` (`.ci/smoke_no_extras.sh`) proves it for real.
"""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("workbench", "conformance", "train")
FIRST_PARTY = {"workbench", "conformance"}

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    return normalise(re.split(r"[<>=!~\[; ]", requirement.strip(), maxsplit=1)[0])


def declared(pyproject: dict) -> tuple[set[str], dict[str, set[str]]]:
    """(core distributions, distribution -> the extras that carry it)."""
    project = pyproject.get("project", {})
    core = {requirement_name(r) for r in project.get("dependencies", [])}
    extras: dict[str, set[str]] = {}
    for extra, requirements in project.get("optional-dependencies", {}).items():
        for requirement in requirements:
            extras.setdefault(requirement_name(requirement), set()).add(extra)
    return core, extras


def _guarded(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """True when `node` lies in the body of a try that catches ImportError / ModuleNotFoundError."""
    child, parent = node, parents.get(node)
    while parent is not None:
        if isinstance(parent, ast.Try) and child in parent.body:
            for handler in parent.handlers:
                names = [handler.type] if not isinstance(handler.type, ast.Tuple) else list(handler.type.elts)
                if any(isinstance(n, ast.Name) and n.id in ("ImportError", "ModuleNotFoundError") for n in names):
                    return True
        child, parent = parent, parents.get(parent)
    return False


def third_party_imports(path: Path) -> list[tuple[str, int, bool]]:
    """(top-level module, line, guarded) for each absolute import of a non-stdlib, non-first-party module."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    parents = {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules = [node.module]
        else:
            continue
        for module in modules:
            top = module.split(".")[0]
            if top in sys.stdlib_module_names or top in FIRST_PARTY:
                continue
            found.append((top, node.lineno, _guarded(node, parents)))
    return found


def undeclared_imports(root: Path, pyproject: dict, distributions: dict[str, list[str]]) -> list[str]:
    """One line per import that a no-extras install would not satisfy."""
    core, extras = declared(pyproject)
    problems = []
    for source in SOURCES:
        for path in sorted((root / source).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            for module, line, guarded in third_party_imports(path):
                dists = {normalise(d) for d in distributions.get(module, [module])}
                if dists & core:
                    continue
                carriers = set().union(*(extras.get(d, set()) for d in dists))
                if carriers and (guarded or any(f"workbench[{extra}]" in text for extra in carriers)):
                    continue
                where = f"{path.relative_to(root)}:{line}"
                why = ("in an extra but neither guarded by try/except ImportError nor named in an error "
                       "(workbench[EXTRA])") if carriers else "not declared"
                problems.append(f"{where}: import {module} ({', '.join(sorted(dists))}) is {why}")
    return problems


def test_every_import_of_the_package_is_declared():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    problems = undeclared_imports(ROOT, pyproject, packages_distributions())
    assert not problems, "imports a no-extras install lacks:\n" + "\n".join(problems)


def test_the_check_fails_on_an_undeclared_import(tmp_path):
    (tmp_path / "workbench").mkdir()
    (tmp_path / "workbench" / "fine.py").write_text("import json\nimport httpx\nfrom workbench import x\n")
    (tmp_path / "workbench" / "bad.py").write_text("import os\n\nimport yaml\n")
    (tmp_path / "workbench" / "extra_unguarded.py").write_text("import kserve\n")
    (tmp_path / "workbench" / "extra_guarded.py").write_text(
        "try:\n    import kserve\nexcept ImportError:\n    raise SystemExit('pip install workbench[test]')\n")
    pyproject = {"project": {"dependencies": ["httpx>=0.27"], "optional-dependencies": {"test": ["kserve>=0.15"]}}}
    distributions = {"httpx": ["httpx"], "yaml": ["PyYAML"], "kserve": ["kserve"]}
    problems = undeclared_imports(tmp_path, pyproject, distributions)
    assert problems == [
        "workbench/bad.py:3: import yaml (pyyaml) is not declared",
        "workbench/extra_unguarded.py:1: import kserve (kserve) is in an extra but neither guarded by "
        "try/except ImportError nor named in an error (workbench[EXTRA])",
    ]
