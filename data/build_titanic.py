"""Build data/titanic.csv from the OpenML titanic data set (id 40945) that scikit-learn ships.

OpenML 40945 is Vanderbilt Biostatistics' titanic3 (1309 passengers). scikit-learn carries a copy
inside its wheel as a test fixture, so this works offline. The output uses Kaggle's column names
and order; ``boat`` and ``body`` are dropped because they leak the label (only survivors got a
boat, only the dead a body number), and ``home.dest`` because it is not a field clients send.

Usage: ``python data/build_titanic.py [--out data/titanic.csv]``
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
from pathlib import Path

import sklearn

ARFF = (
    Path(sklearn.__file__).parent
    / "datasets/tests/data/openml/id_40945/data-v1-dl-16826755.arff.gz"
)
# titanic3 attribute -> Kaggle column; the order of this dict is the output's column order.
KAGGLE_COLUMNS = {
    "PassengerId": None,
    "Survived": "survived",
    "Pclass": "pclass",
    "Name": "name",
    "Sex": "sex",
    "Age": "age",
    "SibSp": "sibsp",
    "Parch": "parch",
    "Ticket": "ticket",
    "Fare": "fare",
    "Cabin": "cabin",
    "Embarked": "embarked",
}
EXPECTED_ROWS = 1309


def read_arff(path: Path) -> list[dict[str, str]]:
    """Read the ARFF's data section into dicts keyed by attribute name ('' for missing)."""
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    attributes = [ln.split()[1].strip("'") for ln in lines if ln.lower().startswith("@attribute")]
    start = next(i for i, ln in enumerate(lines) if ln.strip().lower() == "@data") + 1
    reader = csv.reader(
        (ln for ln in lines[start:] if ln.strip()),
        quotechar='"',
        escapechar="\\",
        skipinitialspace=True,
    )
    rows = []
    for values in reader:
        if len(values) != len(attributes):
            raise ValueError(f"row with {len(values)} values, expected {len(attributes)}: {values}")
        rows.append({a: ("" if v == "?" else v) for a, v in zip(attributes, values, strict=True)})
    return rows


def number(text: str) -> str:
    """Render '29.0' as '29' and keep fractions as written; '' stays missing."""
    if text == "":
        return ""
    value = float(text)
    return str(int(value)) if value.is_integer() else repr(value)


def build(out: Path) -> str:
    """Write the Kaggle-shaped CSV and return its SHA-256."""
    rows = read_arff(ARFF)
    if len(rows) != EXPECTED_ROWS:
        raise ValueError(f"expected {EXPECTED_ROWS} passengers, read {len(rows)}")
    numeric = {"Survived", "Pclass", "Age", "SibSp", "Parch", "Fare"}
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(KAGGLE_COLUMNS)
        for pid, row in enumerate(rows, start=1):
            record = []
            for column, source in KAGGLE_COLUMNS.items():
                if source is None:
                    record.append(str(pid))
                else:
                    value = row[source]
                    record.append(number(value) if column in numeric else value)
            writer.writerow(record)
    return hashlib.sha256(out.read_bytes()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("titanic.csv"))
    args = parser.parse_args()
    print(f"{args.out}: sha256 {build(args.out)}")


if __name__ == "__main__":
    main()
