"""The pointer: one small file per server naming the model (and shadow) every worker serves.

Only models that loaded and passed their smoke test are named in it, written atomically, in a
directory private to this user (``$XDG_RUNTIME_DIR/lifeboat`` or ``~/.cache/lifeboat``), under a
name that carries the supervising process's pid and start time. Resolving and importing hold an
exclusive lock beside it, so the workers of one server never import the same version twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psutil
from pydantic import BaseModel, ValidationError

from lifeboat.prediction import LoadedModel
from lifeboat.serving.sources import NO_SHADOW, Shadow
from lifeboat.settings import Settings


class Pointer(BaseModel):
    """The pointer file: the model every worker of this server serves, and its shadow."""

    tag: str
    version: str | None = None
    written_at: str
    shadow_tag: str | None = None
    shadow_version: str | None = None  # the challenger resolved, loaded or not
    shadow_note: str | None = None  # why no shadow is scored although one was found


class InvalidPointer(ValueError):
    """The pointer file exists but does not name a model."""


def marker_path(settings: Settings, arbiter: psutil.Process | None = None) -> Path:
    """The pointer file: ``LIFEBOAT_RELOAD_MARKER``, else one of this server's in a private dir.

    The default lives in ``$XDG_RUNTIME_DIR/lifeboat`` or ``~/.cache/lifeboat``, a directory only
    this user can write (checked), never under a guessable name in a shared ``/tmp``.

    Args:
        settings: Where ``LIFEBOAT_RELOAD_MARKER`` comes from.
        arbiter: The process supervising the server's workers; default: this one's parent.
    """
    if settings.reload_marker is not None:
        return settings.reload_marker
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    folder = private_dir(Path(runtime) / "lifeboat" if runtime else Path.home() / ".cache/lifeboat")
    # The workers of one `bentoml serve` are children of one circus arbiter; its start time
    # keeps a later server that reuses the pid from reading this server's pointer.
    arbiter = arbiter or psutil.Process(os.getppid())
    return folder / f"serving-{arbiter.pid}-{arbiter.create_time():.0f}.json"


_SERVER_NAME = re.compile(r"^serving-(\d+)-(\d+)(?=\.)")


def forget_dead_servers(folder: Path) -> list[str]:
    """Delete the pointers, locks and worker records of servers that are gone.

    Their names carry the supervising process's pid and start time (:func:`marker_path`); a
    name whose process no longer runs, or runs with another start time (a reused pid), belongs
    to no server. Returns the names forgotten.
    """
    forgotten: set[str] = set()
    for path in folder.glob("serving-*"):
        if (match := _SERVER_NAME.match(path.name)) is None:
            continue
        pid, started = int(match[1]), match[2]
        with contextlib.suppress(psutil.Error):
            if f"{psutil.Process(pid).create_time():.0f}" == started:
                continue
        forgotten.add(match[0])
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return sorted(forgotten)


def private_dir(folder: Path) -> Path:
    """``folder``, created if need be, after checking no other user can write or own it.

    Raises:
        PermissionError: It is a symlink, another user's, or group- or world-accessible.
    """
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = folder.lstat()
    if stat.S_ISLNK(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
        raise PermissionError(
            f"{folder} must be a directory of uid {os.geteuid()} with mode 0700 "
            f"(found uid {info.st_uid}, mode {stat.S_IMODE(info.st_mode):o})"
        )
    return folder


@contextlib.contextmanager
def pointer_lock(pointer: Path) -> Iterator[None]:
    """Hold the exclusive lock of ``pointer``'s server: one resolve or import at a time."""
    pointer.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{pointer}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_pointer(pointer: Path) -> Pointer | None:
    """What the pointer names; None when this server has none yet.

    Raises:
        InvalidPointer: The file exists but is not a pointer.
    """
    try:
        return Pointer.model_validate_json(pointer.read_bytes())
    except FileNotFoundError:
        return None
    except ValidationError as exc:
        raise InvalidPointer(f"{pointer}: not a model pointer: {exc.errors()[0]['msg']}") from exc


def write_pointer(pointer: Path, model: LoadedModel, shadow: Shadow = NO_SHADOW) -> None:
    """Atomically name ``model`` and its shadow (both loaded and smoke-tested) for every
    worker."""
    body = Pointer(
        tag=model.tag,
        version=model.metadata.version,
        written_at=datetime.now(UTC).isoformat(),
        shadow_tag=shadow.model.tag if shadow.model else None,
        shadow_version=shadow.version,
        shadow_note=shadow.note,
    ).model_dump_json()
    write_atomically(pointer, body)


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` at once: a reader sees the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False) as tmp:
        tmp.write(text)
    os.replace(tmp.name, path)
