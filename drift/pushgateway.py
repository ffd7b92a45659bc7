"""Push a drift report's verdict to a Prometheus Pushgateway, for dashboards and alerts.

The gauges replace the group ``job="lifeboat_drift", model="<name>"`` on every push (PUT), so
Prometheus always sees the last report only:

* ``lifeboat_drift_share``: share of drifted features (0 to 1), what Grafana's panel shows;
* ``lifeboat_drift_detected``: 1 when the report found drift, else 0;
* ``lifeboat_drift_feature_psi{feature}`` and ``lifeboat_drift_feature_drifted{feature}``;
* ``lifeboat_drift_rows``: logged rows of the compared model version;
* ``lifeboat_drift_live_auc``: live AUC on labelled rows, when there were any;
* ``lifeboat_drift_last_report_timestamp_seconds``: when the report was made.

The served model's version is a label on every gauge (``model_version``).
"""

from __future__ import annotations

from typing import Any

JOB = "lifeboat_drift"


def push_summary(url: str, summary: dict[str, Any], model_name: str, timeout: float = 10) -> None:
    """Replace the report's gauges on the Pushgateway at ``url`` (e.g. ``http://host:9091``).

    Raises:
        OSError: The Pushgateway did not answer, or refused the push.
    """
    from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

    registry = CollectorRegistry()
    version = str(summary["model_version"])

    def gauge(name: str, doc: str, *labels: str) -> Gauge:
        return Gauge(name, doc, ["model_version", *labels], registry=registry)

    gauge("lifeboat_drift_share", "Share of drifted features.").labels(version).set(
        summary["share_drifted"]
    )
    gauge("lifeboat_drift_detected", "1 if the report found drift.").labels(version).set(
        summary["drift_detected"]
    )
    gauge("lifeboat_drift_rows", "Logged rows compared.").labels(version).set(
        summary["rows"]["current"]
    )
    psi = gauge("lifeboat_drift_feature_psi", "PSI per feature.", "feature")
    drifted = gauge("lifeboat_drift_feature_drifted", "1 if the feature drifted.", "feature")
    for feature, f in summary["features"].items():
        psi.labels(version, feature).set(f["psi"])
        drifted.labels(version, feature).set(f["drifted"])
    live_auc = (summary.get("performance") or {}).get("live_auc")
    if live_auc is not None:
        gauge("lifeboat_drift_live_auc", "AUC on labelled logged rows.").labels(version).set(
            live_auc
        )
    stamp = Gauge(
        "lifeboat_drift_last_report_timestamp_seconds",
        "When the last drift report was made.",
        registry=registry,
    )
    stamp.set_to_current_time()
    push_to_gateway(
        url, job=JOB, grouping_key={"model": model_name}, registry=registry, timeout=timeout
    )
