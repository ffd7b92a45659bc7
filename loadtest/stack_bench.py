"""``make stack-bench``: what the compose stack's entry point costs, and a Bento container's start.

Against a running stack (``docker compose up -d``): headless Locust at ``--users`` users that
never wait, taking turns ``--rounds`` times between bento-gateway (HAProxy in front of every
replica) and one replica reached directly on its container address, the same run, so the ratio
is what the extra hop costs on this machine (on 2 cores more replicas cannot add throughput).
Then the cold start of a Bento container from ``--image``: ``docker run`` to ``/readyz`` 200,
``--starts`` times, on the model baked into the image. Writes ``reports/bench/stack-<time>.json``.

    python -m loadtest.stack_bench --help
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import httpx
import typer

from lifeboat.settings import PROJECT_ROOT
from loadtest.bench import _aggregated, _ms

app = typer.Typer(add_completion=False, help=__doc__.split("\n\n")[0])
BIN = Path(sys.executable).parent
PROJECT = "lifeboat"


def replica_url(project: str) -> str:
    """The first running Bento replica of compose project ``project``, by container address."""
    ids = subprocess.run(
        ["docker", "ps", "-q", "--filter", f"label=com.docker.compose.project={project}",
         "--filter", "label=com.docker.compose.service=bento"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    if not ids:
        raise typer.BadParameter(f"no running bento replica in compose project {project!r}")
    inspected = subprocess.run(
        ["docker", "inspect", ids[0]], capture_output=True, text=True, check=True
    )
    networks = json.loads(inspected.stdout)[0]["NetworkSettings"]["Networks"]
    return f"http://{next(iter(networks.values()))['IPAddress']}:3000"


def locust(url: str, users: int, seconds: int, prefix: Path) -> dict[str, float | None]:
    """One headless Locust run of the project's locustfile against ``url``."""
    subprocess.run(
        [str(BIN / "locust"), "-f", "loadtest/locustfile.py", "--headless", "--host", url,
         "--users", str(users), "--spawn-rate", str(users), "--run-time", f"{seconds}s",
         "--think-time", "0", "--only-summary", "--csv", str(prefix),
         "--exit-code-on-error", "0", "--loglevel", "WARNING"],
        cwd=PROJECT_ROOT, check=True, capture_output=True,
    )  # fmt: skip
    stats = _aggregated(Path(f"{prefix}_stats.csv"))
    return {
        "rps": float(stats["Requests/s"]),
        "requests": int(stats["Request Count"]),
        "failures": int(stats["Failure Count"]),
        "p50_ms": _ms(stats["50%"]),
        "p99_ms": _ms(stats["99%"]),
    }


def cold_start(image: str) -> float:
    """Seconds from ``docker run`` of ``image`` to its ``/readyz`` answering 200."""
    started = time.monotonic()
    container = subprocess.run(
        ["docker", "run", "-d", "--rm", "-p", "127.0.0.1::3000", image],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    try:
        port = (
            subprocess.run(
                ["docker", "port", container, "3000"], capture_output=True, text=True, check=True
            )
            .stdout.split(":")[-1]
            .strip()
        )
        while time.monotonic() - started < 120:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{image} not ready in 120 s")
    finally:
        subprocess.run(["docker", "rm", "-f", container], capture_output=True)


@app.command()
def main(
    gateway: Annotated[str, typer.Option(help="The stack's entry point.")] = (
        "http://127.0.0.1:3000"
    ),
    project: Annotated[str, typer.Option(help="Compose project whose replica to compare.")] = (
        PROJECT
    ),
    users: Annotated[int, typer.Option(min=1)] = 32,
    duration: Annotated[int, typer.Option(min=5, help="Seconds per Locust run.")] = 20,
    rounds: Annotated[int, typer.Option(min=1, help="Turns per target.")] = 3,
    image: Annotated[str, typer.Option(help="Bento image for the cold starts.")] = (
        "titanic_survival:latest"
    ),
    starts: Annotated[int, typer.Option(min=0, help="Cold starts to time (0: none).")] = 3,
    out: Annotated[Path, typer.Option(help="Folder for the results.")] = (
        PROJECT_ROOT / "reports" / "bench"
    ),
) -> None:
    """Entry point against one replica, side by side; then a Bento container's cold start."""
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    work = out / f"stack-{stamp}"
    work.mkdir()
    targets = {"gateway": gateway, "one replica": replica_url(project)}
    runs: dict[str, list[dict]] = {name: [] for name in targets}
    for turn in range(rounds):
        for name, url in targets.items():
            result = locust(url, users, duration, work / f"{name.replace(' ', '-')}-{turn}")
            runs[name].append(result)
            typer.echo(f"{name:12} round {turn + 1}: {result['rps']:.0f} req/s, "
                       f"p99 {result['p99_ms']} ms, {result['failures']} failures")  # fmt: skip
    medians = {name: statistics.median(r["rps"] for r in rs) for name, rs in runs.items()}
    starts_s = [cold_start(image) for _ in range(starts)]
    results = {
        "at": stamp,
        "users": users,
        "duration_s": duration,
        "runs": runs,
        "median_rps": medians,
        "gateway_over_replica": medians["gateway"] / medians["one replica"],
        "cold_start_s": starts_s,
        "cold_start_median_s": statistics.median(starts_s) if starts_s else None,
    }
    path = out / f"stack-{stamp}.json"
    path.write_text(json.dumps(results, indent=2))
    typer.echo(
        f"median req/s at {users} users: gateway {medians['gateway']:.0f}, one replica "
        f"{medians['one replica']:.0f} ({results['gateway_over_replica']:.2f}x); cold start "
        f"{results['cold_start_median_s']} s; {path}"
    )


if __name__ == "__main__":
    app()
