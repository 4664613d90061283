"""text_embedding on our server: V1/V2 shapes, the OpenAI routes through the real `openai` client, errors,
and batched (packed) answers equal to each text alone. The equality with KServe's real runtime is in
tests/kserve_runtime/test_answers_equal.py and test_openai_embeddings.py; sentence-transformers on the
real MiniLM in test_embeddings_minilm.py."""

from __future__ import annotations

import base64
import math

import httpx
import numpy as np
import pytest

from tests.serving.conftest import v1, v2
from workbench.serving import openai_api
from workbench.serving.errors import BadRequest

openai = pytest.importorskip("openai")

TEXTS = ["My name is Wolfgang and I live in Berlin", "Hello", "", "the capital of france is paris ."]
DIM = 32  # the tiny model's hidden size


@pytest.fixture(scope="module")
def url(server):
    return server("text_embedding")  # a headless BertModel: the task is inferred


@pytest.fixture(scope="module")
def client(url):
    return openai.OpenAI(base_url=f"{url}/openai/v1", api_key="x", max_retries=0)


def test_v1_and_v2_answer_unit_vectors_fp32(http, url):
    predictions = v1(http, url, TEXTS)
    assert len(predictions) == len(TEXTS) and all(len(vector) == DIM for vector in predictions)
    assert all(abs(math.sqrt(sum(x * x for x in vector)) - 1.0) < 1e-5 for vector in predictions)
    (output,) = v2(http, url, TEXTS)["outputs"]
    assert (output["name"], output["datatype"], output["shape"]) == ("output-0", "FP32", [len(TEXTS), DIM])
    assert np.allclose(np.asarray(output["data"]).reshape(len(TEXTS), DIM), predictions, atol=1e-6)
    metadata = http.get(f"{url}/v2/models/model").json()
    assert metadata["outputs"] == [{"name": "output-0", "datatype": "FP32", "shape": [-1, DIM]}]
    assert metadata["parameters"] == {"task": "text_embedding", "mode": "default", "labels": {}}


def test_batched_and_packed_answers_equal_each_text_alone(http, url, server):
    together = np.asarray(v1(http, url, TEXTS))
    alone = np.asarray([v1(http, url, [text])[0] for text in TEXTS])
    padded = np.asarray(v1(http, server("text_embedding", "--disable_packing"), TEXTS))
    assert np.abs(together - alone).max() < 1e-6
    assert np.abs(together - padded).max() < 1e-6
    assert np.abs(together[0] - together[1]).max() > 1e-2  # different texts, different vectors


def test_openai_client_float_and_base64_equal_v1(http, url, client, tiny_models):
    from transformers import AutoTokenizer

    expected = v1(http, url, TEXTS)
    floats = client.embeddings.create(model="model", input=TEXTS, encoding_format="float")
    assert [d.index for d in floats.data] == list(range(len(TEXTS)))
    assert [d.embedding for d in floats.data] == expected  # the same float32 values, exactly
    assert floats.model == "model" and floats.object == "list"
    tokenizer = AutoTokenizer.from_pretrained(tiny_models("text_embedding"))
    tokens = sum(len(ids) for ids in tokenizer(TEXTS)["input_ids"])  # [CLS] and [SEP] included
    assert floats.usage.prompt_tokens == floats.usage.total_tokens == tokens
    default = client.embeddings.create(model="model", input=TEXTS)  # the client asks for base64 and decodes it
    assert [d.embedding for d in default.data] == expected
    raw = client.embeddings.create(model="model", input=TEXTS[0], encoding_format="base64")
    decoded = np.frombuffer(base64.b64decode(raw.data[0].embedding), dtype="<f4").tolist()
    assert decoded == expected[0]
    assert [m.id for m in client.models.list().data] == ["model"]
    assert client.models.retrieve("model").id == "model"


@pytest.mark.parametrize(("body", "status", "param", "fragment"), [
    ({"model": "model", "input": [101, 2054]}, 400, "input", "token ids is not supported"),
    ({"model": "model", "input": [[101, 2054], [101]]}, 400, "input", "token ids is not supported"),
    ({"model": "model", "input": []}, 400, "input", "non-empty list"),
    ({"model": "model", "input": ["a", 3]}, 400, "input", "input[1]"),
    ({"model": "model"}, 400, "input", "'input' is required"),
    ({"input": "a"}, 400, "model", "'model' is required"),
    ({"model": "model", "input": "a", "encoding_format": "hex"}, 400, "encoding_format", "float"),
    ({"model": "model", "input": "a", "dimensions": 8}, 400, "dimensions", "32 dimensions"),
    ({"model": "other", "input": "a"}, 404, None, "other"),
], ids=["token-ids", "token-id-lists", "empty", "not-a-string", "no-input", "no-model", "encoding", "dimensions",
        "unknown-model"])
def test_bad_requests_get_openai_errors_and_the_server_keeps_serving(url, body, status, param, fragment):
    response = httpx.post(f"{url}/openai/v1/embeddings", json=body, timeout=60)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and fragment in error["message"]
    assert error["param"] == param and error["type"] == "invalid_request_error"
    if status == 404:
        assert error["code"] == "model_not_found"
    assert httpx.post(f"{url}/openai/v1/embeddings", json={"model": "model", "input": "x"}, timeout=60).status_code == 200


def test_openai_client_raises_on_token_ids_and_unknown_models(client):
    with pytest.raises(openai.BadRequestError, match="token ids"):
        client.embeddings.create(model="model", input=[[1, 2, 3]], encoding_format="float")
    with pytest.raises(openai.NotFoundError, match="other"):
        client.embeddings.create(model="other", input="x", encoding_format="float")


def test_a_model_with_a_head_refuses_embeddings(server):
    url = server("sequence_classification")
    response = httpx.post(f"{url}/openai/v1/embeddings", json={"model": "model", "input": "x"}, timeout=60)
    assert response.status_code == 400 and "--task text_embedding" in response.json()["error"]["message"]


def test_parse_embedding_request():
    parsed = openai_api.parse_embedding_request({"model": "m", "input": "one", "user": "u"})
    assert (parsed.texts, parsed.encoding_format) == (["one"], "float")
    assert openai_api.parse_embedding_request({"model": "m", "input": ["a", "b"], "encoding_format": "base64"}) \
        .encoding_format == "base64"
    with pytest.raises(BadRequest):
        openai_api.parse_embedding_request(["not", "an", "object"])
    with pytest.raises(BadRequest):
        openai_api.parse_embedding_request({"model": "m", "input": [True]})


def test_base64_is_little_endian_float32():
    encoded = openai_api.base64_floats([1.0, -0.5])
    assert base64.b64decode(encoded) == b"\x00\x00\x80\x3f\x00\x00\x00\xbf"
