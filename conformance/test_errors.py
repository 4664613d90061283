"""Errors: bad requests get a 4xx with {"error": "..."} and leave the endpoint healthy."""

from __future__ import annotations

from conformance import semantics
from conformance.checks import clause, expect_client_error, expect_still_healthy, json_body, level, protocol
from conformance.target import predict_v1

JSON = {"Content-Type": "application/json"}


@level("protocol")
@protocol("v2")
@clause("OIP-REST §Inference Response JSON Error Object: a failed request -> HTTP error status (typically 400) "
        "and {\"error\": str}; here: malformed JSON")
def test_v2_malformed_json_is_400_with_error(client, target, profile):
    """A V2 body that is not JSON gets 400 {"error"}."""
    response = client.post(target.v2_infer_path, content=b'{"inputs": [{"name": "text", ', headers=JSON)
    expect_client_error(response, profile=profile, divergence="v2-malformed-json", what="malformed V2 JSON")
    expect_still_healthy(client, target)


@level("protocol")
@protocol("v2")
@clause("OIP-REST §Inference Request: 'inputs' is required; without it -> 400 {\"error\": str}")
def test_v2_missing_inputs_is_400_with_error(client, target, profile):
    """A V2 body without 'inputs' gets 400 {"error"}."""
    response = client.post(target.v2_infer_path, json_body={"id": "no-inputs"})
    expect_client_error(response, profile=profile, divergence="v2-missing-inputs", what="V2 body without 'inputs'")
    expect_still_healthy(client, target)


@level("protocol")
@protocol("v2")
@clause("OIP-REST §Tensor Data Types: data must match the declared datatype; INT64 with string data -> 400 {\"error\"}")
def test_v2_wrong_datatype_is_400_with_error(client, target, profile):
    """An INT64 input carrying strings gets 400 {"error"}."""
    body = {"inputs": [{"name": target.input_name, "shape": [1], "datatype": "INT64", "data": target.texts(1)}]}
    response = client.post(target.v2_infer_path, json_body=body)
    expect_client_error(response, profile=profile, divergence="v2-wrong-datatype", what="INT64 input with string data")
    expect_still_healthy(client, target)


@level("protocol")
@protocol("v2")
@clause("OIP-REST §Tensor Data: the element count must equal product(shape); shape [3] with 1 element -> 400 {\"error\"}")
def test_v2_shape_data_mismatch_is_400_with_error(client, target, profile):
    """An input whose shape says 3 elements but carries 1 gets 400 {"error"}."""
    body = {"inputs": [{"name": target.input_name, "shape": [3], "datatype": "BYTES", "data": target.texts(1)}]}
    response = client.post(target.v2_infer_path, json_body=body)
    expect_client_error(response, profile=profile, divergence="v2-shape-data-mismatch", what="shape [3] with 1 element")
    expect_still_healthy(client, target)


@level("protocol")
@protocol("v2")
@clause("OIP-REST §Model Metadata/Inference: unknown model -> error status (KServe: 404) and {\"error\": str}")
def test_v2_unknown_model_is_404_with_error(client, target, profile):
    """Inference on a model that is not served gets 404 (or 400) {"error"}."""
    body = {"inputs": [{"name": target.input_name, "shape": [1], "datatype": "BYTES", "data": target.texts(1)}]}
    response = client.post("/v2/models/conformance-no-such-model/infer", json_body=body)
    expect_client_error(response, profile=profile, divergence="v2-unknown-model", what="unknown model (V2)",
                        allowed=(404, 400))
    metadata = client.get("/v2/models/conformance-no-such-model")
    expect_client_error(metadata, profile=profile, divergence="v2-unknown-model", what="metadata of an unknown model",
                        allowed=(404, 400))
    expect_still_healthy(client, target)


@level("protocol")
@protocol("v1")
@clause("KServe V1 §Predict errors: malformed JSON -> 400 {\"error\": str}")
def test_v1_malformed_json_is_400_with_error(client, target, profile):
    """A V1 body that is not JSON gets 400 {"error"}."""
    response = client.post(target.v1_predict_path, content=b'{"instances": ["unterminated', headers=JSON)
    expect_client_error(response, profile=profile, divergence="v1-malformed-json", what="malformed V1 JSON")
    expect_still_healthy(client, target)


@level("protocol")
@protocol("v1")
@clause("KServe V1 §Predict: 'instances' (or 'inputs') is required; without it -> 400 {\"error\": str}")
def test_v1_missing_instances_is_400_with_error(client, target, profile):
    """A V1 body without 'instances' gets 400 {"error"}."""
    response = client.post(target.v1_predict_path, json_body={"texts": target.texts(1)})
    expect_client_error(response, profile=profile, divergence="v1-missing-instances", what="V1 body without 'instances'")
    expect_still_healthy(client, target)


@level("workbench")
@protocol("v1")
@clause("HTTP: a JSON body sent without a JSON content type (plain `curl -d`) is answered or refused with a 4xx, never 5xx")
def test_v1_non_json_content_type_is_not_a_server_error(client, target, profile):
    """A V1 JSON body sent as application/x-www-form-urlencoded gets 200 or a 4xx {"error"}, not a 5xx."""
    import json

    response = client.post(target.v1_predict_path, content=json.dumps({"instances": target.texts(1)}).encode(),
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    if response.status_code == 200:
        # answered: then it is the answer to the JSON body, one prediction as with a JSON content type
        body = json_body(response)
        assert isinstance(body, dict) and isinstance(body.get("predictions"), list), \
            f"200 but not a V1 predict answer {{\"predictions\": [...]}}: {response.text[:200]}"
        if target.task is not None:
            got = semantics.v1_rows(target.task, target.mode, body["predictions"], 1)
            expected = predict_v1(client, target, target.texts(1))
            problems = semantics.compare_rows(target.task, target.mode, got, expected)
            assert not problems, "answered with a form content type, but not what the JSON request gets:\n" + \
                "\n".join(problems[:5])
        else:
            assert len(body["predictions"]) == 1, f"one instance sent, {len(body['predictions'])} predictions"
    else:
        expect_client_error(response, profile=profile, divergence="v1-non-json-content-type",
                            what="JSON body with a form content type", allowed=(400, 415))
    expect_still_healthy(client, target)


@level("protocol")
@protocol("v1")
@clause("KServe V1 §Errors: unknown model -> 404 {\"error\": str} (predict and model readiness)")
def test_v1_unknown_model_is_404_with_error(client, target, profile):
    """Predict and readiness of a model that is not served get 404 {"error"}."""
    response = client.post("/v1/models/conformance-no-such-model:predict", json_body={"instances": target.texts(1)})
    expect_client_error(response, profile=profile, divergence="v1-unknown-model", what="unknown model (V1 predict)",
                        allowed=(404,))
    ready = client.get("/v1/models/conformance-no-such-model")
    expect_client_error(ready, profile=profile, divergence="v1-unknown-model", what="unknown model (V1 readiness)",
                        allowed=(404,))
    expect_still_healthy(client, target)
