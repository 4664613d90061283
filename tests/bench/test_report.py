"""The printed table, JSON and PNG from a hand-made report."""

from __future__ import annotations

import json

from workbench.bench.report import format_report, write_json, write_plot
from workbench.bench.stats import RequestRecord, summarize_level


def make_report() -> dict:
    good = summarize_level(1, [RequestRecord(0.02, 1, 12)] * 4, elapsed_s=0.1)
    failing = summarize_level(8, [RequestRecord(0.01, 1, 12, error="HTTP 503")] * 3, elapsed_s=0.1)
    return {"endpoint": "http://x", "model_name": "m", "protocol": "v1", "batch": 1, "requests": 4,
            "duration_s": None, "warmup": 0, "texts": {"source": "built-in sample", "count": 32},
            "token_count": "words and punctuation (counted client side)", "load_average": [0.5, 0.4, 0.3],
            "levels": [good, failing]}


def test_table_shows_each_level_and_errors_by_cause():
    text = format_report(make_report())
    lines = text.splitlines()
    assert "protocol v1" in lines[0] and "load average at start: 0.50 0.40 0.30" in text
    table = text.split("\n\n")[1].splitlines()
    row_1 = next(line for line in table if line.split()[:1] == ["1"])
    assert "40.0" in row_1 and "20.0" in row_1 and "4/4" in row_1
    row_8 = next(line for line in table if line.split()[:1] == ["8"])
    assert "HTTP 503 x3" in row_8 and "0/3" in row_8 and " - " in row_8


def test_json_and_plot_written(tmp_path):
    report = make_report()
    assert json.loads(write_json(report, tmp_path / "a" / "r.json").read_text()) == report
    plot = write_plot(report, tmp_path / "b" / "p.png")  # a level without latency must not break the plot
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_padding_efficiency_comes_from_the_servers_token_counters():
    from workbench.bench.measure import padding_efficiency, token_totals

    text = "# HELP x\nworkbench_real_tokens_total 300.0\nworkbench_computed_tokens_total 400.0\nother 1\n"
    assert token_totals(text) == (300.0, 400.0)
    assert token_totals("kserve_metric 1\n") is None
    assert padding_efficiency((100.0, 100.0), (300.0, 400.0)) == round(200 / 300, 4)
    assert padding_efficiency(None, (1.0, 2.0)) is None and padding_efficiency((1.0, 2.0), (1.0, 2.0)) is None


def test_client_cpu_column_error_messages_and_busy_client_warning():
    from workbench.bench.report import format_notes

    report = make_report()
    report["client_cores"] = 2
    report["levels"][0].update(client_cpu_s=0.03, client_cpu_share=0.3)
    report["levels"][1].update(client_cpu_s=0.09, client_cpu_share=0.9,
                               error_details={"HTTP 503": '{"error": "queue full"}'})
    table = format_report(report).split("\n\n")[1].splitlines()
    assert "client cpu" in table[0]
    row_1 = next(line for line in table if line.split()[:1] == ["1"])
    assert " 30% " in row_1
    notes = format_notes(report)
    assert 'HTTP 503 (first at concurrency 8): {"error": "queue full"}' in notes
    assert "at concurrency 8 on a 2-core machine" in notes and "concurrency 1," not in notes
    report["levels"][1]["client_cpu_share"] = 0.5
    assert "warning" not in format_notes(report)
