"""Is there a Java that Spark can use? Standard library only: `make` runs this file with the
system python3 before the virtual environment exists, so a missing Java stops at once."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

MINIMUM = 17
HELP = (
    "Spark needs Java 17 or newer. Install it with "
    "`sudo apt-get install -y openjdk-17-jre-headless` (Debian/Ubuntu) or "
    "`brew install openjdk@17` (macOS), or point JAVA_HOME at one."
)


class JavaMissingError(RuntimeError):
    """Java is absent or older than Spark needs."""


def java_version() -> int | None:
    """The major version of the `java` Spark will use, or None when there is none."""
    java_home = os.environ.get("JAVA_HOME")
    java = os.path.join(java_home, "bin", "java") if java_home else shutil.which("java")
    if not java or not os.path.exists(java):
        return None
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major  # "1.8" is Java 8


def require_java(minimum: int = MINIMUM) -> int:
    """Return the Java major version, or raise with install instructions."""
    version = java_version()
    if version is None:
        raise JavaMissingError(f"No Java found. {HELP}")
    if version < minimum:
        raise JavaMissingError(f"Java {version} found, {minimum}+ needed. {HELP}")
    return version


if __name__ == "__main__":
    try:
        print(f"Java {require_java()} found")
    except JavaMissingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(3)  # lifeboat.exits.MISSING (this script runs before any install)
