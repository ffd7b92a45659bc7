"""One pin set: every package the code imports is declared, and requirements/ is uv.lock's.

Imports are read with ast (no code runs) and mapped to the distributions that ship them with
importlib.metadata, down to the submodule: `from opentelemetry import trace` needs
opentelemetry-api, whatever other opentelemetry-* distributions BentoML brings along.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterable
from functools import cache
from pathlib import Path

import pytest

from tests.harness import ROOT

OURS = {"lifeboat", "training", "drift", "loadtest", "service", "tests"}
CODE = ["lifeboat", "training", "drift", "loadtest", "service.py"]
# Airflow runs in a venv of its own (dags/airflow-constraints.txt, make airflow-venv): the
# tests that import it (tests/airflow/probe.py) run there.
OWN_VENV = {"airflow"}
# The Bento ships lifeboat/ whole, but service.py never imports the command-line modules.
NOT_IN_THE_BENTO = {"lifeboat/cli.py", "lifeboat/console.py"}


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_names(requirements: Iterable[str]) -> set[str]:
    return {normalize(re.match(r"[A-Za-z0-9._-]+", r.strip()).group()) for r in requirements}


@cache
def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def declared(*groups: str) -> set[str]:
    """The project's dependencies, plus those of the named dependency groups."""
    names = requirement_names(pyproject()["project"]["dependencies"])
    for group in groups:
        names |= requirement_names(pyproject()["dependency-groups"][group])
    return names


def python_files(*paths: str | Path) -> list[Path]:
    files: list[Path] = []
    for path in map(Path, paths):
        path = path if path.is_absolute() else ROOT / path
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return files


def third_party_imports(files: Iterable[Path]) -> dict[str, set[str]]:
    """Imported module (dotted) -> files importing it, for modules neither stdlib nor ours."""
    found: dict[str, set[str]] = {}
    for file in files:
        for node in ast.walk(ast.parse(file.read_text(), str(file))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                # `from opentelemetry import trace` imports opentelemetry.trace: providers()
                # falls back to the package when the name is not a module of its own.
                modules = [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top not in sys.stdlib_module_names and top not in OURS:
                    where = str(file.relative_to(ROOT)) if file.is_relative_to(ROOT) else str(file)
                    found.setdefault(module, set()).add(where)
    return found


@cache
def shipped_files(distribution: str) -> frozenset[str]:
    """The distribution's files, and every folder above them (``a/b/c.py``: ``a``, ``a/b``)."""
    files = {str(f) for f in importlib.metadata.distribution(distribution).files or ()}
    folders = {
        "/".join(f.split("/")[:depth]) for f in files for depth in range(1, f.count("/") + 1)
    }
    return frozenset(files | folders)


@cache
def top_level_owners() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


def providers(module: str) -> set[str]:
    """Installed distributions that ship ``module``: the ones that hold its own files, else
    (a module whose files no RECORD lists) every one that ships its top-level package."""
    parts = module.split(".")
    candidates = top_level_owners().get(parts[0], [])
    for depth in range(len(parts), 0, -1):
        path = "/".join(parts[:depth])
        owners = {normalize(d) for d in candidates if {f"{path}.py", path} & shipped_files(d)}
        if owners:
            return owners
    return {normalize(d) for d in candidates}


def undeclared(imports: dict[str, set[str]], allowed: set[str]) -> dict[str, list[str]]:
    """Imports no allowed distribution ships: module -> the files importing it."""
    return {
        f"{module} (from {' or '.join(sorted(providers(module))) or 'nothing installed'})": sorted(
            files
        )
        for module, files in sorted(imports.items())
        if not providers(module) & allowed
    }


def test_every_package_the_code_imports_is_a_dependency():
    assert undeclared(third_party_imports(python_files(*CODE)), declared()) == {}


def test_every_package_the_tests_import_is_declared():
    imports = third_party_imports(python_files("tests"))
    imports = {m: f for m, f in imports.items() if m.split(".")[0] not in OWN_VENV}
    assert undeclared(imports, declared("dev")) == {}


def test_the_bento_group_holds_everything_the_bento_imports():
    files = [
        f
        for f in python_files("service.py", "lifeboat")
        if str(f.relative_to(ROOT)) not in NOT_IN_THE_BENTO
    ]
    bento = requirement_names(pyproject()["dependency-groups"]["bento"])
    assert undeclared(third_party_imports(files), bento) == {}


def test_an_undeclared_import_is_caught(tmp_path):
    # A package that arrives only through another one (opentelemetry-api through BentoML),
    # one that only the tests may use (PyYAML), and a submodule of a namespace package.
    code = tmp_path / "code.py"
    code.write_text("import yaml\nfrom opentelemetry import trace\nimport numpy\n")
    found = undeclared(third_party_imports([code]), {"numpy", "opentelemetry-sdk"})
    assert set(found) == {"yaml (from pyyaml)", "opentelemetry.trace (from opentelemetry-api)"}


def test_requirements_are_exported_from_uv_lock(tmp_path):
    uv = Path(sys.executable).with_name("uv")
    done = subprocess.run(
        [str(ROOT / "requirements" / "export.sh"), str(tmp_path)],
        env={"UV": str(uv), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    exported = sorted(p.name for p in tmp_path.glob("*.txt"))
    assert exported == sorted(p.name for p in (ROOT / "requirements").glob("*.txt"))
    for name in exported:
        stale = (ROOT / "requirements" / name).read_text() != (tmp_path / name).read_text()
        assert not stale, f"requirements/{name} differs from uv.lock: run `make lock`"


@pytest.mark.parametrize("name", ["project.txt", "bento.txt", "locust.txt"])
def test_every_exported_requirement_is_pinned_and_hashed(name):
    text = (ROOT / "requirements" / name).read_text()
    entries = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 1)[1])
    assert entries and all(re.match(r"[A-Za-z0-9._-]+==\S+", e) for e in entries)
    assert all("--hash=sha256:" in e for e in entries)
