"""Run a server that starts many processes, and stop all of them on Ctrl+C, once.

Usage: python tools/foreground.py COMMAND [ARG...]  (``make airflow`` runs ``airflow standalone``
through it).

Ctrl+C on a terminal sends SIGINT to every process of the foreground job. ``airflow standalone``
(3.3.2) then also sends SIGTERM to each of its components, so its scheduler gets two signals; when
the second lands while the first is being handled, the scheduler skips stopping its LocalExecutor
workers and then waits for them at exit, forever (seen here in 1 of 4 tries; py-spy showed the
scheduler in ``multiprocessing``'s exit join and the workers in ``SimpleQueue.get``).

Here the command runs in a session of its own, so Ctrl+C reaches only this process, which passes
one SIGINT to the command's first process and lets it stop its components its own way. Whatever
of the session is still running ``LIFEBOAT_STOP_GRACE_SECONDS`` (60) later is terminated, and
killed 10 s after that. SIGTERM and SIGHUP (the terminal closed) stop it the same way. A SIGINT
that was ignored when this started (``nohup``) stays ignored. As a container's PID 1 (the
compose ``airflow`` service), ``docker stop``'s SIGTERM takes the same path (``airflow standalone``
itself ignores it there: PID 1 gets no default signal actions), and orphans are reaped.

Standard library only: it runs under any Python, Airflow's own included.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from types import FrameType

KILL_AFTER_SECONDS = 10.0


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # nobody left in it
        os.killpg(pgid, signum)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _interrupt(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGINT)


def _as_a_terminal_job() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _reap_orphans(command_pid: int) -> None:
    """As a container's PID 1, collect the exit of every orphan the kernel handed to us (a task's
    Spark JVM, say), so none lingers as a zombie; the command's own exit is left to Popen."""
    while True:
        try:
            found = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return
        if found is None or found.si_pid == command_pid:
            return
        with contextlib.suppress(ChildProcessError):
            os.waitpid(found.si_pid, 0)


def run(command: list[str], grace_seconds: float) -> int:
    child = subprocess.Popen(command, start_new_session=True, preexec_fn=_as_a_terminal_job)
    pgid = child.pid  # the session's one process group, led by the command
    asked_at: float | None = None

    def ask_to_stop(signum: int, frame: FrameType | None) -> None:
        nonlocal asked_at
        if asked_at is None:
            asked_at = time.monotonic()
            print(f"\nStopping (signal {signum}): SIGINT to {command[0]} (pid {pgid})", flush=True)
            _interrupt(pgid)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, ask_to_stop)

    init = os.getpid() == 1  # a container's init: orphans are ours to reap
    terminated = False
    while child.poll() is None:
        if init:
            _reap_orphans(child.pid)
        if asked_at is not None:
            waited = time.monotonic() - asked_at
            if waited > grace_seconds + KILL_AFTER_SECONDS:
                print(f"Still running after {waited:.0f} s: killing the rest", flush=True)
                _signal_group(pgid, signal.SIGKILL)
            elif waited > grace_seconds and not terminated:
                print(f"Still running after {waited:.0f} s: terminating the rest", flush=True)
                _signal_group(pgid, signal.SIGTERM)
                terminated = True
        time.sleep(0.2)
    # The command is gone; anything it left behind in its session goes too.
    if _group_alive(pgid):
        _signal_group(pgid, signal.SIGTERM)
        deadline = time.monotonic() + KILL_AFTER_SECONDS
        while _group_alive(pgid) and time.monotonic() < deadline:
            if init:
                _reap_orphans(child.pid)
            time.sleep(0.2)
        _signal_group(pgid, signal.SIGKILL)
    code = child.returncode
    return 128 - code if code < 0 else code


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    grace = float(os.environ.get("LIFEBOAT_STOP_GRACE_SECONDS", "60"))
    return run(argv, grace)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
