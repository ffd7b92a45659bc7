"""Data checks on the committed data/titanic.csv."""

from __future__ import annotations

import csv
import hashlib
import re
import subprocess
import sys

import pytest

from lifeboat.passenger import COLUMN_NAMES, COLUMNS, Passenger
from tests.harness import DATA, ROOT


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    with DATA.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def typed(row: dict[str, str]) -> dict:
    out: dict = {}
    for col in COLUMNS:
        text = row[col.name]
        if text == "":
            out[col.name] = None
        elif col.kind == "int":
            out[col.name] = int(text)
        elif col.kind == "float":
            out[col.name] = float(text)
        else:
            out[col.name] = text
    return out


def test_header_is_kaggle(rows):
    with DATA.open(encoding="utf-8") as fh:
        assert fh.readline().strip().split(",") == list(COLUMN_NAMES)


def test_full_passenger_list(rows):
    assert len(rows) == 1309
    assert [int(r["PassengerId"]) for r in rows] == list(range(1, 1310))


def test_every_row_is_a_valid_passenger(rows):
    for row in rows:
        Passenger(**typed(row))


def test_known_shape_of_titanic3(rows):
    survived = sum(int(r["Survived"]) for r in rows)
    assert survived == 500  # titanic3: 500 of 1309 survived
    assert sum(r["Age"] == "" for r in rows) == 263
    assert sum(r["Fare"] == "" for r in rows) == 1
    assert sum(r["Embarked"] == "" for r in rows) == 2
    assert {r["Pclass"] for r in rows} == {"1", "2", "3"}


def test_readme_states_the_files_sha256():
    readme = (ROOT / "data" / "README.md").read_text()
    digest = hashlib.sha256(DATA.read_bytes()).hexdigest()
    assert re.search(r"\b[0-9a-f]{64}\b", readme).group(0) == digest


def test_build_script_reproduces_the_file(tmp_path):
    out = tmp_path / "titanic.csv"
    subprocess.run(
        [sys.executable, str(ROOT / "data" / "build_titanic.py"), "--out", str(out)],
        check=True,
        capture_output=True,
    )
    assert out.read_bytes() == DATA.read_bytes()
