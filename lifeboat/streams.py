"""The service's two monitored streams and the ids that join them; the writer (``serving``)
and the reader (``drift``) both take their names from here.

* **Predictions** (``bentoml.monitor("titanic")``): one record per scored passenger, under
  ``<log_path>/titanic/data/data.<worker>.log``. Its ``prediction_id`` is what the client got as
  ``request_id``; its ``Survived`` is a *claimed* label, whatever the client sent inline.
* **Feedback** (``bentoml.monitor("titanic_feedback")``): one record per label sent to
  ``POST /feedback``, with the ``prediction_id`` it is about and who sent it. Only these labels
  are trusted for retraining, unless the operator opts in to the claimed ones.

A prediction id is BentoML's request id (the OpenTelemetry span id, 64 random bits, sent back in
the ``X-BentoML-Request-ID`` header) as 16 hex digits; passenger ``i`` of a batch request gets
``<request id>-<i>``. Nothing here imports BentoML.

**Shadow columns** (the contract between the serving side, which scores a shadow model beside
Production in the same batch, and ``drift.shadow``, which compares the two): every record of the
prediction stream carries

* ``shadow_version``: the registry version of the shadow model that scored this passenger too,
  as a string (``"7"``), or null when no shadow is loaded;
* ``shadow_probability``: the shadow's P(survived) for this passenger, a float in [0, 1], or
  null when no shadow is loaded or it failed on this batch.

Both are null, or both set. Records without these columns (written before shadows existed) mean
"no shadow". The client sees only Production's answer; ``probability``, ``prediction`` and
``model_version`` stay Production's.
"""

from __future__ import annotations

import re
import secrets

PREDICTIONS = "titanic"
FEEDBACK = "titanic_feedback"
PREDICTION_ID = "prediction_id"  # the column of both streams that joins them
SENDER = "sender"  # the feedback stream's column naming the token that sent a label
SHADOW_VERSION = "shadow_version"  # prediction stream: the shadow's registry version, or null
SHADOW_PROBABILITY = "shadow_probability"  # prediction stream: the shadow's P(survived), or null

PREDICTION_ID_PATTERN = r"^[0-9a-f]{16}(-[0-9]{1,4})?$"
_PREDICTION_ID = re.compile(PREDICTION_ID_PATTERN)


def request_hex(request_id: int | None) -> str:
    """A request's id as clients see it (the ``X-BentoML-Request-ID`` header's 16 hex digits);
    a fresh random one outside a request (a direct call, a test)."""
    if request_id is None:
        return secrets.token_hex(8)
    return format(request_id, "016x")


def batch_ids(request_id: int | None, n: int) -> list[str]:
    """The prediction ids of a batch request's ``n`` passengers, in order."""
    base = request_hex(request_id)
    return [f"{base}-{i}" for i in range(n)]


def is_prediction_id(text: object) -> bool:
    """Whether ``text`` has the form of a prediction id (it may still match no prediction)."""
    return isinstance(text, str) and _PREDICTION_ID.match(text) is not None
