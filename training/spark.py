"""The one place a SparkSession is built."""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

from lifeboat.settings import get_settings
from training.java import require_java

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)


def get_spark(app_name: str = "lifeboat") -> SparkSession:
    """Return the process's SparkSession, creating it on first call.

    Tuned for small data on few cores: few shuffle partitions, no UI, quiet logs.
    """
    require_java()
    from pyspark.sql import SparkSession

    settings = get_settings()
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
