"""Run the project's own commands (``python -m training …``, ``python -m drift …``).

Airflow lives in its own virtual environment; the project's commands run with the project's
Python (``LIFEBOAT_PYTHON``, default ``<project>/.venv/bin/python``) in the project folder
(``LIFEBOAT_PROJECT``, default the folder above ``dags/``), so the DAGs hold no pipeline logic.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

# Every task: an owner, retries for what a second try can fix (exit 2 is not retried: a usage
# or data error stays one), and a timeout so a stuck Spark job does not hold the run forever.
DEFAULT_ARGS = {
    "owner": "lifeboat",
    "retries": 1,
    "retry_delay": timedelta(minutes=2),
    "execution_timeout": timedelta(minutes=30),
}
EXIT_DATA_ERROR = 2
OUTPUT_TAIL = 20  # lines of a failed command's output repeated in the task's error


def project_dir() -> Path:
    """The project folder the commands run in."""
    return Path(os.environ.get("LIFEBOAT_PROJECT") or Path(__file__).resolve().parents[2])


def project_python() -> str:
    """The project's Python (its .venv), never Airflow's."""
    return os.environ.get("LIFEBOAT_PYTHON") or str(project_dir() / ".venv" / "bin" / "python")


def project_env() -> dict[str, str]:
    """Airflow's environment without what belongs to Airflow's own interpreter."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AIRFLOW") and k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")
    }
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass(frozen=True)
class Done:
    """A finished command: its exit status and everything it printed."""

    returncode: int
    output: str

    def last_line(self, prefix: str) -> str | None:
        """The last printed line that starts with ``prefix``, without it."""
        found = [line for line in self.output.splitlines() if line.startswith(prefix)]
        return found[-1][len(prefix) :].strip() if found else None

    def tail(self, lines: int = OUTPUT_TAIL) -> str:
        return "\n".join(self.output.splitlines()[-lines:])


def run(*args: str, ok: tuple[int, ...] = (0,)) -> Done:
    """``<project python> -m <args>`` in the project; its output goes to the task log.

    Raises:
        AirflowFailException: Exit 2 (a usage or data error: retrying would not help).
        RuntimeError: Any other status not in ``ok`` (the task is retried).
    """
    from airflow.sdk.exceptions import AirflowFailException

    command = [project_python(), "-m", *args]
    print("$", " ".join(command), flush=True)
    process = subprocess.Popen(
        command,
        cwd=project_dir(),
        env=project_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: a task timeout ends all of it
    )
    lines = []
    try:
        for line in process.stdout:
            sys.stdout.write(line)
            lines.append(line)
        process.wait()
    finally:
        if process.poll() is None:  # the task was killed or timed out: take the command along
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(30)
    done = Done(process.returncode, "".join(lines))
    if done.returncode in ok:
        return done
    message = f"{' '.join(args[:2])} exited with {done.returncode}:\n{done.tail()}"
    if done.returncode == EXIT_DATA_ERROR:
        raise AirflowFailException(message)
    raise RuntimeError(message)
