"""JVM-free scoring: raw passenger columns in, survival probabilities out, through an ONNX graph.

The graph is the fitted Spark pipeline converted by ``training.onnx_export``; it takes one
``[n, 1]`` tensor per model input (``lifeboat.features.MODEL_NUMERIC_INPUTS`` as float32,
``MODEL_STRING_INPUTS`` as strings) and does the imputing, indexing and one-hot encoding itself.
This module only shapes the feeds, so it needs numpy and onnxruntime but neither pyspark nor
pandas, and a request of one passenger costs a few small arrays and one ``run``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from lifeboat.features import DERIVED_FEATURES, MISSING_CATEGORY, derive

PROBABILITY = "probability"  # Spark's probabilityCol, kept as the graph's output name
_FLOAT = "tensor(float)"
_STRING = "tensor(string)"


def session_options() -> ort.SessionOptions:
    """Options for a server process: one thread per session, full graph optimisation, quiet.

    One intra-op thread because a request is a handful of rows: a thread pool costs more to wake
    than the graph costs to run, and the server scales by workers, not by threads per call.
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only; warnings about unused initializers are noise
    return options


class OnnxScorer:
    """Survival probabilities from an ONNX graph of the Titanic pipeline, without a JVM."""

    def __init__(self, model: bytes) -> None:
        """Load the graph into one onnxruntime session.

        Args:
            model: A serialized ONNX model written by ``training.onnx_export.to_onnx``.

        Raises:
            ValueError: The graph has no ``probability`` output or an input type it cannot feed.
        """
        self.session = ort.InferenceSession(
            model, sess_options=session_options(), providers=["CPUExecutionProvider"]
        )
        outputs = [o.name for o in self.session.get_outputs()]
        if PROBABILITY not in outputs:
            raise ValueError(f"ONNX graph has no {PROBABILITY!r} output; outputs: {outputs}")
        self.input_types: dict[str, str] = {i.name: i.type for i in self.session.get_inputs()}
        unsupported = {n: t for n, t in self.input_types.items() if t not in (_FLOAT, _STRING)}
        if unsupported:
            raise ValueError(f"ONNX graph inputs of unsupported types: {unsupported}")
        # Derived features are computed only when the graph asks for one, so a model trained
        # before they existed still scores.
        self._needs_derived = any(name in DERIVED_FEATURES for name in self.input_types)

    @classmethod
    def from_path(cls, path: str | Path) -> OnnxScorer:
        """Load a scorer from an ``.onnx`` file."""
        return cls(Path(path).read_bytes())

    @property
    def input_names(self) -> tuple[str, ...]:
        """The inputs the graph declares, in its order."""
        return tuple(self.input_types)

    def inputs(self, columns: Mapping[str, Sequence[Any]]) -> dict[str, np.ndarray]:
        """Turn raw passenger columns into the graph's feeds.

        Args:
            columns: Column name to equal-length values, as clients send them; ``None`` marks a
                missing Age, Fare or Embarked. Columns the graph does not declare are ignored.

        Returns:
            One ``[n, 1]`` array per declared input: float32 with NaN for missing numbers, object
            with ``MISSING_CATEGORY`` for missing categories.

        Raises:
            KeyError: A column the graph needs is absent.
        """
        values: dict[str, Any] = {}
        if self._needs_derived:
            # float64 first: these hold small integers, so the derived values are exact and
            # equal to Spark's double arithmetic before the cast to the graph's float32.
            base = {c: np.asarray(columns[c], dtype=np.float64) for c in ("SibSp", "Parch")}
            values.update(derive(base, lambda a: np.asarray(a, dtype=np.float32)))
        feeds: dict[str, np.ndarray] = {}
        for name, kind in self.input_types.items():
            column = values[name] if name in values else _column(columns, name)
            if kind == _FLOAT:
                # float32 of a None is NaN, which the graph's Imputer replaces like Spark's does.
                feeds[name] = np.asarray(column, dtype=np.float32).reshape(-1, 1)
            else:
                strings = [MISSING_CATEGORY if v is None else v for v in column]
                feeds[name] = np.asarray(strings, dtype=object).reshape(-1, 1)
        return feeds

    def predict_proba(self, columns: Mapping[str, Sequence[Any]]) -> np.ndarray:
        """Probability of ``Survived == 1`` for each passenger, as float64 of shape ``[n]``."""
        (probability,) = self.session.run([PROBABILITY], self.inputs(columns))
        return probability[:, 1].astype(np.float64)


def _column(columns: Mapping[str, Sequence[Any]], name: str) -> Sequence[Any]:
    try:
        return columns[name]
    except KeyError:
        raise KeyError(f"the model needs column {name!r}; got {sorted(columns)}") from None
