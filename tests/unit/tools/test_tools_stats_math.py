"""Length statistics: nearest-rank percentiles, the seq_length recommendation and the histogram, by hand."""
from __future__ import annotations

from tuneforge.data.stats import RowLength, histogram, percentile, recommend_seq_length, summarize


def test_percentile_is_nearest_rank():
    values = list(range(1, 11))  # 1..10
    assert percentile(values, 50) == 5  # ceil(0.5 * 10) = 5th value
    assert percentile(values, 90) == 9
    assert percentile(values, 95) == 10  # ceil(9.5) = 10th
    assert percentile([7], 99) == 7


def test_recommendation_covers_99_percent_rounded_to_64():
    lengths = [10] * 98 + [100, 200]  # 99 of 100 rows are <= 100 -> 128 covers 99%
    assert recommend_seq_length(lengths) == 128
    assert recommend_seq_length([10] * 99 + [1000]) == 64  # 64 is the floor
    assert recommend_seq_length([65] * 100) == 128  # 65 does not fit in 64
    assert recommend_seq_length([64] * 100) == 64
    # 98 short rows and 2 long ones out of 100: only 98% fit under 64, so the long ones decide.
    assert recommend_seq_length([10] * 98 + [300, 300]) == 320


def test_histogram_bins_are_equal_width_and_count_every_row():
    bins = histogram([0, 5, 7, 8, 15, 16, 90])  # max 90: width 8 gives 12 bins (0..95)
    assert bins[0] == (0, 7, 3) and bins[1] == (8, 15, 2) and bins[2] == (16, 23, 1)
    assert bins[-1] == (88, 95, 1) and len(bins) == 12
    assert sum(c for _, _, c in bins) == 7
    wide = histogram([10, 1000])  # width 128: bins 0..127 ... 896..1023
    assert wide[0] == (0, 127, 1) and wide[-1] == (896, 1023, 1)


def test_summarize_counts_truncation_and_lost_answers():
    rows = [RowLength(n, cut) for n, cut in [(30, False), (50, False), (70, False), (200, True)]]
    s = summarize(rows, seq_length=64)
    assert (s.rows, s.truncated, s.answer_cut) == (4, 2, 1)
    assert s.percentiles == {"p50": 50, "p90": 200, "p95": 200, "p99": 200, "max": 200}
    assert s.mean == 87.5
    assert s.recommended_seq_length == 256
