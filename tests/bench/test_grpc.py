"""`workbench bench --protocol grpc`: V2 ModelInfer over gRPC, against our predictor with gRPC on.

One server (a tiny token-classification model, REST and gRPC on free ports) serves every test here.
Failures are real server answers: an unknown model is NOT_FOUND, a closed port UNAVAILABLE; each is
counted by status code with the server's message, and the run goes on. KServe's real runtime (which
answers INTERNAL to every text ModelInfer in 0.21) is opt-in: WORKBENCH_KSERVE_GRPC=1.
"""

from __future__ import annotations

import os

import pytest

from tests.bench.test_cli import check_report_structure, run_bench
from workbench.bench.cli import main
from workbench.bench.load import INVALID, grpc_address, grpc_answer_error
from workbench.bench.workload import build_payloads
from workbench.serving import grpc_service
from workbench.testsupport.servers import free_port, served


@pytest.fixture(scope="module")
def grpc_server(tiny_models):
    """(REST base URL, gRPC HOST:PORT) of our predictor serving a tiny NER model."""
    port = free_port()
    with served(tiny_models("token_classification"), "--grpc_port", str(port)) as url:
        yield url, f"127.0.0.1:{port}"


@pytest.mark.parametrize("raw", [False, True], ids=["typed", "raw"])
def test_payloads_are_what_our_grpc_codec_reads(raw):
    texts = ["Maria lives in Lisbon .", "Zürich ☃"]
    (payload, _) = build_payloads(texts, "grpc", batch=2, model_name="ner", raw=raw)
    request = grpc_service.messages().ModelInferRequest.FromString(payload.body)
    assert request.model_name == "ner" and bool(request.raw_input_contents) == raw
    assert grpc_service.parse_infer_request(request).texts == texts


def test_grpc_answers_are_checked():
    m = grpc_service.messages()
    good = m.ModelInferResponse(model_name="m")
    good.outputs.add(name="output-0", datatype="BYTES", shape=[1])
    assert grpc_answer_error(good.SerializeToString()) is None
    assert grpc_answer_error(m.ModelInferResponse(model_name="m").SerializeToString()) == INVALID  # no outputs
    assert grpc_answer_error(b"\xff\xff not a message") == INVALID


def test_grpc_endpoint_form():
    assert grpc_address("grpc://10.0.0.1:8081/") == "10.0.0.1:8081"
    assert grpc_address("[::1]:8081") == "[::1]:8081"
    for bad in ("http://127.0.0.1:8081", "127.0.0.1", "host:port"):
        with pytest.raises(ValueError, match="HOST:PORT"):
            grpc_address(bad)


@pytest.mark.parametrize("raw", [False, True], ids=["typed", "raw"])
def test_bench_grpc_against_our_predictor(grpc_server, tiny_models, tmp_path, capsys, raw):
    url, address = grpc_server
    extra = ["--batch", "2", "--metrics-url", url, "--tokenizer", tiny_models("token_classification")]
    code, report, plot = run_bench(address, tmp_path, *extra, *(["--raw"] if raw else []), protocol="grpc")
    assert code == 0, report["levels"]
    check_report_structure(report, "grpc", tokens="sub-word tokens")
    assert report["contents"] == ("raw" if raw else "typed") and report["url"] == address
    for level in report["levels"]:
        assert level["ok"] == 12 and level["errors"] == {}
        assert level["texts_per_s"] == pytest.approx(2 * level["requests_per_s"], rel=1e-3)
        assert 0 < level["padding_efficiency"] <= 1  # our /metrics, scraped at --metrics-url
        assert level["client_cpu_share"] > 0 and level["client_cpu_s"] > 0
    assert plot.exists()
    printed = capsys.readouterr().out
    assert f"protocol grpc ({report['contents']} contents)" in printed and "client cpu" in printed


def test_grpc_without_metrics_url_has_no_padding_figure(grpc_server, tmp_path):
    _, address = grpc_server
    code, report, _ = run_bench(address, tmp_path, protocol="grpc")
    assert code == 0 and report["metrics_url"] is None
    assert all(level["padding_efficiency"] is None for level in report["levels"])


def test_grpc_errors_are_counted_by_status_with_the_servers_message(grpc_server, tmp_path, capsys):
    url, address = grpc_server
    code, report, _ = run_bench(address, tmp_path, "--model-name", "no-such-model", protocol="grpc")
    assert code == 1
    for level in report["levels"]:
        assert level["ok"] == 0 and level["errors"] == {"gRPC NOT_FOUND": 12}
        assert "no-such-model" in level["error_details"]["gRPC NOT_FOUND"]
        assert level["requests_per_s"] == 0 and level["latency_ms"]["p50"] is None
    printed = capsys.readouterr()
    assert "gRPC NOT_FOUND x12" in printed.out
    assert "gRPC NOT_FOUND (first at concurrency 1): " in printed.out and "1 failed" not in printed.err
    # ... and the server still answers afterwards
    code, report, _ = run_bench(address, tmp_path, protocol="grpc")
    assert code == 0 and report["levels"][0]["ok"] == 12


def test_unreachable_grpc_port_counts_unavailable(tmp_path):
    code, report, _ = run_bench(f"127.0.0.1:{free_port()}", tmp_path, "--timeout", "5", protocol="grpc")
    assert code == 1
    assert report["levels"][0]["errors"] == {"gRPC UNAVAILABLE": 12}


def test_bad_grpc_options(tmp_path, capsys):
    assert main(["--endpoint", "http://127.0.0.1:1", "--model-name", "m", "--protocol", "v2", "--raw"]) == 2
    assert "--raw needs --protocol grpc" in capsys.readouterr().err
    assert main(["--endpoint", "http://127.0.0.1:8081", "--model-name", "m", "--protocol", "grpc"]) == 2
    assert "HOST:PORT" in capsys.readouterr().err


def test_bench_grpc_against_kserve_runtime(tmp_path):
    """WORKBENCH_KSERVE_GRPC=1: KServe 0.21's huggingfaceserver answers INTERNAL to every text ModelInfer over
    gRPC (see docs/conformance.md); bench counts them with the runtime's message and exits 1, no crash."""
    from workbench.testsupport.kserve_runtime import missing_reason, served_runtime_with_grpc
    from workbench.testsupport.tiny_models import build_tiny_model

    if os.environ.get("WORKBENCH_KSERVE_GRPC") != "1":
        pytest.skip("opt-in (a minute): WORKBENCH_KSERVE_GRPC=1")
    if missing_reason() is not None:
        pytest.skip(missing_reason())
    model_dir = build_tiny_model("sequence_classification", tmp_path / "model")
    with served_runtime_with_grpc(model_dir) as (url, address):
        code, report, _ = run_bench(address, tmp_path, protocol="grpc")
        rest_code, rest_report, _ = run_bench(url, tmp_path, protocol="v2")
    assert code == 1
    for level in report["levels"]:
        assert level["errors"] == {"gRPC INTERNAL": 12} and level["error_details"]["gRPC INTERNAL"]
    assert rest_code == 0 and all(level["ok"] == 12 for level in rest_report["levels"])
