"""The one place a SparkSession is built, and the folders its executors share with the driver."""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from lifeboat.settings import Settings, get_settings
from training.java import require_java

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

# Masters whose executors run on the driver's machine and so see its files. local-cluster
# starts separate executor JVMs, but on the same disk.
_LOCAL_MASTER = re.compile(r"local(\[(\*|\d+)(,\d+)?\])?|local-cluster\[\d+,\d+,\d+\]")


class ScratchError(RuntimeError):
    """Spark's executors do not share the driver's scratch folders (unset, or not mounted)."""


def is_local(master: str) -> bool:
    """Whether ``master`` (a Spark master URL) keeps the executors on the driver's disk."""
    return _LOCAL_MASTER.fullmatch(master.strip()) is not None


def require_scratch(settings: Settings) -> None:
    """Raise unless Spark's executors can read and write the folders the driver uses.

    Raises:
        ScratchError: A cluster master without ``LIFEBOAT_SPARK_SCRATCH``, or a scratch setting
            that is not an existing absolute directory.
    """
    scratch = settings.spark_scratch
    if scratch is None:
        if is_local(settings.spark_master):
            return
        raise ScratchError(
            f"SPARK_MASTER={settings.spark_master} is a cluster, whose executors cannot see this "
            "machine's temporary files: set LIFEBOAT_SPARK_SCRATCH to a directory mounted at the "
            "same path here and on every Spark worker"
        )
    # Executors resolve a relative path against their own working directory.
    if not scratch.is_absolute() or not scratch.is_dir():
        raise ScratchError(
            f"LIFEBOAT_SPARK_SCRATCH={scratch} is not an existing absolute directory; mount one "
            "at the same path here and on every Spark worker"
        )


@contextlib.contextmanager
def shared_folder(prefix: str = "lifeboat-") -> Iterator[Path]:
    """A fresh folder that the driver and every executor see at the same path; removed after.

    Spark writes a save or a CSV from the executors, and reads a file from them too, so any
    path the driver hands to Spark and then reads back (or wrote first) must be one of these.
    Made in ``LIFEBOAT_SPARK_SCRATCH``, or in the local temp directory when that is unset (a
    local master, see ``require_scratch``). The folder is private to the driver's user (0700):
    executors must run as that user, as they do in our images (uid 1000 in both).
    """
    with tempfile.TemporaryDirectory(prefix=prefix, dir=get_settings().spark_scratch) as folder:
        yield Path(folder)


def shared_copy(path: Path, folder: Path) -> Path:
    """``path`` where every executor can read it: itself on a local master, else a copy.

    Args:
        path: A file on the driver's disk.
        folder: A ``shared_folder`` that must outlive every frame read from the copy (Spark
            reads lazily and again after losing a cached block).
    """
    if get_settings().spark_scratch is None:
        return path
    copy = Path(tempfile.mkdtemp(dir=folder)) / path.name
    shutil.copyfile(path, copy)
    return copy


def written(folder: Path, pattern: str) -> list[Path]:
    """The files matching ``pattern`` that a Spark write left in ``folder``, as the driver sees.

    Raises:
        ScratchError: There are none: the executors wrote them on a disk of their own.
    """
    found = sorted(folder.glob(pattern))
    if not found:
        raise ScratchError(
            f"Spark wrote no {pattern} in {folder} that this machine sees; "
            "LIFEBOAT_SPARK_SCRATCH must be mounted at the same path on every Spark worker"
        )
    return found


def get_spark(app_name: str = "lifeboat") -> SparkSession:
    """Return the process's SparkSession, creating it on first call.

    Tuned for small data on few cores: few shuffle partitions, no UI, quiet logs.

    Raises:
        JavaMissingError: No Java 17+.
        ScratchError: A cluster master without a shared scratch directory.
    """
    require_java()
    settings = get_settings()
    require_scratch(settings)
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.appName(app_name)
        .master(settings.spark_master)
        .config("spark.driver.memory", settings.spark_driver_memory)
        # Python workers must run this interpreter (the venv), not whatever python3 is on PATH.
        .config("spark.pyspark.python", sys.executable)
        .config("spark.pyspark.driver.python", sys.executable)
        .config("spark.sql.adaptive.enabled", "false")
        .config("spark.locality.wait", "0s")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.default.parallelism", "4")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.driver.extraJavaOptions", "-Dlog4j2.level=WARN")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    log.info("Spark %s on %s", spark.version, settings.spark_master)
    return spark
