"""gRPC (inference.GRPCInferenceService): the same answers as REST V2 from the same server process.

Real servers on free ports (never KServe's default 8081), driven by NVIDIA's tritonclient.grpc (raw
contents in, raw out) and by plain grpcio calls with our private-pool messages (typed contents); every
error is a gRPC status code and the server keeps serving after it. Not-ready and a full queue are shown
on an in-process gRPC server, where the model can be held still.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import struct
import threading
import time

import grpc
import httpx
import numpy as np
import pytest

from workbench.serving import dataplane, grpc_service, protocol_v2
from workbench.serving.errors import BadRequest
from workbench.tasks import LOGIT_TASKS
from workbench.testsupport.servers import free_port, served

tritongrpc = pytest.importorskip("tritonclient.grpc")

M = grpc_service.messages()
# Ordered so that the last server of the task x mode test (token classification, default) is the one
# the later tests use: one server runs at a time, and each start costs seconds.
TEXTS = {
    "text_embedding": ["My name is Wolfgang and I live in Berlin", "Hello"],  # one mode: the vectors
    "fill_mask": ["The capital of France is [MASK].", "The capital of [MASK] is paris."],
    "sequence_classification": ["Hello, my dog is cute", "I did not like this film at all"],
    "token_classification": ["My name is Wolfgang and I live in Berlin", "Lisa lives in Paris"],
}
MODES = {"probabilities": ("--return_probabilities",), "logits": ("--return_raw_logits",), "default": ()}
LIMIT = 65536  # every server here: --grpc_max_receive_message_length


# --- servers and clients --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def grpc_server(tiny_models):
    """grpc_server(task, *flags) -> (REST base URL, gRPC address). One server runs at a time."""
    stack = contextlib.ExitStack()
    current: dict = {}

    def get(task: str, *flags: str):
        key = (task, flags)
        if key not in current:
            stack.close()
            current.clear()
            port = free_port()
            url = stack.enter_context(served(tiny_models(task), *flags, "--grpc_port", str(port),
                                             "--grpc_max_receive_message_length", str(LIMIT)))
            current[key] = (url, f"127.0.0.1:{port}")
        return current[key]

    with stack:
        yield get


def rpc(address: str, name: str, request, timeout: float = 60.0):
    """One plain grpcio call with our messages."""
    with grpc.insecure_channel(address) as channel:
        call = channel.unary_unary(f"/{grpc_service.SERVICE}/{name}", request_serializer=type(request).SerializeToString,
                                   response_deserializer=getattr(M, f"{name}Response").FromString)
        return call(request, timeout=timeout)


def typed_request(texts, model="model", shape=None, **fields):
    request = M.ModelInferRequest(model_name=model, **fields)
    tensor = request.inputs.add(name="text", datatype="BYTES", shape=[len(texts)] if shape is None else shape)
    tensor.contents.bytes_contents.extend(t.encode() for t in texts)
    return request


def raw_request(texts, model="model", **fields):
    request = M.ModelInferRequest(model_name=model, **fields)
    request.inputs.add(name="text", datatype="BYTES", shape=[len(texts)])
    request.raw_input_contents.append(b"".join(struct.pack("<I", len(b)) + b for b in (t.encode() for t in texts)))
    return request


def rest_v2(url: str, texts, **extra) -> dict:
    body = {"inputs": [{"name": "text", "shape": [len(texts)], "datatype": "BYTES", "data": texts}], **extra}
    response = httpx.post(f"{url}/v2/models/model/infer", json=body, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def typed_values(tensor) -> list:
    contents = tensor.contents
    if tensor.datatype == "BYTES":
        return [b.decode("utf-8") for b in contents.bytes_contents]
    return list(getattr(contents, grpc_service.CONTENTS_FIELD[tensor.datatype]))


def raw_values(datatype: str, raw: bytes) -> list:
    if datatype == "BYTES":
        values, offset = [], 0
        while offset < len(raw):
            (length,) = struct.unpack_from("<I", raw, offset)
            values.append(raw[offset + 4:offset + 4 + length].decode("utf-8"))
            offset += 4 + length
        return values
    return np.frombuffer(raw, dtype=protocol_v2.RAW_DTYPE[datatype]).tolist()


def as_rest(response) -> list[dict]:
    """A ModelInferResponse's outputs as REST V2 tensors (name, datatype, shape, flat data)."""
    raw = list(response.raw_output_contents)
    return [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape),
             "data": raw_values(t.datatype, raw[i]) if raw else typed_values(t)}
            for i, t in enumerate(response.outputs)]


def rest_outputs(answer: dict) -> list[dict]:
    return [{k: o[k] for k in ("name", "datatype", "shape", "data")} for o in answer["outputs"]]


def triton_outputs(result, names) -> list[dict]:
    outputs = []
    for name in names:
        tensor = result.get_output(name)
        array = result.as_numpy(name)
        data = array.reshape(-1).tolist()
        if tensor.datatype == "BYTES":
            data = [item.decode("utf-8") for item in data]
        outputs.append({"name": name, "datatype": tensor.datatype, "shape": list(tensor.shape), "data": data})
        assert list(array.shape) == list(tensor.shape)
    return outputs


# --- every task and mode: gRPC equals REST V2 -------------------------------------------------------

@pytest.mark.parametrize(("task", "mode"), [(task, mode) for mode in MODES for task in TEXTS
                                             if task in LOGIT_TASKS or mode == "default"])
def test_grpc_answers_equal_rest_v2(grpc_server, task, mode):
    url, address = grpc_server(task, *MODES[mode])
    texts = TEXTS[task]
    expected = rest_outputs(rest_v2(url, texts))

    client = tritongrpc.InferenceServerClient(address)
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("model")
    metadata = client.get_model_metadata("model", as_json=True)
    rest_metadata = httpx.get(f"{url}/v2/models/model").json()
    assert metadata["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": ["-1"]}]
    assert [(o["name"], o["datatype"], [int(d) for d in o["shape"]]) for o in metadata["outputs"]] == \
        [(o["name"], o["datatype"], o["shape"]) for o in rest_metadata["outputs"]]

    tensor = tritongrpc.InferInput("text", [len(texts)], "BYTES")
    tensor.set_data_from_numpy(np.array(texts, dtype=np.object_))
    result = client.infer("model", [tensor], request_id=f"triton-{task}-{mode}")
    assert result.get_response().id == f"triton-{task}-{mode}"
    assert triton_outputs(result, [o["name"] for o in expected]) == expected

    typed = rpc(address, "ModelInfer", typed_request(texts, id="typed-1"))
    assert typed.id == "typed-1" and typed.model_name == "model" and not typed.raw_output_contents
    assert as_rest(typed) == expected

    raw = rpc(address, "ModelInfer", raw_request(texts))
    assert len(raw.raw_output_contents) == len(expected)
    assert all(not t.contents.ListFields() for t in raw.outputs)
    assert as_rest(raw) == expected


def test_entities_through_request_parameters_equal_rest_v2(grpc_server):
    url, address = grpc_server("token_classification")
    texts = TEXTS["token_classification"]
    answer = rest_v2(url, texts, parameters={"aggregation_strategy": "simple"})
    request = typed_request(texts)
    request.parameters["aggregation_strategy"].string_param = "simple"
    response = rpc(address, "ModelInfer", request)
    assert as_rest(response) == rest_outputs(answer)
    assert grpc_service.parameters_to_dict(response.outputs[0].parameters) == answer["outputs"][0]["parameters"]
    assert grpc_service.parameters_to_dict(response.parameters) == answer["parameters"]
    # ignore_labels, a list in JSON, travels as a JSON string parameter
    answer = rest_v2(url, texts, parameters={"aggregation_strategy": "first", "ignore_labels": []})
    request = typed_request(texts)
    request.parameters["aggregation_strategy"].string_param = "first"
    request.parameters["ignore_labels"].string_param = "[]"
    assert as_rest(rpc(address, "ModelInfer", request)) == rest_outputs(answer)
    request.parameters["ignore_labels"].string_param = "O"
    with pytest.raises(grpc.RpcError) as caught:
        rpc(address, "ModelInfer", request)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "ignore_labels" in caught.value.details()


def batches(url: str) -> float:
    metrics = httpx.get(f"{url}/metrics").text
    return float(re.search(r"^workbench_batch_texts_count (\S+)$", metrics, re.M).group(1))


def test_health_metadata_and_one_process_with_rest(grpc_server):
    url, address = grpc_server("token_classification")
    assert rpc(address, "ServerLive", M.ServerLiveRequest()).live
    assert rpc(address, "ServerReady", M.ServerReadyRequest()).ready
    assert rpc(address, "ModelReady", M.ModelReadyRequest(name="model")).ready
    metadata = rpc(address, "ServerMetadata", M.ServerMetadataRequest())
    assert metadata.name == "workbench" and metadata.version
    # gRPC requests go through the REST server's own batching queue: its /metrics counts them.
    before = batches(url)
    rpc(address, "ModelInfer", typed_request(["counted once"]))
    assert batches(url) == before + 1
    assert re.search(r'workbench_requests_total\{route="grpc_ModelInfer",status="OK"\} [1-9]', httpx.get(f"{url}/metrics").text)


# --- errors: status codes, and the server keeps serving ----------------------------------------------

def bad_requests():
    wrong_datatype = typed_request(["a"])
    wrong_datatype.inputs[0].datatype = "INT64"
    both = raw_request(["a"])
    both.inputs[0].contents.bytes_contents.append(b"a")
    too_few = M.ModelInferRequest(model_name="model")
    for name in ("text", "other"):
        too_few.inputs.add(name=name, datatype="BYTES", shape=[1])
    too_few.raw_input_contents.append(struct.pack("<I", 1) + b"a")
    truncated = raw_request(["a"])
    truncated.raw_input_contents[0] = struct.pack("<I", 9) + b"a"
    int_contents = typed_request(["a"])
    int_contents.inputs[0].contents.int64_contents.append(1)
    unknown_output = typed_request(["a"])
    unknown_output.outputs.add(name="nope")
    return {
        "wrong datatype": (wrong_datatype, "datatype 'BYTES'"),
        "shape and data disagree": (typed_request(["a", "b"], shape=[3]), r"3 elements\) but carries 2"),
        "contents and raw": (both, "contents or raw_input_contents"),
        "too few raw buffers": (too_few, "1 raw_input_contents buffer"),
        "truncated raw element": (truncated, "runs past the end"),
        "int64 contents for BYTES": (int_contents, "int64_contents"),
        "no input": (M.ModelInferRequest(model_name="model"), "non-empty"),
        "empty batch": (typed_request([]), "empty"),
        "unknown output": (unknown_output, "unknown output"),
        "not UTF-8": (M.ModelInferRequest(model_name="model", inputs=[M.ModelInferRequest.InferInputTensor(
            name="text", datatype="BYTES", shape=[1], contents=M.InferTensorContents(bytes_contents=[b"\xff"]))]),
            "UTF-8"),
    }


def still_serving(address: str) -> None:
    assert rpc(address, "ServerLive", M.ServerLiveRequest()).live
    assert rpc(address, "ModelInfer", typed_request(["still here"])).outputs[0].name == "output-0"


@pytest.mark.parametrize("case", list(bad_requests()))
def test_bad_requests_are_invalid_argument(grpc_server, case):
    _, address = grpc_server("token_classification")
    request, words = bad_requests()[case]
    with pytest.raises(grpc.RpcError) as caught:
        rpc(address, "ModelInfer", request)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    assert re.search(words, caught.value.details()), caught.value.details()
    still_serving(address)


@pytest.mark.parametrize("name, request_", [
    ("ModelInfer", typed_request(["a"], model="nope")),
    ("ModelMetadata", M.ModelMetadataRequest(name="nope")),
    ("ModelReady", M.ModelReadyRequest(name="nope")),
])
def test_unknown_model_is_not_found(grpc_server, name, request_):
    _, address = grpc_server("token_classification")
    with pytest.raises(grpc.RpcError) as caught:
        rpc(address, name, request_)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert "nope" in caught.value.details() and "model" in caught.value.details()
    still_serving(address)


def test_a_message_over_the_limit_is_resource_exhausted(grpc_server):
    _, address = grpc_server("token_classification")
    with pytest.raises(grpc.RpcError) as caught:
        rpc(address, "ModelInfer", typed_request(["word " * (LIMIT // 5 + 1)]))
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert str(LIMIT) in caught.value.details()
    still_serving(address)


def test_tritonclient_sees_the_status_codes(grpc_server):
    from tritonclient.utils import InferenceServerException

    _, address = grpc_server("token_classification")
    client = tritongrpc.InferenceServerClient(address)
    tensor = tritongrpc.InferInput("text", [2], "BYTES")
    tensor.set_data_from_numpy(np.array(["a", "b"], dtype=np.object_))
    with pytest.raises(InferenceServerException) as caught:
        client.infer("nope", [tensor])
    assert caught.value.status() == "StatusCode.NOT_FOUND"
    assert client.infer("model", [tensor]).as_numpy("output-0").shape[0] == 2


def test_offsets_output_equals_rest_v2(grpc_server):
    url, address = grpc_server("token_classification", "--return_offsets_mapping")
    texts = TEXTS["token_classification"]
    expected = rest_outputs(rest_v2(url, texts))
    assert [o["name"] for o in expected] == ["output-0", "offset_mapping"]
    assert as_rest(rpc(address, "ModelInfer", typed_request(texts))) == expected
    assert as_rest(rpc(address, "ModelInfer", raw_request(texts))) == expected
    client = tritongrpc.InferenceServerClient(address)
    tensor = tritongrpc.InferInput("text", [len(texts)], "BYTES")
    tensor.set_data_from_numpy(np.array(texts, dtype=np.object_))
    assert triton_outputs(client.infer("model", [tensor]), ["output-0", "offset_mapping"]) == expected
    # only the outputs asked for
    request = typed_request(texts)
    request.outputs.add(name="offset_mapping")
    assert as_rest(rpc(address, "ModelInfer", request)) == expected[1:]


# --- in process: not ready, and a full queue ------------------------------------------------------------

@contextlib.contextmanager
def in_process(state, *, start_queue: bool):
    """gRPC for `state` on an event loop of its own thread; yields the address."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="grpc-test-loop", daemon=True)
    thread.start()

    def run(coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(60)

    async def start():
        if start_queue:
            state.start_queue()
        return await grpc_service.start_server(state, host="127.0.0.1", port=0)

    server = run(start())
    try:
        yield f"127.0.0.1:{server.bound_port}"
    finally:
        run(server.stop(None))
        if state.queue is not None:
            run(state.queue.stop())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def test_not_ready_is_unavailable_and_readiness_says_false(tiny_models):
    from workbench.serving.app import ServerState
    from workbench.serving.args import parse_serve_args

    state = ServerState(parse_serve_args(["--model_dir", tiny_models("token_classification")]))
    with in_process(state, start_queue=False) as address:
        assert rpc(address, "ServerLive", M.ServerLiveRequest()).live
        assert not rpc(address, "ServerReady", M.ServerReadyRequest()).ready
        assert not rpc(address, "ModelReady", M.ModelReadyRequest(name="model")).ready
        for name, request in [("ModelInfer", typed_request(["a"])), ("ModelMetadata", M.ModelMetadataRequest(name="model"))]:
            with pytest.raises(grpc.RpcError) as caught:
                rpc(address, name, request)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "not ready" in caught.value.details()
        assert rpc(address, "ServerLive", M.ServerLiveRequest()).live


def test_a_full_queue_is_resource_exhausted_then_serves_again(tiny_models):
    from workbench.serving.app import ServerState
    from workbench.serving.args import parse_serve_args

    state = ServerState(parse_serve_args(["--model_dir", tiny_models("sequence_classification"),
                                          "--max_queue_size", "2"]))
    state.load_model()
    gate = threading.Event()
    forward = state.runner.forward

    def held_forward(batch):
        gate.wait(30)
        return forward(batch)

    state.runner.forward = held_forward
    with in_process(state, start_queue=True) as address, grpc.insecure_channel(address) as channel:
        infer = channel.unary_unary(f"/{grpc_service.SERVICE}/ModelInfer",
                                    request_serializer=M.ModelInferRequest.SerializeToString,
                                    response_deserializer=M.ModelInferResponse.FromString)
        first = infer.future(typed_request(["one", "two"]), timeout=60)
        deadline = time.monotonic() + 30
        while state.queue.depth < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(grpc.RpcError) as caught:
            infer(typed_request(["three"]), timeout=60)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "capacity" in caught.value.details()
        gate.set()
        assert list(first.result().outputs[0].shape) == [2]
        assert list(infer(typed_request(["three"]), timeout=60).outputs[0].shape) == [1]


# --- the codec alone (pure) -----------------------------------------------------------------------------

def test_parse_reads_typed_and_raw_texts_alike():
    typed = grpc_service.parse_infer_request(typed_request(["a", "bé"], id="x"))
    raw = grpc_service.parse_infer_request(raw_request(["a", "bé"], id="x"))
    assert typed.texts == raw.texts == ["a", "bé"] and typed.id == raw.id == "x"
    assert not typed.raw and raw.raw
    assert len(grpc_service.parse_infer_request(typed_request(["a"])).id) == 36  # generated, as REST does


def test_parse_keeps_parameters_and_requested_outputs():
    request = typed_request(["a"])
    request.parameters["aggregation_strategy"].string_param = "first"
    request.parameters["stride"].int64_param = 4
    request.parameters["flag"].bool_param = True
    request.outputs.add(name="output-0")
    parsed = grpc_service.parse_infer_request(request)
    assert parsed.parameters == {"aggregation_strategy": "first", "stride": 4, "flag": True}
    assert parsed.requested_outputs == ["output-0"]


@pytest.mark.parametrize("case", [case for case in bad_requests() if case != "unknown output"])  # outputs: later
def test_parse_refuses_what_the_server_refuses(case):
    request, words = bad_requests()[case]
    with pytest.raises(BadRequest, match=words):
        grpc_service.parse_infer_request(request)


def test_encode_typed_and_raw():
    response = dataplane.InferResponse("model", "id-1", [
        dataplane.OutputTensor("output-0", "INT64", [1, 1, 3], [0, 5, -1]),
        dataplane.OutputTensor("labels", "BYTES", [2], ["{0: 0.5}", "é"], {"content_type": "text"}),
        dataplane.OutputTensor("scores", "FP32", [2], [0.5, 1.25]),
    ], {"truncated": False, "count": 2})
    typed = grpc_service.encode_infer_response(response)
    assert typed.model_name == "model" and typed.id == "id-1"
    assert list(typed.outputs[0].contents.int64_contents) == [0, 5, -1]
    assert list(typed.outputs[1].contents.bytes_contents) == [b"{0: 0.5}", "é".encode()]
    assert list(typed.outputs[2].contents.fp32_contents) == [0.5, 1.25]
    assert grpc_service.parameters_to_dict(typed.parameters) == {"truncated": False, "count": 2}
    assert grpc_service.parameters_to_dict(typed.outputs[1].parameters) == {"content_type": "text"}
    raw = grpc_service.encode_infer_response(response, raw=True)
    assert raw.raw_output_contents[0] == struct.pack("<3q", 0, 5, -1)
    assert raw.raw_output_contents[1] == struct.pack("<I", 8) + b"{0: 0.5}" + struct.pack("<I", 2) + "é".encode()
    assert raw.raw_output_contents[2] == struct.pack("<2f", 0.5, 1.25)
    assert all(not t.contents.ListFields() for t in raw.outputs)
    assert [list(t.shape) for t in raw.outputs] == [[1, 1, 3], [2], [2]]


def test_messages_come_from_a_private_pool_beside_tritonclient():
    from google.protobuf import descriptor_pool
    from tritonclient.grpc import service_pb2

    assert M.ModelInferRequest.DESCRIPTOR.file.pool is not descriptor_pool.Default()
    ours = typed_request(["a"], id="7")
    theirs = service_pb2.ModelInferRequest.FromString(ours.SerializeToString())
    assert theirs.id == "7" and list(theirs.inputs[0].contents.bytes_contents) == [b"a"]


# --- flags and start-up --------------------------------------------------------------------------------

@pytest.mark.parametrize("flags, enabled, port", [
    ([], True, 8081),
    (["--grpc_port", "9001"], True, 9001),
    (["--grpc_port", "0"], False, 0),
    (["--disable_grpc"], False, 8081),
    (["--enable_grpc", "false"], False, 8081),
    (["--enable_grpc", "True"], True, 8081),
])
def test_grpc_flags(flags, enabled, port):
    from workbench.serving.args import parse_serve_args

    config = parse_serve_args(["--model_dir", "/tmp/m", *flags])
    assert (config.enable_grpc, config.grpc_port) == (enabled, port)


def test_the_receive_limit_defaults_to_the_rest_body_limit():
    from types import SimpleNamespace

    from workbench.serving.args import parse_serve_args

    config = parse_serve_args(["--model_dir", "/tmp/m", "--max_request_bytes", "1000"])
    assert grpc_service.receive_limit(SimpleNamespace(config=config)) == 1000
    config = config.replace(grpc_max_receive_message_length=50)
    assert grpc_service.receive_limit(SimpleNamespace(config=config)) == 50


def test_a_grpc_port_in_use_ends_the_server_with_the_reason(tiny_models):
    import socket
    import subprocess
    import sys

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "workbench", "serve", "--model_dir",
                                 tiny_models("token_classification"), "--http_port", str(free_port()),
                                 "--host", "127.0.0.1", "--grpc_port", str(port)],
                                capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert f"cannot serve gRPC on 127.0.0.1:{port}" in result.stderr and "--disable_grpc" in result.stderr
