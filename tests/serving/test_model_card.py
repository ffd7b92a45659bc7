"""GET /model_card on a running server: the card of the version it serves."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.spark, pytest.mark.integration]


def test_model_card_is_the_serving_versions_html_by_default(client):
    version = client.get("/model_info").json()["metadata"]["version"]
    answer = client.get("/model_card")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    page = answer.text
    assert f"<h1>titanic v{version}:" in page
    assert "<td>Sex=female</td>" in page and "<td>family=alone</td>" in page
    assert "data:image/png;base64," in page


@pytest.mark.parametrize(
    "ask", [{"params": {"format": "md"}}, {"headers": {"accept": "text/markdown"}}]
)
def test_model_card_in_markdown_on_request(client, serving_home, ask):
    answer = client.get("/model_card", **ask)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/markdown")
    stored = serving_home.model_path / "model_card.md"
    assert answer.text == stored.read_text()
    assert "| port=S |" in answer.text
