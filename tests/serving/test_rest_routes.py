"""The REST route handlers called as plain functions over a loaded `ServerState` (no HTTP server), and
the one output declaration that model metadata and every V2 response are built from.

The HTTP behaviour of the same handlers is tested through the real server elsewhere (test_differential,
test_errors, the conformance suite); here each handler is a function a test calls.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from starlette.requests import Request

from workbench.serving import dataplane, inference, rest_routes
from workbench.serving.app import ServerState
from workbench.serving.args import parse_serve_args
from workbench.tasks import MODES


def http_request(method: str, path: str, name: str | None = None, body: dict | None = None) -> Request:
    payload = json.dumps(body).encode() if body is not None else b""
    scope = {"type": "http", "method": method, "path": path, "query_string": b"",
             "headers": [(b"content-length", str(len(payload)).encode())],
             "path_params": {"name": name} if name is not None else {}}

    async def receive():
        return {"type": "http.request", "body": payload, "more_body": False}

    return Request(scope, receive)


def v2_body(texts: list[str]) -> dict:
    return {"id": "r1", "inputs": [{"name": "text", "datatype": "BYTES", "shape": [len(texts)], "data": texts}]}


async def with_state(model_dir: str, flags: list[str], scenario):
    state = ServerState(parse_serve_args(["--model_dir", model_dir, *flags]))
    state.load_model()
    state.start_queue()
    try:
        return await scenario(state)
    finally:
        await state.queue.stop()


def run(model_dir: str, flags: list[str], scenario):
    return asyncio.run(with_state(model_dir, flags, scenario))


@pytest.mark.parametrize("mode", MODES)
def test_metadata_and_the_response_declare_the_same_outputs_in_every_mode(tiny_models, mode):
    flags = {"default": [], "probabilities": ["--return_probabilities"], "logits": ["--return_raw_logits"]}[mode]

    async def scenario(state):
        metadata = await rest_routes.v2_model_metadata(state, http_request("GET", "/v2/models/model", "model"))
        answer = await rest_routes.v2_infer(state, http_request("POST", "/v2/models/model/infer", "model",
                                                                 v2_body(["Lisa lives in Paris", "Hi"])))
        return json.loads(metadata.body), json.loads(answer.body)

    metadata, answer = run(tiny_models("token_classification"), flags, scenario)
    assert metadata["parameters"]["mode"] == mode
    for declared, sent in zip(metadata["outputs"], answer["outputs"], strict=True):
        assert (declared["name"], declared["datatype"]) == (sent["name"], sent["datatype"])
        assert len(declared["shape"]) == len(sent["shape"])
        assert all(d in (-1, s) for d, s in zip(declared["shape"], sent["shape"]))


def test_a_changed_declaration_changes_metadata_and_responses_together(tiny_models, monkeypatch):
    """One source of truth: declare output-0 under another name and datatype, and both follow."""
    original = dataplane.output_specs

    def renamed(*args, **kwargs):
        return [dataplane.OutputSpec("labels", "INT32", spec.shape) for spec in original(*args, **kwargs)]

    monkeypatch.setattr(dataplane, "output_specs", renamed)
    monkeypatch.setattr("workbench.serving.runner.output_specs", renamed)

    async def scenario(state):
        metadata = await rest_routes.v2_model_metadata(state, http_request("GET", "/v2/models/model", "model"))
        answer = await rest_routes.v2_infer(state, http_request("POST", "/v2/models/model/infer", "model",
                                                                 v2_body(["Lisa lives in Paris"])))
        return json.loads(metadata.body), json.loads(answer.body)

    metadata, answer = run(tiny_models("token_classification"), [], scenario)
    assert [(o["name"], o["datatype"]) for o in metadata["outputs"]] == [("labels", "INT32")]
    assert [(o["name"], o["datatype"]) for o in answer["outputs"]] == [("labels", "INT32")]


def test_rest_v2_encodes_the_data_planes_answer_unchanged(tiny_models):
    async def scenario(state):
        request = dataplane.InferRequest(texts=["Lisa lives in Paris"], id="r1")
        typed = await inference.infer(state, "model", request)
        answer = await rest_routes.v2_infer(state, http_request("POST", "/v2/models/model/infer", "model",
                                                                 v2_body(["Lisa lives in Paris"])))
        return typed, json.loads(answer.body)

    typed, answer = run(tiny_models("sequence_classification"), [], scenario)
    assert answer == typed.as_dict()


def test_dispatch_turns_an_unknown_model_into_a_404_json_error_and_counts_it(tiny_models):
    async def scenario(state):
        response = await rest_routes.dispatch(state, "v2_infer", rest_routes.v2_infer, False,
                                              http_request("POST", "/v2/models/nope/infer", "nope", v2_body(["a"])))
        return response, state.metrics.render().decode()

    response, metrics = run(tiny_models("sequence_classification"), [], scenario)
    assert response.status_code == 404
    assert "nope" in json.loads(response.body)["error"]
    assert 'workbench_requests_total{route="v2_infer",status="404"} 1.0' in metrics


def test_v1_predict_returns_per_text_predictions(tiny_models):
    async def scenario(state):
        response = await rest_routes.v1_predict(state, http_request("POST", "/v1/models/model:predict", "model",
                                                                     {"instances": ["a b", "c"]}))
        return json.loads(response.body)

    answer = run(tiny_models("sequence_classification"), [], scenario)
    assert len(answer["predictions"]) == 2 and all(isinstance(p, int) for p in answer["predictions"])
