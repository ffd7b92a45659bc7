"""Fault-tolerant loading with a real Spark session: quarantine, counts and clear errors."""

from __future__ import annotations

import csv
import shutil

import pytest

from tests.harness import DATA, ROOT
from training.data import DataError, load_passengers

pytestmark = pytest.mark.spark

BAD_ROWS = {
    "2001": ('2001,1,7,"X, Mr. Y",male,30,0,0,T1,10,,S', "Pclass: 7 not one of 1/2/3"),
    "2002": ('2002,1,1,"X, Mr. Y",male,abc,0,0,T1,10,,S', "Age: abc is not a number"),
    "2003": (
        '2003,2,1,"X, Mr. Y",male,30,0,0,T1,-5,,S',
        "Survived: 2 not one of 0/1; Fare: -5 below 0",
    ),
    "2004": (
        '2004,1,1,"X, Mr. Y",robot,30,0,0,T1,10,,Z',
        "Sex: robot not one of female/male; Embarked: Z not one of C/Q/S",
    ),
    "2005": ('2005,1,1,"X, Mr. Y",male,30,0,0', "row: wrong number of fields"),
    "2006": (
        '2006,1,1,"X, Mr. Y",male,NaN,1.5,0,T1,10,,S',
        "Age: NaN is not a finite number; SibSp: 1.5 is not a whole number",
    ),
    "2007": ('2007,1,,"X, Mr. Y",male,30,0,0,T1,10,,S', "Pclass: missing"),
}


def test_bad_rows_are_quarantined_with_reasons(spark, tmp_path):
    src = tmp_path / "with_bad.csv"
    shutil.copy(DATA, src)
    with src.open("a") as fh:
        fh.writelines(line + "\n" for line, _ in BAD_ROWS.values())
    loaded = load_passengers(spark, src, quarantine_dir=tmp_path / "q")
    assert (loaded.total_rows, loaded.valid_rows, loaded.quarantined_rows) == (1316, 1309, 7)
    assert loaded.df.count() == 1309
    with loaded.quarantine_file.open(newline="") as fh:
        quarantined = {r["PassengerId"]: r["reason"] for r in csv.DictReader(fh)}
    assert quarantined == {pid: reason for pid, (_, reason) in BAD_ROWS.items()}


def test_kaggle_train_csv_loads_unchanged(spark, tmp_path):
    loaded = load_passengers(
        spark, ROOT / "tests/fixtures/kaggle_train_head.csv", quarantine_dir=tmp_path
    )
    assert (loaded.valid_rows, loaded.quarantined_rows) == (10, 0)
    rows = {r.PassengerId: r for r in loaded.df.collect()}
    assert rows[6].Age is None and rows[62].Embarked is None and rows[79].Age == 0.83


def test_scoring_input_may_lack_the_label(spark, tmp_path):
    src = tmp_path / "test.csv"
    src.write_text(
        "PassengerId,Pclass,Sex,Age,SibSp,Parch,Fare,Embarked\n892,3,male,34.5,0,0,7.8292,Q\n"
    )
    with pytest.raises(DataError, match="missing required column.*Survived"):
        load_passengers(spark, src, quarantine_dir=tmp_path)
    loaded = load_passengers(spark, src, quarantine_dir=tmp_path, require_label=False)
    assert loaded.valid_rows == 1


def test_missing_columns_are_named(spark, tmp_path):
    src = tmp_path / "cols.csv"
    src.write_text("PassengerId,Survived,Pclass,Age\n1,0,3,22\n")
    with pytest.raises(DataError, match="missing required column.*Sex, SibSp, Parch"):
        load_passengers(spark, src, quarantine_dir=tmp_path)


@pytest.mark.parametrize(
    "content",
    ["", "PassengerId,Survived,Pclass,Name,Sex,Age,SibSp,Parch,Ticket,Fare,Cabin,Embarked\n"],
)
def test_empty_files_stop_the_run(spark, tmp_path, content):
    src = tmp_path / "empty.csv"
    src.write_text(content)
    with pytest.raises(DataError, match="empty file|no data rows"):
        load_passengers(spark, src, quarantine_dir=tmp_path)


def test_too_many_bad_rows_stop_the_run(spark, tmp_path):
    src = tmp_path / "mostly_bad.csv"
    lines = DATA.read_text().splitlines()[:101]  # header + 100 good rows
    lines += [f'{3000 + i},1,9,"X",male,30,0,0,T,10,,S' for i in range(6)]  # 6 bad: 5.7%
    src.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"6 of 106 rows are bad \(5\.7% > 5%\)") as err:
        load_passengers(spark, src, quarantine_dir=tmp_path / "q")
    assert "Pclass: 9 not one of 1/2/3" in str(err.value)
    assert len(list((tmp_path / "q").glob("*.csv"))) == 1  # the evidence is kept
