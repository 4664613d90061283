"""`--backend onnxruntime`: the ORT server's V1/V2 answers equal the transformers reference (fp32), int8
agrees on most argmaxes and really is quantized, the export is cached and reused, and a missing extra
is one clear line.

One server per (task, mode), shared by the session; the export of each task's tiny model is done once
(the cache is shared by its servers, so the second mode's server already starts from the cache).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.serving.compare import as_json, close, flatten, parse_bytes_element, shape_of
from tests.serving.conftest import v1, v2
from tests.serving.reference import KServeReference

pytest.importorskip("onnxruntime", reason="the onnx extra (onnxruntime) is not installed")

from workbench.serving.args import parse_serve_args  # noqa: E402
from workbench.serving.onnx_backend import MISSING_EXTRA, OnnxEncoderRunner  # noqa: E402

TEXTS = {
    "token_classification": ["My name is Wolfgang and I live in Berlin", "My name is Lisa and I live in Paris",
                             "Hello", "EU rejects German call to boycott British lamb ."],
    "sequence_classification": ["Hello, my dog is cute", "I am feeling sad", "a much longer text about "
                                "the capital of France and the river that runs through the city of Paris"],
    "fill_mask": ["The capital of France is [MASK].", "The capital of [MASK] is paris."],
}
MODES = {"default": (), "logits": ("--return_raw_logits",)}
# fp32 ORT vs fp32 torch: the same arithmetic in another order (fused attention, GEMM blocking); measured
# max |diff| of logits on these tiny models about 1e-5.
TOLERANCE = {"default": 0.0, "logits": 1e-4}


@pytest.fixture(scope="session")
def onnx_cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("onnx-cache"))


@pytest.fixture(scope="session")
def ort_server(server, onnx_cache):
    def get(task: str, *flags: str) -> str:
        return server(task, "--backend", "onnxruntime", "--onnx_cache_dir", onnx_cache, *flags)

    return get


@pytest.fixture(scope="module")
def references(tiny_models):
    cache = {}

    def get(task):
        if task not in cache:
            cache[task] = KServeReference(tiny_models(task), task)
        return cache[task]

    return get


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("task", list(TEXTS))
def test_ort_v1_and_v2_equal_the_reference(ort_server, http, references, task, mode):
    url = ort_server(task, *MODES[mode])
    texts = TEXTS[task]
    expected = references(task).predict(texts, mode)
    got_v1 = v1(http, url, texts)
    assert close(got_v1, as_json(expected), TOLERANCE[mode]), f"{task}/{mode}: V1 {got_v1!r:.300}"
    (output,) = v2(http, url, texts)["outputs"]
    assert output["shape"] == shape_of(expected)
    data = output["data"]
    if mode != "default":
        data = [parse_bytes_element(e) for e in data]
    assert close(data, flatten(expected), TOLERANCE[mode]), f"{task}/{mode}: V2 {data!r:.300}"


def test_ort_batched_equals_alone(ort_server, http):
    """Texts of different lengths in one batch (padding, attention mask) answer as each alone."""
    url = ort_server("token_classification", "--return_raw_logits")
    texts = TEXTS["token_classification"]
    together = v1(http, url, texts)
    for text, row in zip(texts, together):
        (alone,) = v1(http, url, [text])
        assert close(row[:len(alone)], alone, 1e-4), text  # each token: {label id: logit}


def test_ort_two_workers_under_concurrency_answer_as_the_reference(ort_server, references):
    """ONNX Runtime's default on a CPU is one worker per usable CPU (its forward pass runs without the GIL):
    two workers running batches side by side give each request the reference's answer."""
    import asyncio

    from tests.serving.test_concurrency import fire, random_requests

    url = ort_server("token_classification", "--model_workers", "2", "--return_raw_logits")
    requests = random_requests(40, seed=3)
    answers = asyncio.run(fire(url, requests, "v1"))
    reference = references("token_classification")
    # 2e-4: over these 40 random requests ORT's fp32 logits differ from torch's by up to 1.04e-4 (a padding
    # position of a short text in a long request), with one worker as with two.
    for texts, answer in zip(requests, answers):
        assert close(answer, as_json(reference.predict(texts, "logits")), 2e-4), texts


def argmax(row) -> int:
    if isinstance(row, dict):  # served: {label id: logit}
        return int(max(row, key=row.get))
    return max(range(len(row)), key=row.__getitem__)


def test_int8_agrees_on_most_labels_and_is_quantized(ort_server, http, references, onnx_cache):
    """int8 changes logits, so agreement (not equality) with the fp32 reference; and the served file is
    the quantized one (a server that ignored --quantize would pass the agreement trivially)."""
    import onnx

    texts = TEXTS["token_classification"] + ["Peter visited the bank in London on Monday",
                                             "The minister said the government will report today"]
    url = ort_server("token_classification", "--quantize", "int8", "--return_raw_logits")
    logits, input_ids = references("token_classification").logits(texts)
    got = v1(http, url, texts)
    same = total = 0
    for row, (served, expected) in enumerate(zip(got, logits.tolist())):
        for position, (a, b) in enumerate(zip(served, expected)):
            if input_ids[row, position] != 0:  # real tokens only
                total += 1
                same += argmax(a) == argmax(b)
    print(f"\nint8 vs fp32 reference, tiny random model: {same}/{total} token argmaxes agree")
    assert same / total >= 0.8, f"int8 argmax agreement {same}/{total}"
    (quantized,) = list(Path(onnx_cache).rglob("model.int8.onnx"))
    ops = {node.op_type for node in onnx.load(str(quantized)).graph.node}
    assert {"DynamicQuantizeLinear", "MatMulInteger"} & ops, sorted(ops)
    assert "LayerNormalization" in ops or "SkipLayerNormalization" in ops or "ReduceMean" in ops  # stays float


def test_cache_is_reused_on_a_second_start(tiny_models, tmp_path):
    flags = ["--model_dir", tiny_models("sequence_classification"), "--backend", "onnxruntime",
             "--onnx_cache_dir", str(tmp_path)]
    first = OnnxEncoderRunner(parse_serve_args(flags))
    first.load()
    assert not first.from_cache and first.onnx_path.is_file()
    written = first.onnx_path.stat().st_mtime_ns
    second = OnnxEncoderRunner(parse_serve_args(flags))
    second.load()
    assert second.from_cache and second.onnx_path == first.onnx_path
    assert second.onnx_path.stat().st_mtime_ns == written
    other = OnnxEncoderRunner(parse_serve_args(["--model_dir", tiny_models("token_classification"),
                                                *flags[2:]]))
    other.load()
    assert not other.from_cache and other.onnx_path != first.onnx_path  # another model: another key
    assert [p.name for p in tmp_path.rglob("*.tmp")] == []


def test_missing_extra_is_one_clear_line(tiny_models, tmp_path):
    """Without onnxruntime (an import that fails, as when the extra is not installed) the server
    stops at once with the line naming the extra."""
    blocker = tmp_path / "onnxruntime"
    blocker.mkdir()
    (blocker / "__init__.py").write_text("raise ImportError('No module named onnxruntime')\n")
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(repo)]), "HF_HUB_OFFLINE": "1"}
    completed = subprocess.run([sys.executable, "-m", "workbench", "serve", "--backend", "onnxruntime",
                                "--model_dir", tiny_models("token_classification"), "--http_port", "0"],
                               capture_output=True, text=True, timeout=120,
                               env=env)
    assert completed.returncode != 0
    assert completed.stderr.strip().splitlines()[-1] == MISSING_EXTRA
    assert "workbench[onnx]" in MISSING_EXTRA


def test_quantize_needs_the_onnx_backend():
    with pytest.raises(SystemExit, match="--quantize int8 needs --backend onnxruntime"):
        parse_serve_args(["--model_dir", ".", "--quantize", "int8"])
