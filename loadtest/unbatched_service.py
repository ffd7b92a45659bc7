"""service.py's TitanicSurvival with adaptive batching off: ``make bench``'s control.

Everything else (body, model, monitoring, middlewares) is the shipped service's own: the one
API description is replaced by a copy that is not batchable, before BentoML builds its
dispatchers. Serve it from the project root:
``bentoml serve loadtest.unbatched_service:TitanicSurvival``.
"""

from __future__ import annotations

import attrs

from service import TitanicSurvival

TitanicSurvival.apis["predict_titanic"] = attrs.evolve(
    TitanicSurvival.apis["predict_titanic"], batchable=False
)

__all__ = ["TitanicSurvival"]
