"""Operations routes: health, model info, BentoML's probes and metrics, the OpenAPI document."""

from __future__ import annotations

import json
import secrets

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.harness import CURL_PASSENGER

pytestmark = [pytest.mark.spark, pytest.mark.integration]

FEATURES = ["Pclass", "Sex", "Age", "SibSp", "Parch", "Fare", "Embarked"]


def test_health_names_the_worker_and_the_model_in_the_store(server, serving_home):
    workers = server.worker_pids()
    for health in server.healths(rounds=10):
        assert health["status"] == "ok" and health["model_loaded"] is True
        assert health["worker_pid"] in workers
        assert health["model_name"] == "titanic"
        assert serving_home.model_dir(health["model_tag"]).is_dir()
        assert health["reload_error"] is None


def test_model_info_carries_the_registry_metadata(client, serving_home):
    info = client.get("/model_info").json()
    stored = json.loads((serving_home.model_dir(info["model_tag"]) / "metadata.json").read_text())
    assert info["metadata"]["version"] == stored["version"]
    assert info["metadata"]["run_id"] == stored["run_id"]
    assert info["metadata"]["heldout_auc"] == pytest.approx(stored["heldout_auc"])
    assert set(info["metadata"]["feature_ranges"]) >= {"Age", "Fare"}


def test_model_info_shows_no_server_paths(client, serving_home):
    # the model was imported from a sqlite registry in the serving home
    text = client.get("/model_info").text
    assert json.loads(text)["metadata"]["tracking_uri"] == "embedded"
    assert str(serving_home.path) not in text and "sqlite" not in text


@pytest.mark.parametrize("route", ["/livez", "/readyz"])
def test_bentoml_probes(client, route):
    assert client.get(route).status_code == 200


def test_metrics_count_the_prediction_requests(client):
    assert client.post("/predict_titanic", json=CURL_PASSENGER).status_code == 200
    text = client.get("/metrics").text
    assert "bentoml_service_request_total" in text
    assert 'endpoint="/predict_titanic"' in text


def metric_samples(client) -> list:
    """Every sample ``/metrics`` shows, as prometheus_client parses them."""
    text = client.get("/metrics").text
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def requests_to(samples: list, endpoint: str) -> float:
    return sum(
        s.value
        for s in samples
        if s.name == "bentoml_service_request_total" and s.labels.get("endpoint") == endpoint
    )


def test_unknown_paths_share_one_metrics_label(client):
    known = ["/health", "/model_info", "/livez", "/readyz", "/docs.json", "/schema.json"]
    for route in known:
        assert client.get(route).status_code == 200
    assert client.get(f"/{secrets.token_hex(8)}").status_code == 404
    assert client.post("/predict_titanic", json=CURL_PASSENGER).status_code == 200
    before = metric_samples(client)

    for _ in range(300):  # one keep-alive connection to 127.0.0.1: one worker
        assert client.get(f"/{secrets.token_hex(8)}/{secrets.token_hex(4)}").status_code == 404
    assert client.post("/predict_titanic", json=CURL_PASSENGER).status_code == 200
    after = metric_samples(client)

    # BentoML's own labels would add ~20 series per path (6000 here)
    assert len(after) <= len(before) + 5, len(after) - len(before)
    endpoints = {s.labels["endpoint"] for s in after if "endpoint" in s.labels}
    assert len(endpoints) < 40, sorted(endpoints)[:50]
    assert requests_to(after, "/predict_titanic") >= requests_to(before, "/predict_titanic") + 1
    for route in known:
        assert requests_to(after, route) >= 1, route


def test_openapi_describes_the_flat_body(client):
    doc = client.get("/docs.json").json()
    single = doc["paths"]["/predict_titanic"]["post"]
    schema = single["requestBody"]["content"]["application/json"]["schema"]
    assert schema["type"] == "object"
    assert set(schema["properties"]) >= set(FEATURES)
    assert set(schema["required"]) == {"Pclass", "Sex", "SibSp", "Parch"}
    assert schema["properties"]["Age"]["type"] == "number"
    assert schema["properties"]["Age"]["nullable"] is True
    assert schema["properties"]["Sex"]["enum"] == ["female", "male"]
    assert schema["example"] == CURL_PASSENGER
    assert "passengers" not in json.dumps(single)  # BentoML's internal list stays hidden
    answer = single["responses"]["200"]["content"]["application/json"]["schema"]
    assert set(answer["properties"]) == {
        "request_id",
        "survived",
        "probability",
        "model_version",
        "drift_alerts",
    }
    batch = doc["paths"]["/predict_titanic_batch"]["post"]["requestBody"]["content"]
    batch_schema = batch["application/json"]["schema"]
    assert (batch_schema["type"], batch_schema["minItems"], batch_schema["maxItems"]) == (
        "array",
        1,
        1000,
    )
    batch_answer = doc["paths"]["/predict_titanic_batch"]["post"]["responses"]["200"]
    assert set(batch_answer["content"]["application/json"]["schema"]["properties"]) == {
        "predictions"
    }
    for route in ("/health", "/model_info", "/reload", "/feedback"):
        assert route in doc["paths"]
    labels = doc["paths"]["/feedback"]["post"]["requestBody"]["content"]["application/json"]
    one, many = labels["schema"]["oneOf"]
    assert set(one["required"]) == {"request_id", "Survived"} and many["type"] == "array"
