"""``make shadow-bench``: what a shadow model costs /predict_titanic, in interleaved pairs.

Two ``bentoml serve`` of service.py run side by side on 127.0.0.1, one scoring a shadow beside
Production (:func:`loadtest.bench.shadowed_home`), one with shadow scoring off. Each pair loads
one, then the other, for ``--duration`` seconds at ``--users`` users who never wait; the order
alternates from pair to pair, so that the machine's other work weighs on both alike. The
comparison is the ratio of the medians of req/s. Writes ``shadow.json`` (every run, with the
load average when it started and the cores other work used meanwhile) and ``shadow.md``.

    python -m loadtest.shadow_bench --help
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import statistics
import tempfile
import time
import urllib.request
from dataclasses import asdict
from pathlib import Path
from typing import Any

import typer

from lifeboat.serving.store import SHADOW_BENTO_MODEL
from lifeboat.settings import get_settings
from loadtest.bench import (
    SHADOWED,
    SHIPPED,
    ensure_bento_model,
    run_locust,
    run_meta,
    server_env,
    shadowed_home,
    warm_up,
)
from loadtest.report import SHADOW_SHARE, Level
from loadtest.servers import Server, private_home

log = logging.getLogger("lifeboat.shadow_bench")
CPU_BATCH = 8  # about the mean adaptive batch at 32 users (the serving bench's results)
app = typer.Typer(add_completion=False, help=__doc__.split("\n\n")[0])


def shadow_of(server: Server) -> dict[str, Any]:
    """The shadow ``/health`` shows for one worker of ``server``."""
    with urllib.request.urlopen(server.url + "/health", timeout=10) as response:
        return json.load(response)["shadow"]


def scoring_cpu(production: Path, shadow: Path, batch: int, rounds: int) -> dict[str, float]:
    """CPU microseconds per batch of ``batch`` passengers scored in process by
    :func:`lifeboat.prediction.predict`, without and with the shadow: the shadow's cost
    measured in CPU time, which other work on the machine moves far less than req/s."""
    from lifeboat.passenger import EXAMPLE, Passenger
    from lifeboat.prediction import load_model, predict

    model, extra = load_model(production, "production"), load_model(shadow, "shadow")
    passengers, ids = [Passenger.model_validate(EXAMPLE)] * batch, [str(i) for i in range(batch)]
    spent = {}
    for name, beside in (("without", None), ("with", extra), ("without_again", None)):
        started = time.process_time()
        for _ in range(rounds):
            predict(model, passengers, ids, beside)
        spent[name] = (time.process_time() - started) / rounds * 1e6
    return spent


def summary(runs: dict[str, list[Level]]) -> dict[str, Any]:
    """Medians per server and the ratio of req/s with a shadow to without."""
    medians = {
        name: {
            "rps": statistics.median(lv.rps for lv in levels),
            "p50_ms": statistics.median(lv.p50_ms or 0.0 for lv in levels),
            "p99_ms": statistics.median(lv.p99_ms or 0.0 for lv in levels),
            "load_avg": statistics.median(lv.load_avg for lv in levels),
            "other_cpu": statistics.median(lv.other_cpu for lv in levels),
        }
        for name, levels in runs.items()
    }
    alone, both = medians[SHIPPED.name]["rps"], medians[SHADOWED.name]["rps"]
    pairs = [b.rps / a.rps for a, b in zip(runs[SHIPPED.name], runs[SHADOWED.name], strict=True)]
    return {
        "medians": medians,
        "ratio": both / alone if alone else None,
        "pair_ratios": pairs,
        "target": f">= {SHADOW_SHARE}",
    }


def markdown(meta: dict[str, Any], runs: dict[str, list[Level]], found: dict[str, Any]) -> str:
    lines = [
        f"# Shadow scoring cost, {meta['started_at']}",
        "",
        f"{meta['cpus']} CPUs; /predict_titanic at {meta['users']} users who never wait, "
        f"{meta['duration_s']} s per run, {meta['pairs']} interleaved pairs. Shadow: "
        f"{meta['shadow']}. Load average {meta['load_avg_before']:.1f} before, "
        f"{meta['load_avg_after']:.1f} after.",
        "",
        "In process, CPU per batch of {batch} passengers scored (`lifeboat.prediction.predict`): "
        "{without:.0f} µs without the shadow, {with:.0f} µs with it, {without_again:.0f} µs "
        "without again.".format(**meta["scoring_cpu_us_per_batch"]),
        "",
        "| pair | server | req/s | p50 ms | p99 ms | failures | load avg at start | "
        "CPU server / Locust / other |",
        "|--:|---|--:|--:|--:|--:|--:|--:|",
    ]
    for i in range(meta["pairs"]):
        for name in runs:
            lv = runs[name][i]
            lines.append(
                f"| {i + 1} | {name} | {lv.rps:.0f} | {lv.p50_ms} | {lv.p99_ms} | {lv.failures} "
                f"| {lv.load_avg:.1f} | {lv.server_cpu:.2f} / {lv.loadgen_cpu:.2f} / "
                f"{lv.other_cpu:.2f} |"
            )
    medians = found["medians"]
    ratio = found["ratio"]
    lines += [
        "",
        f"Median req/s: {medians[SHIPPED.name]['rps']:.0f} without a shadow, "
        f"{medians[SHADOWED.name]['rps']:.0f} with one; ratio "
        f"{ratio:.3f} (target {found['target']}); per pair: "
        + ", ".join(f"{r:.3f}" for r in found["pair_ratios"])
        + ".",
        "",
    ]
    return "\n".join(lines)


@app.command()
def compare(
    pairs: int = typer.Option(3, min=1, max=20, help="Interleaved pairs of runs."),
    users: int = typer.Option(32, min=1, help="Concurrent users who never wait."),
    duration: int = typer.Option(20, min=3, max=120, help="Seconds per run."),
    out: Path = typer.Option(None, help="Report folder. Default: reports/bench/shadow."),
    cpu_rounds: int = typer.Option(
        3000, min=1, help="Batches scored in process for the CPU cost of the shadow."
    ),
) -> None:
    """/predict_titanic with and without a shadow model, same machine, interleaved."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    settings = get_settings()
    out = out or settings.reports_dir / "bench" / "shadow"
    raw = out / "locust"
    raw.mkdir(parents=True, exist_ok=True)
    meta = run_meta(users=users, duration_s=duration, pairs=pairs)
    model = ensure_bento_model(settings)
    meta["model"] = str(model.tag)
    with (
        tempfile.TemporaryDirectory(prefix="lifeboat-shadow-bench-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        work = Path(tmp)
        env = server_env(work)
        meta["shadow"] = shadowed_home(work / SHADOWED.name, model, settings)
        shadow_dir = next((work / SHADOWED.name / "models" / SHADOW_BENTO_MODEL).glob("*/"))
        cpu = scoring_cpu(Path(model.path), shadow_dir, CPU_BATCH, cpu_rounds)
        meta["scoring_cpu_us_per_batch"] = {"batch": CPU_BATCH, **cpu}
        log.info("in-process scoring, CPU µs per batch of %d: %s", CPU_BATCH, cpu)
        plain_home = private_home(work / SHIPPED.name, Path(model.path).parents[1])
        envs = {
            SHIPPED.name: env
            | {"BENTOML_HOME": str(plain_home), "LIFEBOAT_SHADOW_SCORING": "false"},
            SHADOWED.name: env
            | {"BENTOML_HOME": str(work / SHADOWED.name), "MLFLOW_TRACKING_URI": ""},
        }
        servers: dict[str, Server] = {}
        for target in (SHIPPED, SHADOWED):
            server = Server(target, envs[target.name], out / f"{target.name}.server.log")
            stack.enter_context(server)
            log.info("%s ready in %.1f s", target.name, server.wait_ready())
            warm_up(server)
            servers[target.name] = server
        if not shadow_of(servers[SHADOWED.name])["loaded"]:
            raise RuntimeError(f"no shadow loaded: {shadow_of(servers[SHADOWED.name])}")
        if shadow_of(servers[SHIPPED.name])["loaded"]:
            raise RuntimeError("the server without a shadow has one")
        runs: dict[str, list[Level]] = {name: [] for name in servers}
        for pair in range(pairs):
            order = list(servers) if pair % 2 == 0 else list(reversed(servers))
            for name in order:
                level = run_locust(servers[name], users, duration, raw)
                log.info(
                    "pair %d %-15s %6.1f req/s, p99 %s ms, load avg %.1f, other CPU %.2f",
                    pair + 1,
                    name,
                    level.rps,
                    level.p99_ms,
                    level.load_avg,
                    level.other_cpu,
                )
                runs[name].append(level)
    meta["load_avg_after"] = os.getloadavg()[0]
    found = summary(runs)
    report = {
        "meta": meta,
        "runs": {name: [asdict(lv) for lv in levels] for name, levels in runs.items()},
        "summary": found,
    }
    (out / "shadow.json").write_text(json.dumps(report, indent=2))
    table = markdown(meta, runs, found)
    (out / "shadow.md").write_text(table)
    typer.echo(table)
    typer.echo(f"written: {out / 'shadow.json'}, {out / 'shadow.md'}")


if __name__ == "__main__":
    app()
