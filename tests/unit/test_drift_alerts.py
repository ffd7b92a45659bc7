"""drift_alerts: out-of-range feature values, found column by column, reported per passenger."""

from __future__ import annotations

from lifeboat.prediction import DriftAlert, drift_alerts

RANGES = {"Age": (0.42, 80.0), "Fare": (0.0, 512.33), "SibSp": (0.0, 8.0), "Sex": (0.0, 1.0)}


def test_each_passenger_gets_its_own_alerts_in_range_order():
    columns = {
        "Age": [22.0, 95.0, None, 0.1],
        "Fare": [7.25, 600.0, 513.0, 512.33],
        "SibSp": [1, 0, 9, 8],
        "Sex": ["male", "female", "male", "female"],  # not numeric in the schema: never alerts
    }

    alerts = drift_alerts(columns, RANGES)

    assert alerts == {
        1: [
            DriftAlert(feature="Age", value=95.0, training_min=0.42, training_max=80.0),
            DriftAlert(feature="Fare", value=600.0, training_min=0.0, training_max=512.33),
        ],
        2: [
            DriftAlert(feature="Fare", value=513.0, training_min=0.0, training_max=512.33),
            DriftAlert(feature="SibSp", value=9, training_min=0.0, training_max=8.0),
        ],
        3: [DriftAlert(feature="Age", value=0.1, training_min=0.42, training_max=80.0)],
    }


def test_missing_values_bounds_and_absent_columns_raise_nothing():
    columns = {"Age": [None, 0.42, 80.0], "Fare": [None, None, None]}  # no SibSp column

    assert drift_alerts(columns, RANGES) == {}
    assert drift_alerts(columns, {}) == {}
