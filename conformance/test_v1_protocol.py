"""KServe V1 protocol: model list, model readiness, predict structure."""

from __future__ import annotations

from conformance.checks import clause, json_body, level, protocol

pytestmark = protocol("v1")


@level("protocol")
@clause("KServe V1 §List Models: GET /v1/models -> 200 {\"models\": [names]} including the served model")
def test_v1_models_list_contains_model(client, target):
    """GET /v1/models lists the served model."""
    response = client.get("/v1/models")
    assert response.status_code == 200, f"GET /v1/models answered {response.status_code}"
    body = json_body(response)
    assert isinstance(body, dict) and isinstance(body.get("models"), list), f"body is not {{\"models\": [...]}}: {response.text[:200]}"
    assert target.model_name in body["models"], f"{target.model_name!r} not in {body['models']}"


@level("protocol")
@clause("KServe V1 §Model Ready: GET /v1/models/<m> -> 200 {\"name\": m, \"ready\": true}")
def test_v1_model_ready(client, target):
    """GET /v1/models/<model> says the model is ready, by name."""
    response = client.get(f"/v1/models/{target.model_name}")
    assert response.status_code == 200, f"model readiness answered {response.status_code}"
    body = json_body(response)
    assert isinstance(body, dict), f"body is not a JSON object: {response.text[:200]}"
    assert body.get("name") == target.model_name, f"name {body.get('name')!r} != {target.model_name!r}"
    assert body.get("ready") is True, f"ready is {body.get('ready')!r}, not true"


@level("protocol")
@clause("KServe V1 §Predict: POST /v1/models/<m>:predict {\"instances\": [...]} -> 200 {\"predictions\": [one per instance]}")
def test_v1_predict_returns_one_prediction_per_instance(client, target):
    """V1 predict answers {"predictions": [...]} with one entry per instance."""
    texts = target.texts(2)
    response = client.post(target.v1_predict_path, json_body={"instances": texts})
    assert response.status_code == 200, f"predict answered {response.status_code}: {response.text[:200]}"
    assert response.headers.get("content-type", "").startswith("application/json"), \
        f"content-type {response.headers.get('content-type')!r} is not application/json"
    body = json_body(response)
    assert isinstance(body, dict) and "predictions" in body, f"no 'predictions' key: {response.text[:200]}"
    assert isinstance(body["predictions"], list), "'predictions' is not a list"
    assert len(body["predictions"]) == len(texts), f"{len(texts)} instances, {len(body['predictions'])} predictions"


@level("protocol")
@clause("KServe V1 §Predict: one instance -> exactly one prediction (batch of one)")
def test_v1_single_instance_batch_of_one(client, target):
    """V1 predict with one instance answers one prediction."""
    response = client.post(target.v1_predict_path, json_body={"instances": target.texts(1)})
    assert response.status_code == 200, f"predict answered {response.status_code}: {response.text[:200]}"
    body = json_body(response)
    assert isinstance(body, dict) and isinstance(body.get("predictions"), list) and len(body["predictions"]) == 1, \
        f"expected exactly one prediction: {response.text[:200]}"


@level("kserve")
@clause("KServe HF runtime §Inputs: a bare string in 'instances' is treated as a batch of one")
def test_v1_bare_string_instance_is_batch_of_one(client, target):
    """V1 predict with "instances": "text" (not a list) answers one prediction."""
    response = client.post(target.v1_predict_path, json_body={"instances": target.texts(1)[0]})
    assert response.status_code == 200, f"predict answered {response.status_code}: {response.text[:200]}"
    body = json_body(response)
    assert isinstance(body, dict) and isinstance(body.get("predictions"), list) and len(body["predictions"]) == 1, \
        f"expected exactly one prediction: {response.text[:200]}"


@level("kserve")
@clause("KServe V1 §Predict: the request may say {\"inputs\": [...]} instead of {\"instances\": [...]}")
def test_v1_inputs_key_accepted(client, target):
    """V1 predict with {"inputs": [...]} answers like {"instances": [...]}."""
    texts = target.texts(2)
    with_inputs = client.post(target.v1_predict_path, json_body={"inputs": texts})
    assert with_inputs.status_code == 200, f"predict with 'inputs' answered {with_inputs.status_code}: {with_inputs.text[:200]}"
    with_instances = client.post(target.v1_predict_path, json_body={"instances": texts})
    assert json_body(with_inputs) == json_body(with_instances), "'inputs' and 'instances' give different predictions"
