"""The MLflow pyfunc that serves the ONNX form of the pipeline: no JVM, returns probabilities.

Logged as MLflow "models from code": MLflow copies this file into the model and runs it on
load, so nothing is pickled and the model loads wherever ``lifeboat`` (shipped alongside as
``code_paths``), onnxruntime and pandas are installed.
"""

from __future__ import annotations

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

from lifeboat.passenger import FEATURES


class TitanicOnnxModel(PythonModel):
    """pyfunc wrapper: a DataFrame of passengers in, ``survived`` and ``probability`` out."""

    def load_context(self, context) -> None:
        from lifeboat.scoring import OnnxScorer

        self.scorer = OnnxScorer.from_path(context.artifacts["onnx"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        frame = model_input.astype(object).where(model_input.notna(), None)
        columns = {
            name: frame[name].tolist() if name in frame else [None] * len(frame)
            for name in FEATURES
        }
        probability = self.scorer.predict_proba(columns)
        return pd.DataFrame(
            {"survived": (probability >= 0.5).astype(int), "probability": probability}
        )


mlflow.models.set_model(TitanicOnnxModel())
