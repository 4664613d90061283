"""Start-up behaviour: readiness while loading, the lowercasing warning, argument checks."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest

from workbench.serving.app import ServerState, build_app
from workbench.serving.args import parse_serve_args
from workbench.serving.runner import EncoderRunner, pick_dtype, tokenizer_is_cased
from workbench.tasks import Mode


def test_routes_answer_503_with_a_json_error_until_the_model_is_loaded(tiny_models):
    """The app before its lifespan has started (= model not loaded yet): health says not ready."""
    config = parse_serve_args(["--model_dir", tiny_models("token_classification")])
    app = build_app(ServerState(config))

    async def probe():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return (await client.get("/v2/health/live"), await client.get("/v2/health/ready"),
                    await client.get("/v1/models/model"),
                    await client.post("/v1/models/model:predict", json={"instances": ["a"]}))

    live, ready, model_ready, predict = asyncio.run(probe())
    assert live.status_code == 200
    assert ready.status_code == 503 and ready.json() == {"ready": False}
    assert model_ready.status_code == 503 and "not ready" in model_ready.json()["error"]
    assert predict.status_code == 503 and "not ready" in predict.json()["error"]


def test_lowercasing_a_cased_tokenizer_warns_at_start_up(tiny_models, caplog):
    runner = EncoderRunner(parse_serve_args(["--model_dir", tiny_models("token_classification", cased=True)]))
    with caplog.at_level(logging.WARNING, logger="workbench.serve"):
        runner.load()
    assert any("is cased but inputs are lowercased" in r.message for r in caplog.records)
    assert tokenizer_is_cased(runner.tokenizer) is False  # lowercased now, as KServe does


def test_no_warning_for_an_uncased_tokenizer(tiny_models, caplog):
    runner = EncoderRunner(parse_serve_args(["--model_dir", tiny_models("token_classification")]))
    with caplog.at_level(logging.WARNING, logger="workbench.serve"):
        runner.load()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_flags_map_to_modes_and_defaults():
    assert parse_serve_args([]).model_dir == "/mnt/models"
    assert parse_serve_args(["--return_probabilities"]).mode is Mode.PROBABILITIES
    for flag in ("--return_raw_logits", "--return_logits", "--disable_postprocess"):
        assert parse_serve_args([flag]).mode is Mode.LOGITS
    assert parse_serve_args(["--max_model_len", "64"]).max_length == 64
    assert parse_serve_args(["--disable_lower_case"]).lower_case is False


def test_probabilities_and_logits_are_mutually_exclusive():
    with pytest.raises(SystemExit):
        parse_serve_args(["--return_probabilities", "--return_raw_logits"])


def test_dtype_auto_is_fp32_on_any_cpu_native_takes_bf16_where_native_and_bf16_when_asked():
    import torch

    zen4 = {"avx2", "avx512f", "avx512_bf16"}
    amx = zen4 | {"amx_bf16", "amx_tile"}
    assert pick_dtype("auto", torch.device("cpu"), zen4, "AVX512") == torch.float32
    assert pick_dtype("auto", torch.device("cpu"), amx, "AVX512") == torch.float32  # KServe's answers
    assert pick_dtype("native", torch.device("cpu"), amx, "AVX512") == torch.bfloat16
    assert pick_dtype("native", torch.device("cpu"), {"avx2"}, "AVX2") == torch.float32
    assert pick_dtype("auto", torch.device("cuda")) == torch.float16
    assert pick_dtype("bfloat16", torch.device("cpu")) == torch.bfloat16


def test_a_missing_model_directory_is_a_clear_error(tmp_path, capsys):
    from workbench.serving.server import main

    assert main(["--model_dir", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_an_empty_model_directory_names_what_is_missing(tmp_path, capsys):
    from workbench.serving.server import main

    assert main(["--model_dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no config.json" in err and "weights" in err and "tokenizer" in err and "Should have" not in err
    assert len(err.strip().splitlines()) == 1


def test_a_complete_model_directory_has_no_problem(tiny_models):
    from workbench.serving.model_dir import model_dir_problem

    assert model_dir_problem(tiny_models("token_classification")) is None


def test_a_model_that_cannot_load_ends_the_server_with_its_reason(tmp_path):
    import subprocess
    import sys

    from workbench.testsupport.servers import free_port

    # Every file a model directory needs is there, but config.json says nothing loadable.
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"")
    (tmp_path / "vocab.txt").write_text("[PAD]\n[UNK]\n")
    result = subprocess.run([sys.executable, "-m", "workbench", "serve", "--model_dir", str(tmp_path),
                             "--http_port", str(free_port()), "--host", "127.0.0.1", "--disable_grpc"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "the model failed to load" in result.stderr


def test_the_start_up_log_says_which_dtype_and_how_many_threads(tiny_models, tmp_path):
    import re
    import subprocess
    import sys

    from workbench.testsupport.servers import free_port, wait_until_ready

    port = free_port()
    log_path = tmp_path / "server.log"
    env = dict(__import__("os").environ, PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1", OMP_NUM_THREADS="2")
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "workbench", "serve", "--model_dir",
                                    tiny_models("sequence_classification"), "--num_threads", "1",
                                    "--http_port", str(port), "--host", "127.0.0.1", "--disable_grpc"],
                                   stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            wait_until_ready(f"http://127.0.0.1:{port}", process, log_path, 120)
        finally:
            process.terminate()
            process.wait(timeout=30)
    text = log_path.read_text()
    # the flag wins over OMP_NUM_THREADS; torch with threads asked for: one worker
    assert "model workers: 1 x 1 intra-op thread(s) (--num_threads 1, one worker;" in text
    assert re.search(r"usable CPU\(s\): affinity \d+, cgroup quota", text)
    assert re.search(r"dtype (float32|bfloat16): --dtype auto on CPU", text) or \
        "dtype float16: --dtype auto on CUDA" in text
    assert "emulates" not in text  # auto never picks what the CPU emulates
