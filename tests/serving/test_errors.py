"""Every bad input gets a 4xx with {"error": "..."} and the server answers the next good request."""

from __future__ import annotations

import pytest

TEXT = "My name is Lisa and I live in Paris"
GOOD_V1 = {"instances": [TEXT]}

CASES = [
    # (name, method, path, content, headers, status, words in the error)
    ("malformed V1 JSON", "POST", "/v1/models/model:predict", b'{"instances": [', {}, 400, "malformed JSON"),
    ("malformed V2 JSON", "POST", "/v2/models/model/infer", b'{"inputs": [', {}, 400, "malformed JSON"),
    ("empty body", "POST", "/v1/models/model:predict", b"", {}, 400, "empty"),
    ("V1 without instances", "POST", "/v1/models/model:predict", b'{"data": ["x"]}', {}, 400, "instances"),
    ("V1 empty batch", "POST", "/v1/models/model:predict", b'{"instances": []}', {}, 400, "empty"),
    ("V1 non-string text", "POST", "/v1/models/model:predict", b'{"instances": [42]}', {}, 400, "string"),
    ("V2 without inputs", "POST", "/v2/models/model/infer", b'{"id": "1"}', {}, 400, "inputs"),
    ("V2 wrong datatype", "POST", "/v2/models/model/infer",
     b'{"inputs": [{"name": "t", "shape": [1], "datatype": "INT64", "data": [1]}]}', {}, 400, "BYTES"),
    ("V2 shape/data mismatch", "POST", "/v2/models/model/infer",
     b'{"inputs": [{"name": "t", "shape": [3], "datatype": "BYTES", "data": ["a"]}]}', {}, 400, "shape"),
    ("V2 non-string element", "POST", "/v2/models/model/infer",
     b'{"inputs": [{"name": "t", "shape": [1], "datatype": "BYTES", "data": [1.5]}]}', {}, 400, "string"),
    ("V2 empty batch", "POST", "/v2/models/model/infer",
     b'{"inputs": [{"name": "t", "shape": [0], "datatype": "BYTES", "data": []}]}', {}, 400, "empty"),
    ("V2 unknown output", "POST", "/v2/models/model/infer",
     b'{"inputs": [{"name": "t", "shape": [1], "datatype": "BYTES", "data": ["a"]}], "outputs": [{"name": "nope"}]}',
     {}, 400, "unknown output"),
    ("unknown model V1", "POST", "/v1/models/nope:predict", b'{"instances": ["a"]}', {}, 404, "nope"),
    ("unknown model V2", "POST", "/v2/models/nope/infer",
     b'{"inputs": [{"name": "t", "shape": [1], "datatype": "BYTES", "data": ["a"]}]}', {}, 404, "nope"),
    ("unknown model ready", "GET", "/v2/models/nope/ready", None, {}, 404, "nope"),
    ("unknown route", "GET", "/v3/whatever", None, {}, 404, "no route"),
    ("wrong method", "GET", "/v1/models/model:predict", None, {}, 404, "nope"),
    ("too many texts", "POST", "/v1/models/model:predict",
     b'{"instances": [' + b",".join([b'"a"'] * 1025) + b"]}", {}, 400, "limit"),
    ("body too large", "POST", "/v1/models/model:predict",
     b'{"instances": ["' + b"a" * (16 * 1024 * 1024 + 10) + b'"]}', {}, 413, "exceeds"),
    ("bad binary header", "POST", "/v2/models/model/infer", b'{"inputs": []}',
     {"Inference-Header-Content-Length": "9999"}, 400, "Inference-Header-Content-Length"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_request_gets_a_json_error_and_the_server_keeps_serving(server, http, case):
    name, method, path, content, headers, status, words = case
    url = server("token_classification")
    response = http.request(method, url + path, content=content, headers=headers)
    if name == "wrong method":  # GET on the predict route falls through to the model route: unknown model
        assert response.status_code in (404, 405)
    else:
        assert response.status_code == status, response.text
        assert words.lower() in response.json()["error"].lower()
    assert set(response.json()) == {"error"}
    good = http.post(f"{url}/v1/models/model:predict", json=GOOD_V1)
    assert good.status_code == 200


def test_fill_mask_text_without_a_mask_token_is_a_400(server, http):
    url = server("fill_mask")
    response = http.post(f"{url}/v1/models/model:predict", json={"instances": ["no mask here"]})
    assert response.status_code == 400 and "[MASK]" in response.json()["error"]
    assert http.post(f"{url}/v1/models/model:predict", json={"instances": ["the [MASK] of france"]}).status_code == 200


def test_plain_curl_form_encoding_is_parsed_as_json(server, http):
    """`curl -d` sends application/x-www-form-urlencoded; KServe answers 500, we read the JSON."""
    url = server("token_classification")
    response = http.post(f"{url}/v1/models/model:predict", content=b'{"instances": ["Hello"]}',
                         headers={"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 200 and "predictions" in response.json()


def test_fill_mask_v2_with_different_mask_counts_is_a_clear_400(server, http):
    url = server("fill_mask", "--return_probabilities")
    body = {"inputs": [{"name": "t", "shape": [2], "datatype": "BYTES",
                        "data": ["the [MASK] of france", "[MASK] [MASK]"]}]}
    response = http.post(f"{url}/v2/models/model/infer", json=body)
    assert response.status_code == 400 and "different shapes" in response.json()["error"]


def test_health_and_listing_routes(server, http):
    url = server("token_classification")
    assert http.get(f"{url}/v2/health/live").json() == {"live": True}
    assert http.get(f"{url}/v2/health/ready").json() == {"ready": True}
    assert http.get(f"{url}/v1/models").json() == {"models": ["model"]}
    assert http.get(f"{url}/v1/models/model").json() == {"name": "model", "ready": True}
    assert http.get(f"{url}/v2/models/model/ready").json() == {"name": "model", "ready": True}
    assert http.get(f"{url}/v2").json()["name"] == "workbench"
    metrics = http.get(f"{url}/metrics").text
    assert "workbench_requests_total" in metrics and "workbench_batch_texts" in metrics
