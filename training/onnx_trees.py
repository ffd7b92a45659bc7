"""Read a tree ensemble's trees once for onnxmltools, instead of once per tree.

``onnxmltools`` (1.16) gets each tree's nodes by saving that tree through Spark and reading
the parquet back with a Spark job: about 0.6 s a tree here, 63 s of a 100-tree forest's export
and most of a training run. A fitted ensemble saves all its trees in one parquet file
(``treeID``, ``nodeData``), which pyarrow reads without Spark. :func:`trees_read_once` does
that for every ensemble of a pipeline and, while it is active, answers the converters' per-tree
reads from it; any other tree model is read the same way from a save of its own. The nodes are
the same rows as onnxmltools' read gives, and the export's parity check compares every
probability with Spark's.

The saves go to a ``training.spark.shared_folder``: on a cluster the executors write the parquet
files, and pyarrow on the driver can only read them from storage both see.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow.parquet as pq
from onnxmltools.convert.sparkml.operator_converters import (
    decision_tree_classifier,
    decision_tree_regressor,
    random_forest_classifier,
)
from onnxmltools.convert.sparkml.operator_converters.tree_ensemble_common import (
    save_read_sparkml_model_data as read_through_spark,
)

from training.spark import shared_folder, written

if TYPE_CHECKING:
    from pyspark.ml import PipelineModel

# The converter modules that call onnxmltools' per-tree read by this name.
_READERS = (random_forest_classifier, decision_tree_regressor, decision_tree_classifier)
_READ = "save_read_sparkml_model_data"


class NodeFrame:
    """One tree's node rows with the two DataFrame methods the converters call."""

    def __init__(self, nodes: pd.DataFrame) -> None:
        self.nodes = nodes

    def toPandas(self) -> pd.DataFrame:  # noqa: N802 (pyspark's name)
        return self.nodes

    def count(self) -> int:
        return len(self.nodes)


def saved_data(model: Any, folder: Path) -> pd.DataFrame:
    """Save a fitted Spark model into ``folder`` (a shared one) and read its ``data`` parquet."""
    model.write().save(str(folder))
    written(folder / "data", "*.parquet")  # or the executors wrote them where pyarrow can't see
    return pq.read_table(folder / "data").to_pandas()


def ensemble_nodes(model: Any, folder: Path) -> dict[str, NodeFrame]:
    """Every tree of a fitted Spark tree ensemble, by the tree's uid, from one save."""
    table = saved_data(model, folder)
    trees = model.trees
    nodes = {}
    for tree_id, rows in table.groupby("treeID"):
        frame = pd.DataFrame(list(rows["nodeData"]))
        nodes[trees[int(tree_id)].uid] = NodeFrame(frame)
    if len(nodes) != len(trees) or len({t.uid for t in trees}) != len(trees):
        raise ValueError(f"{type(model).__name__}: trees and saved tree data do not match")
    return nodes


@contextlib.contextmanager
def trees_read_once(pipeline_model: PipelineModel) -> Iterator[None]:
    """While active, onnxmltools reads the pipeline's ensemble trees from one save each."""
    from pyspark.ml.classification import (
        GBTClassificationModel,
        RandomForestClassificationModel,
    )

    ensembles = (GBTClassificationModel, RandomForestClassificationModel)
    nodes: dict[str, NodeFrame] = {}
    with shared_folder("onnx-trees-") as folder:
        for i, stage in enumerate(pipeline_model.stages):
            if isinstance(stage, ensembles):
                nodes |= ensemble_nodes(stage, folder / str(i))

    def read(spark: Any, model: Any) -> NodeFrame:
        uid = getattr(model, "uid", None)
        if uid in nodes:
            return nodes[uid]
        # onnxmltools' own read would save into the driver's temp directory (or demand
        # ONNX_DFS_PATH on a cluster) and never delete the folder.
        with shared_folder("onnx-tree-") as folder:
            return NodeFrame(saved_data(model, folder / "tree"))

    try:
        for module in _READERS:
            setattr(module, _READ, read)
        yield
    finally:
        for module in _READERS:
            setattr(module, _READ, read_through_spark)
