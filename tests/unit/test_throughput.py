"""tokens/s is measured over the training steps' own time: an evaluation or a checkpoint between two log lines
does not change it (the console's throughput chart spiked and sagged around epoch ends and evaluations)."""
import time

from tuneforge.monitor import Throughput


def test_rate_counts_only_the_time_spent_in_steps():
    t = Throughput()
    t.add(300)
    t.spent(0.5)
    time.sleep(0.2)  # an evaluation between two log lines
    t.add(100)
    t.spent(0.5)
    assert t.read() == 400 / 1.0
    t.add(50)
    t.spent(0.25)
    assert t.read() == 200.0  # the window restarts at each read


def test_without_step_times_the_wall_time_is_used():
    t = Throughput()
    t.add(10)
    time.sleep(0.05)
    rate = t.read()
    assert 0 < rate <= 10 / 0.05
