"""The shadow bench's arithmetic: medians, their ratio, and the serving bench's check."""

from __future__ import annotations

from loadtest.report import Level, Measured, checks
from loadtest.shadow_bench import summary


def _level(rps: float, users: int = 32) -> Level:
    return Level(users, 100, 0, rps, rps, 10.0, 20.0, 30.0, 4.0, 1.0, 0.3, 0.1, 2.0)


def test_the_ratio_is_of_the_medians_and_every_pair_is_kept():
    runs = {
        "predict_titanic": [_level(100), _level(300), _level(200)],
        "shadowed": [_level(90), _level(150), _level(190)],
    }
    found = summary(runs)
    assert found["medians"]["predict_titanic"]["rps"] == 200
    assert found["medians"]["shadowed"]["rps"] == 150
    assert found["ratio"] == 0.75
    assert found["pair_ratios"] == [0.9, 0.5, 0.95]


def test_the_serving_bench_holds_the_shadow_to_ninety_percent_at_32_users():
    def measured(rps: float) -> Measured:
        return Measured("x", 1.0, 2, 100.0, [_level(rps, 8), _level(rps)])

    def shadow_check(shadowed: float) -> tuple:
        results = {"predict_titanic": measured(500), "shadowed": measured(shadowed)}
        (check,) = [c for c in checks(results) if "shadow" in c.target]
        return check.measured, check.met

    assert shadow_check(460) == (0.92, True)
    assert shadow_check(400) == (0.8, False)
