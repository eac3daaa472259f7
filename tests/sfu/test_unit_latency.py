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
    assert histogram.quantile(0.5) == float("inf")


def test_negative_delays_from_a_clock_step_count_as_zero():
    histogram = LatencyHistogram()
    histogram.observe(-0.5)
    assert histogram.counts[0] == 1 and histogram.sum == 0.0


def test_quantile_is_the_upper_bound_of_the_bucket_holding_it():
    histogram = LatencyHistogram()
    for _ in range(98):
        histogram.observe(0.0002)
    histogram.observe(0.003)
    histogram.observe(0.003)
    assert histogram.quantile(0.5) == 0.00025
    assert histogram.quantile(0.99) == 0.005


def test_an_empty_histogram_has_no_quantile():
    assert LatencyHistogram().quantile(0.99) is None
