"""`workbench bench` end to end: real servers on free ports, spoken to over HTTP.

The small Starlette app in fake_server.py stands in where a failure must be forced (answers 500,
or 200 with a body that is not predictions); the well-behaved case also runs against the
project's own predictor serving a tiny model, when that server is available.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from workbench.bench.cli import main
from workbench.testsupport.servers import free_port, served, served_command

FAKE_SERVER = Path(__file__).with_name("fake_server.py")


def fake_server(mode: str, *extra: str):
    port = free_port()
    return served_command([sys.executable, str(FAKE_SERVER), "--port", str(port), "--mode", mode, *extra], port,
                          timeout=60)


def run_bench(url: str, tmp_path: Path, *extra: str, protocol: str = "v2") -> tuple[int, dict, Path]:
    json_path, plot_path = tmp_path / "report.json", tmp_path / "plot.png"
    code = main(["--endpoint", url, "--model-name", "model", "--protocol", protocol, "--concurrency", "1,4",
                 "--requests", "12", "--warmup", "2", "--no-progress", "--json", str(json_path),
                 "--plot", str(plot_path), *extra])
    return code, json.loads(json_path.read_text()), plot_path


def check_report_structure(report: dict, protocol: str, tokens: str = "words") -> None:
    assert report["protocol"] == protocol and report["model_name"] == "model"
    assert report["texts"]["source"] == "built-in sample" and report["texts"]["count"] > 0
    assert tokens in report["token_count"]
    assert [level["concurrency"] for level in report["levels"]] == [1, 4]
    for level in report["levels"]:
        assert level["requests"] == 12
        assert set(level) >= {"ok", "errors", "error_details", "error_count", "elapsed_s", "requests_per_s",
                              "texts_per_s", "tokens_per_s", "latency_ms", "client_cpu_s", "client_cpu_share"}
        # the load generator's own CPU, measured over the level: some, and at most every core of this machine
        assert 0 < level["client_cpu_share"] <= report["client_cores"]
        assert set(level["latency_ms"]) == {"p50", "p90", "p99", "mean", "max"}


@pytest.mark.parametrize("protocol", ["v1", "v2"])
def test_bench_against_a_healthy_server(tmp_path, capsys, protocol):
    with fake_server("ok") as url:
        code, report, plot = run_bench(url, tmp_path, "--batch", "3", protocol=protocol)
    assert code == 0
    check_report_structure(report, protocol)
    for level in report["levels"]:
        assert level["ok"] == 12 and level["errors"] == {}
        assert level["texts_per_s"] == pytest.approx(3 * level["requests_per_s"], rel=1e-3)
        assert level["latency_ms"]["p50"] <= level["latency_ms"]["p99"]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr().out
    assert "p99 ms" in printed and "tokens/s counts words" in printed and "client cpu" in printed


def test_server_answering_500_shows_up_as_errors(tmp_path, capsys):
    with fake_server("error") as url:
        code, report, plot = run_bench(url, tmp_path)
    assert code == 1
    for level in report["levels"]:
        assert level["ok"] == 0 and level["errors"] == {"HTTP 500": 12}
        assert level["requests_per_s"] == 0 and level["latency_ms"]["p50"] is None
    assert plot.exists()
    printed = capsys.readouterr().out
    assert "HTTP 500 x12" in printed
    assert "HTTP 500 (first at concurrency 1): " in printed and "this server always fails" in printed


def test_answers_that_are_not_predictions_are_errors(tmp_path):
    with fake_server("garbage") as url:
        code, report, _ = run_bench(url, tmp_path)
    assert code == 1
    assert report["levels"][0]["errors"] == {"invalid response": 12}


def test_host_header_reaches_the_server(tmp_path):
    with fake_server("ok", "--require-host", "ner.default.example.com") as url:
        code, report, _ = run_bench(url, tmp_path, "--host-header", "ner.default.example.com")
        assert code == 0 and report["levels"][0]["ok"] == 12
        code, report, _ = run_bench(url, tmp_path)
        assert code == 1 and report["levels"][0]["errors"] == {"HTTP 404": 12}


def test_unreachable_endpoint_counts_connection_errors(tmp_path):
    code, report, _ = run_bench(f"http://127.0.0.1:{free_port()}", tmp_path, "--timeout", "5")
    assert code == 1
    assert report["levels"][0]["errors"] == {"ConnectError": 12}


def test_duration_mode_and_bad_texts_file(tmp_path):
    with fake_server("ok") as url:
        code = main(["--endpoint", url, "--model-name", "m", "--concurrency", "2", "--duration", "0.5",
                     "--no-progress", "--json", str(tmp_path / "r.json")])
        assert code == 0
        report = json.loads((tmp_path / "r.json").read_text())
        assert report["duration_s"] == 0.5 and report["levels"][0]["ok"] > 0
        assert main(["--endpoint", url, "--model-name", "m", "--texts", str(tmp_path / "nope.txt")]) == 2


@pytest.mark.skipif(importlib.util.find_spec("workbench.serving.server") is None,
                    reason="the built-in predictor (workbench.serving.server) is not in this checkout yet")
@pytest.mark.parametrize("protocol", ["v1", "v2"])
def test_bench_against_our_predictor(tiny_models, tmp_path, protocol):
    model_dir = tiny_models("token_classification")
    with served(model_dir, model_name="model") as url:
        code, report, plot = run_bench(url, tmp_path, "--batch", "2", "--tokenizer", model_dir, protocol=protocol)
    assert code == 0, report["levels"]
    assert all(level["ok"] == 12 for level in report["levels"])
    assert "sub-word tokens" in report["token_count"]
    assert plot.exists()


def test_bench_openai_embeddings_against_our_predictor(tiny_models, tmp_path):
    """--protocol openai: POST /openai/v1/embeddings of a text_embedding server, every answer checked."""
    with served(tiny_models("text_embedding"), model_name="model") as url:
        code, report, _ = run_bench(url, tmp_path, protocol="openai")
    assert code == 0, report["levels"]
    check_report_structure(report, "openai")
    assert all(level["ok"] == 12 for level in report["levels"])


@pytest.mark.skipif(importlib.util.find_spec("kserve") is None, reason="the kserve package (test extra) is absent")
def test_bench_against_kserve_model_server(tiny_models, tmp_path):
    model_dir = tiny_models("token_classification")
    port = free_port()
    command = [sys.executable, "-m", "workbench.testsupport.kserve_modelserver", "--model_dir", model_dir,
               "--model_name", "model", "--http_port", str(port)]
    with served_command(command, port, timeout=120) as url:
        code, report, plot = run_bench(url, tmp_path, protocol="v1")
    assert code == 0, report["levels"]
    check_report_structure(report, "v1")
    assert all(level["ok"] == 12 for level in report["levels"])
