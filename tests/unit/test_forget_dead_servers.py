"""Stopped servers' pointer files do not pile up in the private folder."""

from __future__ import annotations

import os
import subprocess
import sys

import psutil

from lifeboat.serving.pointer import forget_dead_servers


def test_only_the_files_of_servers_still_running_are_kept(tmp_path):
    me = psutil.Process()
    alive = f"serving-{me.pid}-{me.create_time():.0f}"
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True
    )
    dead = f"serving-{int(gone.stdout)}-1700000000"  # its process has exited
    reused = f"serving-{me.pid}-1700000000"  # a running pid, another start time: a reused pid
    for name in (alive, dead, reused):
        (tmp_path / f"{name}.json").write_text("{}")
        (tmp_path / f"{name}.json.lock").write_text("")
        (tmp_path / f"{name}.workers").mkdir()
        (tmp_path / f"{name}.workers" / "1.json").write_text("{}")
    (tmp_path / "notes.txt").write_text("not ours")

    assert forget_dead_servers(tmp_path) == sorted([dead, reused])
    assert sorted(os.listdir(tmp_path)) == sorted(
        [f"{alive}.json", f"{alive}.json.lock", f"{alive}.workers", "notes.txt"]
    )
