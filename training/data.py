"""Fault-tolerant loading of passenger CSVs into Spark, with a quarantine for bad rows.

Every column is read as text under an explicit schema, then typed and checked against the
passenger schema (``lifeboat.passenger.COLUMNS``). A row that breaks it is not dropped silently:
it goes to a quarantine CSV with one reason per broken value, and the run logs the count.
"""

from __future__ import annotations

import csv
import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pyspark.sql import Column as SparkColumn
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from lifeboat.passenger import BY_NAME, COLUMNS, LABEL, REQUIRED_FEATURES, Column
from training.spark import shared_copy

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

REASON = "_reason"
CORRUPT = "_corrupt_record"
MAX_BAD_SHARE = 0.05


class DataError(ValueError):
    """The input cannot be used: missing columns, no rows, or too many bad rows."""


@dataclass(frozen=True)
class Loaded:
    """Valid, typed rows and the facts about the file they came from."""

    df: DataFrame
    path: Path
    sha256: str
    total_rows: int
    valid_rows: int
    quarantined_rows: int
    quarantine_file: Path | None


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_header(path: Path) -> list[str]:
    """The CSV's column names; an empty file is an error."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    with path.open(newline="", encoding="utf-8") as fh:
        header = next(csv.reader(fh), None)
    if not header or not any(h.strip() for h in header):
        raise DataError(f"{path}: empty file (no header row)")
    return [h.strip() for h in header]


def _problems(col: Column, raw: SparkColumn, typed: SparkColumn) -> list[SparkColumn]:
    """Spark expressions that yield a reason string when the value breaks the schema."""
    name = col.name
    present = raw.isNotNull()
    checks: list[SparkColumn] = []
    if col.required:
        checks.append(F.when(~present, F.lit(f"{name}: missing")))

    def reason(text: str) -> SparkColumn:
        return F.concat(F.lit(f"{name}: "), raw, F.lit(text))

    checked = typed.isNotNull()
    if col.kind in ("int", "float"):
        checks.append(F.when(present & typed.isNull(), reason(" is not a number")))
        finite = typed.isNotNull() & ~F.isnan(typed) & (F.abs(typed) != float("inf"))
        checks.append(F.when(typed.isNotNull() & ~finite, reason(" is not a finite number")))
        # NaN sorts above every number in Spark: range checks only make sense on finite values
        checked = finite
        if col.kind == "int":
            checks.append(
                F.when(finite & (typed != F.floor(typed)), reason(" is not a whole number"))
            )
    if col.choices is not None:
        allowed = [str(c) for c in col.choices]
        value = typed.cast("long").cast("string") if col.kind == "int" else typed
        checks.append(
            F.when(checked & ~value.isin(allowed), reason(f" not one of {'/'.join(allowed)}"))
        )
    if col.minimum is not None:
        checks.append(F.when(checked & (typed < col.minimum), reason(f" below {col.minimum:g}")))
    if col.maximum is not None:
        checks.append(F.when(checked & (typed > col.maximum), reason(f" above {col.maximum:g}")))
    return checks


def _typed(col: Column, raw: SparkColumn) -> SparkColumn:
    if col.kind in ("int", "float"):
        return raw.try_cast("double")
    return raw


def load_passengers(
    spark: SparkSession,
    path: Path,
    *,
    require_label: bool = True,
    quarantine_dir: Path,
    max_bad_share: float = MAX_BAD_SHARE,
    staging: Path | None = None,
) -> Loaded:
    """Read a passenger CSV, quarantine bad rows, and return the valid ones typed.

    Args:
        spark: The session to read with.
        path: A CSV with Kaggle's column names (extra columns are ignored).
        require_label: Whether ``Survived`` must be present (training) or may be absent (scoring).
        quarantine_dir: Where the bad rows are written, with a reason per row.
        max_bad_share: Above this share of bad rows the run stops.
        staging: A ``training.spark.shared_folder`` that outlives the returned frame, for a copy
            of the CSV the executors can read (``training.spark.shared_copy``); None: Spark
            reads ``path`` itself, which on a cluster works only if every worker has it there.

    Raises:
        DataError: Missing required columns, an empty file, or too many bad rows.
    """
    path = Path(path)
    header = read_header(path)
    required = list(REQUIRED_FEATURES) + ([LABEL] if require_label else [])
    missing = [c for c in required if c not in header]
    if missing:
        raise DataError(
            f"{path}: missing required column(s) {', '.join(missing)}; found {', '.join(header)}"
        )
    ignored = [h for h in header if h not in BY_NAME]
    if ignored:
        log.info("ignoring columns not in the passenger schema: %s", ", ".join(ignored))

    schema = StructType(
        [StructField(h, StringType()) for h in header] + [StructField(CORRUPT, StringType())]
    )
    raw = (
        spark.read.option("header", True)
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", CORRUPT)
        .option("multiLine", False)
        .option("ignoreLeadingWhiteSpace", True)
        .option("ignoreTrailingWhiteSpace", True)
        .schema(schema)
        .csv(str(path if staging is None else shared_copy(path, staging)))
    )
    known = [c for c in COLUMNS if c.name in header]
    checks: list[SparkColumn] = [
        F.when(F.col(CORRUPT).isNotNull(), F.lit("row: wrong number of fields"))
    ]
    typed_cols = []
    for col in known:
        raw_col = F.col(f"`{col.name}`")
        typed = _typed(col, raw_col)
        checks.extend(_problems(col, raw_col, typed))
        typed_cols.append(typed.alias(col.name))
    # Columns the schema knows but the file lacks (optional ones) are added as nulls, so every
    # later stage sees the same columns whichever CSV came in.
    for col in COLUMNS:
        if col.name not in header:
            kind = "double" if col.kind in ("int", "float") else "string"
            typed_cols.append(F.lit(None).cast(kind).alias(col.name))

    checked = raw.select(
        *[F.col(f"`{h}`").alias(f"raw_{i}") for i, h in enumerate(header)],
        *typed_cols,
        F.concat_ws("; ", *checks).alias(REASON),
    ).cache()
    total = checked.count()
    if total == 0:
        raise DataError(f"{path}: no data rows")
    bad = checked.filter(F.col(REASON) != "")
    n_bad = bad.count()
    quarantine_file = None
    if n_bad:
        quarantine_file = _write_quarantine(bad, header, path, quarantine_dir)
        log.warning(
            "quarantined %d of %d rows (%.1f%%) → %s",
            n_bad,
            total,
            100 * n_bad / total,
            quarantine_file,
        )
    if n_bad / total > max_bad_share:
        examples = [r[REASON] for r in bad.select(REASON).limit(3).collect()]
        raise DataError(
            f"{path}: {n_bad} of {total} rows are bad ({100 * n_bad / total:.1f}% > "
            f"{100 * max_bad_share:.0f}%), see {quarantine_file}; e.g. {' | '.join(examples)}"
        )
    valid = checked.filter(F.col(REASON) == "").select(*[c.name for c in COLUMNS]).cache()
    n_valid = valid.count()
    checked.unpersist()
    log.info("%s: %d rows, %d valid, %d quarantined", path.name, total, n_valid, n_bad)
    return Loaded(valid, path, file_sha256(path), total, n_valid, n_bad, quarantine_file)


def _write_quarantine(bad: DataFrame, header: list[str], source: Path, folder: Path) -> Path:
    """Write the bad rows as they were read, plus the reason, to one CSV."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    out = folder / f"{source.stem}-{stamp}.csv"
    rows = bad.select(*[f"raw_{i}" for i in range(len(header))], REASON).toLocalIterator()
    with out.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow([*header, "reason"])
        for row in rows:
            writer.writerow(["" if v is None else v for v in row])
    return out
