"""Per-micro-batch stats stay on the device and are read once per step: the sums must be the numbers the
old per-micro-batch float() conversion gave (float64, same order), and filler passes must add keys only."""
import math

import torch

from tuneforge.training.loop import TrainingLoop


def test_device_stat_sums_equal_python_float_sums():
    torch.manual_seed(0)
    micro = [{"loss_sum": torch.rand((), dtype=torch.float32) * 100, "correct": torch.tensor(7 + i),
              "tokens": float(10 + i)} for i in range(5)]
    sums: dict = {}
    for stats in micro:
        TrainingLoop._add_stats(sums, stats, real=True)
    host = TrainingLoop._to_host(sums)
    expected = {k: 0.0 for k in micro[0]}
    for stats in micro:  # what the loop did before: float() per micro-batch, summed in Python
        for k, v in stats.items():
            expected[k] += float(v)
    assert host == expected  # exact, not approximate
    assert all(type(v) is float for v in host.values())


def test_filler_pass_adds_keys_with_zero_and_ignores_its_values():
    sums: dict = {}
    TrainingLoop._add_stats(sums, {"loss_sum": torch.tensor(float("nan")), "pairs": 2.0}, real=False)
    assert TrainingLoop._to_host(sums) == {"loss_sum": 0.0, "pairs": 0.0}
    TrainingLoop._add_stats(sums, {"loss_sum": torch.tensor(1.5), "pairs": 2.0}, real=True)
    assert TrainingLoop._to_host(sums) == {"loss_sum": 1.5, "pairs": 2.0}


def test_a_non_finite_real_value_stays_visible():
    sums: dict = {}
    TrainingLoop._add_stats(sums, {"loss_sum": torch.tensor(float("inf"))}, real=True)
    assert math.isinf(TrainingLoop._to_host(sums)["loss_sum"])
