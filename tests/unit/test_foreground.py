"""tools/foreground.py, the launcher of ``make airflow``: Ctrl+C reaches the command's first
process once, and nothing of the command outlives the launcher."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from tests.harness import ROOT, still_running

LAUNCHER = ROOT / "tools" / "foreground.py"

# Counts the SIGINTs it gets in a file; starts a child that outlives it; exits on its first
# SIGINT, or never when told to ignore SIGINT (then only SIGTERM ends it).
COMMAND = r"""
import os, signal, subprocess, sys, time
from pathlib import Path
folder = Path(sys.argv[1])
def interrupted(signum, frame):
    with (folder / "signals").open("a") as out:
        out.write("INT\n")
    if sys.argv[2] == "exits":
        time.sleep(0.5)  # a second Ctrl+C, if any, would be counted meanwhile
        sys.exit(0)
signal.signal(signal.SIGINT, interrupted)
child = subprocess.Popen(["sleep", "600"])
(folder / "child").write_text(str(child.pid))
while True:
    time.sleep(0.1)
"""


def launch(folder: Path, behaviour: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(LAUNCHER), sys.executable, "-c", COMMAND, str(folder), behaviour],
        env={**os.environ, "LIFEBOAT_STOP_GRACE_SECONDS": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # as a terminal's foreground job
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def grandchild(folder: Path) -> psutil.Process:
    deadline = time.monotonic() + 30
    while not (folder / "child").exists():
        assert time.monotonic() < deadline, "the command never started"
        time.sleep(0.05)
    time.sleep(0.1)
    return psutil.Process(int((folder / "child").read_text()))


def test_ctrl_c_reaches_the_command_once_and_its_leftovers_are_stopped(tmp_path):
    launcher = launch(tmp_path, "exits")
    child = grandchild(tmp_path)
    os.killpg(launcher.pid, signal.SIGINT)  # Ctrl+C: the whole foreground job
    output, _ = launcher.communicate(timeout=30)
    assert launcher.returncode == 0, output
    assert (tmp_path / "signals").read_text() == "INT\n"  # one, from the launcher only
    assert "Stopping (signal 2)" in output
    assert "terminating the rest" not in output
    deadline = time.monotonic() + 15
    while still_running([child]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not still_running([child])  # left behind by the command, stopped by the launcher


def test_a_command_that_will_not_stop_is_terminated_after_the_grace(tmp_path):
    launcher = launch(tmp_path, "stays")
    child = grandchild(tmp_path)
    launcher.send_signal(signal.SIGTERM)  # `kill`, or the terminal closing (SIGHUP)
    output, _ = launcher.communicate(timeout=30)
    assert (tmp_path / "signals").read_text() == "INT\n"
    assert "terminating the rest" in output
    assert launcher.returncode == 128 + signal.SIGTERM, output
    assert not still_running([child])
