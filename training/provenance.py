"""Where a run came from: the code's commit and the library versions that trained it."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib.metadata import version as package_version

from lifeboat.settings import PROJECT_ROOT
from training.java import java_version

LIBRARIES = (
    "pyspark",
    "mlflow",
    "onnxmltools",
    "onnxruntime",
    "scikit-learn",
    "pandas",
    "numpy",
    "bentoml",
    "evidently",
)


def git_commit() -> str:
    """The project's commit (``-dirty`` with uncommitted changes), ``unknown`` outside git.

    ``LIFEBOAT_GIT_COMMIT`` wins: an image has no ``.git``, so its build records the commit.
    """
    if recorded := os.environ.get("LIFEBOAT_GIT_COMMIT"):
        return recorded
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    if out.returncode != 0:
        return "unknown"
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "java": str(java_version())}
    for name in LIBRARIES:
        try:
            versions[name] = package_version(name)
        except Exception:
            versions[name] = "absent"
    return versions
