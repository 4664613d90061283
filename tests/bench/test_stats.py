"""Pure figures: percentiles, rates, per-level summaries."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.bench.stats import RequestRecord, error_counts, percentile, rate, summarize_level


@pytest.mark.parametrize("q", [0, 10, 50, 90, 99, 100])
def test_percentile_matches_numpy_linear(q):
    values = [5.0, 1.0, 3.0, 9.0, 7.0, 2.5, 8.25]
    assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_percentile_edges():
    assert percentile([], 50) is None
    assert percentile([4.0], 99) == 4.0
    assert percentile([1.0, 2.0], 50) == 1.5
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_rate():
    assert rate(100, 4.0) == 25.0
    assert rate(5, 0.0) == 0.0


def test_summary_counts_only_successes_in_throughput_and_latency():
    records = [RequestRecord(0.010, texts=2, tokens=20)] * 3 + [
        RequestRecord(0.001, texts=2, tokens=20, error="HTTP 500"),
        RequestRecord(0.002, texts=2, tokens=20, error="HTTP 500"),
        RequestRecord(0.003, texts=2, tokens=20, error="ConnectError"),
    ]
    level = summarize_level(8, records, elapsed_s=0.5)
    assert level["concurrency"] == 8
    assert level["requests"] == 6 and level["ok"] == 3 and level["error_count"] == 3
    assert level["errors"] == {"HTTP 500": 2, "ConnectError": 1}
    assert level["requests_per_s"] == 6.0
    assert level["texts_per_s"] == 12.0
    assert level["tokens_per_s"] == 120.0
    assert level["latency_ms"]["p50"] == pytest.approx(10.0)
    assert level["latency_ms"]["p99"] == pytest.approx(10.0)


def test_summary_of_all_failures_has_no_latency():
    level = summarize_level(1, [RequestRecord(0.001, 1, 5, error="HTTP 503")], elapsed_s=1.0)
    assert level["ok"] == 0 and level["requests_per_s"] == 0.0
    assert level["latency_ms"] == {"p50": None, "p90": None, "p99": None, "mean": None, "max": None}


def test_error_counts_most_frequent_first():
    records = [RequestRecord(0.1, 1, 1, error=e) for e in ["a", "b", "b", None]]
    assert list(error_counts(records).items()) == [("b", 2), ("a", 1)]


def test_client_cpu_share_and_first_error_details():
    from workbench.bench.stats import cpu_share

    assert cpu_share(0.25, 0.5) == 0.5 and cpu_share(None, 1.0) is None and cpu_share(1.0, 0.0) is None
    records = [RequestRecord(0.1, 1, 1, error="gRPC INTERNAL", detail="first"),
               RequestRecord(0.1, 1, 1, error="gRPC INTERNAL", detail="second"),
               RequestRecord(0.1, 1, 1, error="ConnectError"), RequestRecord(0.1, 1, 1)]
    level = summarize_level(4, records, elapsed_s=2.0, client_cpu_s=0.5)
    assert level["error_details"] == {"gRPC INTERNAL": "first"}  # categories without a detail left out
    assert (level["client_cpu_s"], level["client_cpu_share"]) == (0.5, 0.25)
    assert summarize_level(4, records, elapsed_s=2.0)["client_cpu_share"] is None
