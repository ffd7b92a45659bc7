"""The traffic generator: light imports, valid passengers, and drift where it says there is."""

from __future__ import annotations

import statistics

from drift import traffic
from lifeboat.passenger import FEATURES, LABEL, Passenger
from tests.harness import packages_imported_by


def test_field_types_are_the_json_types_of_the_features():
    json_types = {
        "Pclass": int, "Sex": str, "Age": float, "SibSp": int, "Parch": int, "Fare": float,
        "Embarked": str,
    }  # fmt: skip
    rows = traffic.load_rows()
    for name, kind in json_types.items():
        assert {type(row[name]) for row in rows} <= {kind, type(None)}, name
    assert {type(row[LABEL]) for row in rows} <= {int, type(None)}
    assert (traffic.MAX_AGE, traffic.MAX_FARE) == (120.0, 10_000.0)


def test_importing_it_pulls_in_no_data_or_ml_library():
    heavy = ("pandas", "numpy", "evidently", "mlflow", "bentoml", "pyspark")
    assert packages_imported_by("import drift.traffic", heavy) == []


def test_every_generated_passenger_is_one_the_service_accepts():
    for drifted in (False, True):
        for row in traffic.passengers(300, drifted=drifted, labelled=True, seed=3):
            Passenger.model_validate(row)  # raises on a bad type or range


def test_labels_only_when_asked():
    assert all(LABEL not in p for p in traffic.passengers(50, seed=1))
    assert all(p[LABEL] in (0, 1) for p in traffic.passengers(50, labelled=True, seed=1))


def test_drifted_traffic_shifts_class_fare_and_age_but_not_sex():
    plain = traffic.passengers(4000, seed=7)
    shifted = traffic.passengers(4000, drifted=True, seed=7)

    def share(rows, key, value):
        return sum(r[key] == value for r in rows) / len(rows)

    def mean(rows, key):
        return statistics.fmean(r[key] for r in rows if r[key] is not None)

    assert share(plain, "Pclass", 1) < 0.3 < 0.45 < share(shifted, "Pclass", 1) < 0.55
    assert share(plain, "Pclass", 3) > 0.5 > 0.25 > share(shifted, "Pclass", 3)
    assert mean(shifted, "Fare") > 3 * mean(plain, "Fare")  # x2.5 and more first class
    assert mean(shifted, "Age") - mean(plain, "Age") > 15
    assert abs(share(plain, "Sex", "male") - share(shifted, "Sex", "male")) < 0.15


def test_seeded_samples_repeat_and_an_unseeded_sampler_works():
    assert traffic.passengers(20, seed=5) == traffic.passengers(20, seed=5)
    sampler = traffic.TrafficSampler(drifted=True)
    assert set(sampler()) == set(FEATURES)
