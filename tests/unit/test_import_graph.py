"""The house's arrows, read from the source: the core imports nothing heavy, serving never reaches
up into training or drift, and no two modules import each other (directly or around a loop).

Every import counts, including those inside functions: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("lifeboat", "training", "drift", "loadtest")
# What the core (lifeboat/*.py) must never import: the Bento ships it, and training, serving,
# drift and Locust all stand on it.
NOT_IN_CORE = (
    "bentoml",
    "mlflow",
    "pyspark",
    "evidently",
    "starlette",
    "fastapi",
    "lifeboat.serving",
    "training",
    "drift",
    "loadtest",
)
# The console command reaches up, lazily, to the apps it dispatches to; nothing else may.
CORE_EXCEPTIONS = ("lifeboat.console",)


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imported(path: Path) -> set[str]:
    """Every absolute module name ``path`` imports, and ``module.name`` for each from-import."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


MODULES = modules()
CORE = sorted(
    m
    for m in MODULES
    if m.count(".") == 1 and m.startswith("lifeboat.") and m not in CORE_EXCEPTIONS
)


@pytest.mark.parametrize("module", CORE)
def test_the_core_imports_nothing_heavy_and_nothing_above_it(module):
    bad = sorted(n for n in imported(MODULES[module]) if within(n, NOT_IN_CORE))
    assert bad == [], f"{module} imports {bad}"


def test_serving_never_reaches_into_training_drift_or_spark():
    serving = [m for m in MODULES if within(m, ("lifeboat.serving",))]
    assert len(serving) >= 10
    bad = {
        m: sorted(n for n in imported(MODULES[m]) if within(n, ("training", "drift", "pyspark")))
        for m in serving
    }
    assert {m: names for m, names in bad.items() if names} == {}


def test_no_import_cycles():
    edges = {
        m: {n for n in imported(path) if n in MODULES and n != m} for m, path in MODULES.items()
    }
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1 on the current path, 2 done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(edges[module]):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, path)
        path.pop()
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [])
    assert cycles == []


def test_the_checks_see_a_cycle_and_a_heavy_import(tmp_path):
    # The two helpers above must be able to fail: a module importing bentoml lazily is caught.
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    import bentoml.models\n    from drift import retrain\n")
    found = imported(sample)
    assert within("bentoml.models", NOT_IN_CORE) and "bentoml.models" in found
    assert "drift.retrain" in found
