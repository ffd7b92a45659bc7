"""What the bench measured, the targets it is held to, and its Markdown table and figure."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Targets for service.py's /predict_titanic, from the issue that asked for the bench.
SHARE_OF_CONSTANT = 0.85  # req/s at 32 and 64 users, against the constant endpoint
P99_OVER_CONSTANT = 2.0
TIMES_MLFLOW = 30.0  # peak req/s against mlflow models serve's
BATCH_ROWS_TIMES_SINGLE = 50.0  # the batch route's peak rows/s against single requests' req/s
READY_SECONDS = 5.0
WORKER_RSS_MB = 200.0
SHADOW_SHARE = 0.90  # req/s with a shadow loaded against without, at 32 users (issue 14)


@dataclass
class Level:
    """One headless Locust run at a fixed number of users."""

    users: int
    requests: int
    failures: int
    rps: float
    rows_per_s: float
    p50_ms: float | None  # None: no request completed
    p95_ms: float | None
    p99_ms: float | None
    mean_batch_size: float | None  # None: the server does no adaptive batching
    # Cores used on average during the run: by the server (all its processes), by Locust, and
    # by anything else on the machine. Locust near 1.0 means the load generator was the limit;
    # "other" above zero means the numbers shared the machine.
    server_cpu: float
    loadgen_cpu: float
    other_cpu: float
    load_avg: float  # the machine's 1-minute load average when the level started
    failure_messages: list[str] = field(default_factory=list)


@dataclass
class Measured:
    """Everything measured for one target."""

    label: str
    startup_s: float
    workers: int
    worker_rss_mb: float  # the largest worker (with its children) after load
    levels: list[Level]
    rows_per_request: int = 1

    def at(self, users: int) -> Level | None:
        return next((lv for lv in self.levels if lv.users == users), None)

    def peak(self) -> float:
        """The best throughput over the levels: req/s, or rows/s for batches."""
        return max(lv.rows_per_s for lv in self.levels)


@dataclass(frozen=True)
class Check:
    target: str
    measured: float | None
    bound: str
    met: bool


def checks(results: dict[str, Measured]) -> list[Check]:
    """Each target the bench could measure, with the measured value and whether it was met."""
    found: list[Check] = []
    shipped, constant = results.get("predict_titanic"), results.get("constant")
    for users in (32, 64):
        ours = shipped.at(users) if shipped else None
        base = constant.at(users) if constant else None
        if ours is None or base is None:
            continue
        share = ours.rps / base.rps if base.rps else None
        found.append(
            Check(
                f"req/s vs constant, {users} users",
                share,
                f">= {SHARE_OF_CONSTANT}",
                share is not None and share >= SHARE_OF_CONSTANT,
            )
        )
        found.append(Check(f"failures, {users} users", ours.failures, "0", ours.failures == 0))
        if ours.p99_ms is not None and base.p99_ms:
            ratio = ours.p99_ms / base.p99_ms
            found.append(
                Check(
                    f"p99 vs constant, {users} users",
                    ratio,
                    f"<= {P99_OVER_CONSTANT:g}",
                    ratio <= P99_OVER_CONSTANT,
                )
            )
    if shipped is None:
        return found
    if (mlflow := results.get("mlflow")) and mlflow.peak():
        ratio = shipped.peak() / mlflow.peak()
        found.append(
            Check(
                "peak req/s vs mlflow models serve",
                ratio,
                f">= {TIMES_MLFLOW:g}",
                ratio >= TIMES_MLFLOW,
            )
        )
    shadowed = results.get("shadowed")
    if shadowed and (alone := shipped.at(32)) and (both := shadowed.at(32)) and alone.rps:
        share = both.rps / alone.rps
        found.append(
            Check(
                "req/s with a shadow vs without, 32 users",
                share,
                f">= {SHADOW_SHARE}",
                share >= SHADOW_SHARE,
            )
        )
    if batch := results.get("batch"):
        ratio = batch.peak() / shipped.peak()
        found.append(
            Check(
                "batch route peak rows/s vs single peak req/s",
                ratio,
                f">= {BATCH_ROWS_TIMES_SINGLE:g}",
                ratio >= BATCH_ROWS_TIMES_SINGLE,
            )
        )
    found.append(
        Check(
            "bentoml serve ready (s)",
            shipped.startup_s,
            f"<= {READY_SECONDS:g}",
            shipped.startup_s <= READY_SECONDS,
        )
    )
    found.append(
        Check(
            "worker RSS (MB)",
            shipped.worker_rss_mb,
            f"< {WORKER_RSS_MB:g}",
            shipped.worker_rss_mb < WORKER_RSS_MB,
        )
    )
    return found


def _cell(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def markdown(results: dict[str, Measured], found: list[Check], meta: dict[str, Any]) -> str:
    """The levels, the servers and the targets as three Markdown tables."""
    lines = [
        f"# Serving bench, {meta['started_at']}",
        "",
        f"{meta['cpus']} CPUs, load average {meta['load_avg_before']:.1f} before the bench; "
        f"{meta['duration_s']} s per level, users never wait.",
        "",
        "| target | users | req/s | rows/s | p50 ms | p95 ms | p99 ms | failures "
        "| mean batch | CPU server / Locust / other |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for run in results.values():
        for lv in run.levels:
            lines.append(
                f"| {run.label} | {lv.users} | {_cell(lv.rps)} | {_cell(lv.rows_per_s)} "
                f"| {_cell(lv.p50_ms)} | {_cell(lv.p95_ms)} | {_cell(lv.p99_ms)} "
                f"| {lv.failures} | {_cell(lv.mean_batch_size, 1)} "
                f"| {lv.server_cpu:.2f} / {lv.loadgen_cpu:.2f} / {lv.other_cpu:.2f} |"
            )
    lines += ["", "| server | ready in | workers | largest worker RSS |", "|---|--:|--:|--:|"]
    for run in results.values():
        lines.append(
            f"| {run.label} | {run.startup_s:.1f} s | {run.workers} | {run.worker_rss_mb:.0f} MB |"
        )
    lines += ["", "| target | measured | bound | met |", "|---|--:|--:|:-:|"]
    for check in found:
        met = "yes" if check.met else "**no**"
        lines.append(f"| {check.target} | {_cell(check.measured, 2)} | {check.bound} | {met} |")
    return "\n".join(lines) + "\n"


def plot(results: dict[str, Measured], path: Path) -> None:
    """Throughput and p99 against concurrency, one line per target, log-log."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    figure, (throughput, p99) = plt.subplots(1, 2, figsize=(12, 4.5))
    users = sorted({lv.users for run in results.values() for lv in run.levels})
    for run in results.values():
        style = "--" if run.rows_per_request > 1 else "-"
        x = [lv.users for lv in run.levels]
        throughput.plot(x, [lv.rows_per_s for lv in run.levels], style, marker="o", label=run.label)
        p99.plot(x, [lv.p99_ms for lv in run.levels], style, marker="o", label=run.label)
    throughput.set(ylabel="req/s (batch route: rows/s)")
    p99.set(ylabel="p99 latency (ms)")
    for axes in (throughput, p99):
        axes.set(xscale="log", yscale="log", xlabel="concurrent users")
        axes.set_xticks(users)
        axes.xaxis.set_major_formatter(ScalarFormatter())
        axes.xaxis.set_minor_formatter(NullFormatter())
        axes.grid(True, which="both", alpha=0.3)
    handles, labels = throughput.get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8)
    figure.suptitle("Lifeboat serving bench, 127.0.0.1")
    figure.tight_layout(rect=(0, 0.07, 1, 1))
    figure.savefig(path, dpi=120)
    plt.close(figure)
