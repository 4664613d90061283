"""The batching policy is a pure function: budgets, sorting, padding to a multiple of 8."""

import itertools

from workbench.serving.batching import (balanced_row_tokens, pack_rows, padded_length, plan_batches, round_up,
                                        split_by_length)


def test_round_up_to_multiple_of_eight():
    assert [round_up(n, 8) for n in (1, 8, 9, 16, 17)] == [8, 8, 16, 16, 24]


def test_padded_length_never_exceeds_the_model_positions():
    assert padded_length(126, 8, cap=128) == 128
    assert padded_length(127, 8, cap=130) == 128
    assert padded_length(129, 8, cap=130) == 130  # capped, but never below the longest text
    assert padded_length(5, 8, cap=None) == 8


def test_every_text_is_planned_exactly_once():
    spans = [5, 40, 7, 100, 12, 3, 64, 9]
    batches = plan_batches(spans, max_batch_tokens=128, max_batch_size=3)
    assert sorted(i for b in batches for i in b) == list(range(len(spans)))


def test_batches_respect_size_and_token_budget():
    spans = [10] * 10 + [60] * 4
    batches = plan_batches(spans, max_batch_tokens=128, max_batch_size=4)
    for batch in batches:
        assert len(batch) <= 4
        cost = len(batch) * padded_length(max(spans[i] for i in batch))
        assert cost <= 128 or len(batch) == 1


def test_batches_group_similar_lengths():
    spans = [100, 3, 98, 4, 99, 5]
    batches = plan_batches(spans, max_batch_tokens=10_000, max_batch_size=3)
    assert [sorted(spans[i] for i in b) for b in batches] == [[3, 4, 5], [98, 99, 100]]


def test_a_text_longer_than_the_budget_gets_a_batch_of_its_own():
    batches = plan_batches([500, 10], max_batch_tokens=64, max_batch_size=8)
    assert sorted(batches) == [[0], [1]]


def test_batch_size_one_runs_every_text_alone():
    assert plan_batches([3, 3, 3], max_batch_tokens=10_000, max_batch_size=1) == [[0], [1], [2]]


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def split_cost(spans, groups, overhead):
    return sum(len(g) * padded_length(max(spans[i] for i in g)) + overhead for g in groups)


def test_split_by_length_places_every_text_once_sorted():
    spans = [40, 9, 17, 120, 9, 33, 64, 12]
    groups = split_by_length(spans, 16)
    flat = [i for g in groups for i in g]
    assert sorted(flat) == list(range(len(spans)))
    assert [spans[i] for i in flat] == sorted(spans)


def test_split_by_length_is_the_cheapest_contiguous_split():
    spans = [40, 9, 17, 120, 9, 33, 64, 12]
    order = sorted(range(len(spans)), key=lambda i: spans[i])
    best = min(split_cost(spans, [order[a:b] for a, b in zip((0,) + cuts, cuts + (len(order),))], 16)
               for k in range(len(order)) for cuts in itertools.combinations(range(1, len(order)), k))
    assert split_cost(spans, split_by_length(spans, 16), 16) == best


def test_split_by_length_without_overhead_keeps_one_batch():
    assert split_by_length([30, 8, 100], 0) == [[1, 0, 2]]
    assert split_by_length([], 16) == []


def test_split_by_length_separates_a_long_outlier():
    groups = split_by_length([10] * 31 + [120], 16)
    assert groups[-1] == [31] and len(groups[0]) == 31


def test_split_by_length_huge_overhead_keeps_one_batch():
    assert len(split_by_length([10, 20, 120, 7], 10**6)) == 1


def test_metrics_report_padding_efficiency(server, http):
    """/metrics says what share of the computed tokens were real: below 1 for a padded batch of texts of
    different lengths, and the counters add up to it."""
    import httpx

    url = server("token_classification", "--disable_packing")
    texts = ["Hello", "My name is Wolfgang and I live in Berlin and work for a company based in New York"]
    assert http.post(f"{url}/v1/models/model:predict", json={"instances": texts}).status_code == 200
    text = httpx.get(f"{url}/metrics").text
    real, computed = metric(text, "workbench_real_tokens_total"), metric(text, "workbench_computed_tokens_total")
    assert 0 < real < computed
    assert abs(metric(text, "workbench_padding_efficiency") - real / computed) < 1e-9


def _rows(places):
    return len({row for row, _ in places})


def test_balanced_rows_fill_evenly_with_no_more_rows():
    segments = [25] * 15  # 375 tokens: two rows either way
    capacity = balanced_row_tokens(segments, 256)
    assert _rows(pack_rows(segments, capacity)) == _rows(pack_rows(segments, 256)) == 2
    assert capacity == 200  # 8 segments of 25 in the fuller row; 256 would compute 2 x 256 for 375 tokens
    assert capacity % 8 == 0


def test_balanced_rows_keep_the_longest_segment_whole_and_never_pass_the_maximum():
    assert balanced_row_tokens([300, 10], 256) == 256  # a segment longer than a row: rows of the maximum
    assert balanced_row_tokens([100], 256) == 104  # one segment: its own length, rounded up to 8
    for segments in ([7, 9, 30, 31, 64, 3, 12], [1] * 40, [120, 120, 17], [250, 5, 5]):
        capacity = balanced_row_tokens(segments, 256)
        assert max(segments) <= capacity <= 256
        assert _rows(pack_rows(segments, capacity)) == _rows(pack_rows(segments, 256)), segments
