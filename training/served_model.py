"""The MLflow pyfunc that serves the ONNX form of the pipeline: no JVM, returns probabilities.

Logged as MLflow "models from code": MLflow copies this file into the model and runs it on
load, so nothing is pickled and the model loads wherever ``lifeboat`` (shipped alongside as
``code_paths``), onnxruntime and pandas are installed.
"""

from __future__ import annotations

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

from lifeboat.passenger import FEATURES, ModelInput


class TitanicOnnxModel(PythonModel):
    """pyfunc wrapper: passengers in, ``survived`` and ``probability`` out (a DataFrame).

    The type hint of ``predict`` is the model's signature: MLflow validates every row against
    :data:`lifeboat.passenger.ModelInput` (strictly: an int column must hold ints) and hands the
    rows over as its instances, whether they came as a DataFrame or as a list of dicts.
    """

    def load_context(self, context) -> None:
        from lifeboat.scoring import OnnxScorer

        self.scorer = OnnxScorer.from_path(context.artifacts["onnx"])

    def predict(self, context, model_input: list[ModelInput], params=None):
        # Returns a DataFrame, unannotated: MLflow reads a return annotation and logs that it
        # cannot describe a DataFrame (the signature's output is Any either way).
        columns = {name: [getattr(row, name) for row in model_input] for name in FEATURES}
        probability = self.scorer.predict_proba(columns)
        return pd.DataFrame(
            {"survived": (probability >= 0.5).astype(int), "probability": probability}
        )


mlflow.models.set_model(TitanicOnnxModel())
