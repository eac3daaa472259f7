"""The relay's latency histogram."""

from sfu.latency import BUCKETS, LatencyHistogram


def test_observations_land_in_the_first_bucket_not_below_them():
    histogram = LatencyHistogram()
    histogram.observe(0.0003)
    assert histogram.counts[BUCKETS.index(0.0005)] == 1
    assert (histogram.count, histogram.sum) == (1, 0.0003)


def test_a_value_on_a_bucket_bound_counts_in_that_bucket():
    histogram = LatencyHistogram()
    histogram.observe(0.001)
    assert histogram.counts[BUCKETS.index(0.001)] == 1


def test_values_beyond_the_last_bound_go_to_infinity():
    histogram = LatencyHistogram()
    histogram.observe(3.0)
    assert histogram.counts[-1] == 1


def test_negative_delays_from_a_clock_step_count_as_zero():
    histogram = LatencyHistogram()
    histogram.observe(-0.5)
    assert histogram.counts[0] == 1 and histogram.sum == 0.0


def test_a_snapshot_is_a_copy_that_later_observations_leave_alone():
    histogram = LatencyHistogram()
    histogram.observe(0.0003)
    snapshot = histogram.snapshot()
    histogram.observe(3.0)
    assert snapshot.bounds == BUCKETS
    assert snapshot.counts[BUCKETS.index(0.0005)] == 1 and sum(snapshot.counts) == 1
    assert len(snapshot.counts) == len(BUCKETS) + 1  # the last one is +Inf
    assert (snapshot.count, snapshot.sum) == (1, 0.0003)
