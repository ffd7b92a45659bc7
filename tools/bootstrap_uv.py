"""Install the uv that uv.lock pins, hash-checked, into a folder of its own (`make install`).

Needs only Python 3.11+ and pip: `pip install --target` installs into a plain folder, which
PEP 668 leaves alone, so it works where the system pip is externally managed (Debian) and
where no `venv` module is installed. The version and the wheels' hashes come from uv.lock, so
the uv that syncs the project is the one the lock resolved; uv then creates .venv itself.

    python3 tools/bootstrap_uv.py .tools/uv     # prints the path of the uv binary
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

LOCK = Path(__file__).resolve().parents[1] / "uv.lock"


def pinned_uv(lock: Path = LOCK) -> tuple[str, list[str]]:
    """uv's version in the lock and the sha256 hashes of its wheels (`sha256:…`)."""
    packages = tomllib.loads(lock.read_text())["package"]
    uv = next(package for package in packages if package["name"] == "uv")
    return uv["version"], [wheel["hash"] for wheel in uv.get("wheels", [])]


def installed_version(binary: Path) -> str | None:
    if not binary.is_file():
        return None
    done = subprocess.run([binary, "--version"], capture_output=True, text=True)
    words = done.stdout.split()
    return words[1] if done.returncode == 0 and len(words) > 1 else None


def bootstrap(target: Path) -> Path:
    """``target/bin/uv`` at the locked version, installed unless already there."""
    version, hashes = pinned_uv()
    binary = target / "bin" / "uv"
    if installed_version(binary) == version:
        os.utime(binary)  # newer than uv.lock: make sees it is up to date
        return binary
    with tempfile.TemporaryDirectory(prefix="uv-bootstrap-") as scratch:
        requirement = Path(scratch) / "uv.txt"
        requirement.write_text(f"uv=={version} " + " ".join(f"--hash={h}" for h in hashes))
        staged = Path(scratch) / "uv"
        install = [sys.executable, "-m", "pip", "install", "--quiet", "--root-user-action=ignore"]
        install += ["--no-deps", "--only-binary=:all:", "--require-hashes", "--target", str(staged)]
        done = subprocess.run([*install, "-r", str(requirement)])
        if done.returncode != 0:
            sys.exit(
                f"could not install uv {version} with {sys.executable} -m pip (exit "
                f"{done.returncode}); on Debian: apt-get install python3-pip"
            )
        if target.exists():
            subprocess.run(["rm", "-rf", str(target)], check=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        staged.rename(target)
    if installed_version(binary) != version:
        sys.exit(f"{binary} is not uv {version} after installing it")
    return binary


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(bootstrap(Path(sys.argv[1])))
