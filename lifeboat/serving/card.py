"""The model card a model carries in its store folder, and ``GET /model_card``.

Training writes the card (``training.model_card``; its files are named in ``lifeboat.artifact``)
and the store import copies it beside the model. A model imported before cards existed has
none, and the route answers 404.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response

from lifeboat.artifact import CARD_HTML, CARD_MARKDOWN
from lifeboat.serving.reloading import ModelHolder
from lifeboat.serving.sources import resolve

MARKDOWN_TYPE = "text/markdown"


def wants_markdown(request: Request) -> bool:
    """``?format=md``, or an Accept header naming text/markdown (HTML otherwise)."""
    asked = request.query_params.get("format", "").lower()
    if asked:
        return asked in ("md", "markdown")
    return MARKDOWN_TYPE in request.headers.get("accept", "")


def card_response(model_dir: str | Path, version: str, request: Request) -> Response:
    """The card of the model in ``model_dir`` as HTML or Markdown; 404 if it carries none."""
    markdown = wants_markdown(request)
    path = Path(model_dir) / (CARD_MARKDOWN if markdown else CARD_HTML)
    if not path.is_file():
        return JSONResponse(
            {
                "detail": f"model version {version} carries no model card: it was imported "
                "before cards existed; retrain and promote a version to get one"
            },
            status_code=404,
        )
    text = path.read_text(encoding="utf-8")
    if markdown:
        return PlainTextResponse(text, media_type=f"{MARKDOWN_TYPE}; charset=utf-8")
    return HTMLResponse(text)


def serving_card(holder: ModelHolder, request: Request) -> Response:
    """``GET /model_card``: the card of the model this worker serves."""
    model = holder.model
    return card_response(resolve(holder.store, model.tag).path, model.version, request)
