"""The OpenAI embeddings API KServe's runtime serves beside V1/V2 for text_embedding models
(`POST /openai/v1/embeddings`, `GET /openai/v1/models`; kserve `protocol/rest/openai/endpoints.py`,
huggingfaceserver `create_embedding`), checked against the OpenAI API reference ("Embeddings", "Models",
"Errors"). The checks skip where the task is not text_embedding or the endpoint serves no /openai routes.
"""

from __future__ import annotations

from typing import Any

import pytest

from conformance import embeddings, semantics
from conformance.checks import clause, json_body, level, needs_task
from conformance.profiles import diverge_or_fail
from conformance.target import predict_rows

pytestmark = needs_task

EMBEDDINGS = "/openai/v1/embeddings"
MODELS = "/openai/v1/models"


@pytest.fixture
def openai_target(target, client):
    """The target, when it serves text_embedding and the OpenAI routes (else the check skips)."""
    if target.task != semantics.TEXT_EMBEDDING:
        pytest.skip("the OpenAI embeddings route is a text_embedding route")
    if "openai_models_status" not in target.extra:
        target.extra["openai_models_status"] = client.get(MODELS).status_code
    if target.extra["openai_models_status"] == 404:
        pytest.skip(f"the endpoint serves no OpenAI API (GET {MODELS} answered 404)")
    return target


def embed(client, target, texts: Any, **fields: Any):
    """POST the embeddings route; encoding_format float unless `fields` says otherwise (or None: left out)."""
    body = {"model": target.model_name, "input": texts, "encoding_format": "float", **fields}
    return client.post(EMBEDDINGS, json_body={k: v for k, v in body.items() if v is not None})


def embed_floats(client, target, texts: Any, count: int) -> tuple[dict, list[list[float]]]:
    response = embed(client, target, texts)
    assert response.status_code == 200, f"{EMBEDDINGS} answered {response.status_code}: {response.text[:300]}"
    body = response.json()
    return body, embeddings.float_embeddings(body, count)


def first_protocol_rows(client, target, texts: list[str]) -> list[list[float]]:
    return predict_rows(client, target, texts, target.protocols[0])


@level("kserve")
@clause("OpenAI API reference, Embeddings: data[i] = {object: \"embedding\", index: i, embedding: D floats} in input "
        "order; model; usage {prompt_tokens, total_tokens} integers")
def test_openai_embeddings_response_schema(client, openai_target):
    """Two texts get two embedding objects in order, of the model's dimension, with the model and the usage."""
    texts = openai_target.texts(2)
    body, vectors = embed_floats(client, openai_target, texts, len(texts))
    dimension = len(first_protocol_rows(client, openai_target, texts[:1])[0])
    assert {len(v) for v in vectors} == {dimension}, \
        f"embedding lengths {sorted({len(v) for v in vectors})}, the model's dimension is {dimension} (V1/V2)"
    assert body.get("model") == openai_target.model_name, \
        f"model is {body.get('model')!r}, the request asked {openai_target.model_name!r}"
    embeddings.check_usage(body)


@level("kserve")
@clause("OpenAI API reference, Embeddings: the response's object is \"list\"")
def test_openai_embeddings_response_object_is_list(client, openai_target, profile):
    """The response's top-level object is "list"."""
    response = embed(client, openai_target, openai_target.texts(1))
    assert response.status_code == 200, f"{EMBEDDINGS} answered {response.status_code}: {response.text[:300]}"
    if (json_body(response) or {}).get("object") != "list":
        diverge_or_fail(profile, "openai-embeddings-object", response,
                        f"object is {(json_body(response) or {}).get('object')!r}, not 'list'")


@level("kserve")
@clause("KServe create_embedding: the OpenAI route answers the V1 predictions of the same texts, in input order")
def test_openai_embeddings_equal_the_v1_v2_answers(client, openai_target):
    """Three texts get, embedding by embedding, what V1 (or V2) answers for them."""
    texts = openai_target.texts(3)
    _, vectors = embed_floats(client, openai_target, texts, len(texts))
    problems = semantics.compare_embeddings(vectors, first_protocol_rows(client, openai_target, texts))
    assert not problems, f"OpenAI embeddings differ from {openai_target.protocols[0]}:\n" + "\n".join(problems[:10])


@level("kserve")
@clause("OpenAI API reference, Embeddings: encoding_format base64 = the float32 values, little-endian, base64 "
        "(KServe packs struct '<f'; the openai client decodes numpy float32)")
def test_openai_base64_embeddings_decode_to_the_float_answer(client, openai_target):
    """With encoding_format base64 each embedding decodes to the float answer (within float32 rounding)."""
    texts = openai_target.texts(2)
    _, floats = embed_floats(client, openai_target, texts, len(texts))
    response = embed(client, openai_target, texts, encoding_format="base64")
    assert response.status_code == 200, f"base64 answered {response.status_code}: {response.text[:300]}"
    items = embeddings.embedding_items(response.json(), len(texts))
    decoded = [embeddings.decode_base64_floats(item["embedding"], f"data[{i}].embedding") for i, item in enumerate(items)]
    problems = semantics.compare_embeddings(decoded, floats, tolerance=embeddings.BASE64_TOLERANCE)
    assert not problems, "base64 embeddings (little-endian float32) differ from the floats:\n" + "\n".join(problems[:5])


@level("kserve")
@clause("OpenAI API reference, Embeddings: input is a string or an array of strings; a string is one input")
def test_openai_string_input_is_one_embedding(client, openai_target):
    """"text" gets one embedding object, the one ["text"] gets."""
    text = openai_target.texts(1)[0]
    _, alone = embed_floats(client, openai_target, text, 1)
    _, listed = embed_floats(client, openai_target, [text], 1)
    problems = semantics.compare_embeddings(alone, listed)
    assert not problems, "a string input and a one-string list differ:\n" + "\n".join(problems)


@level("kserve")
@clause("OpenAI API reference, Embeddings: encoding_format is optional, default \"float\"")
def test_openai_encoding_format_defaults_to_float(client, openai_target, profile):
    """A request without encoding_format gets float embeddings."""
    response = embed(client, openai_target, openai_target.texts(1), encoding_format=None)
    if response.status_code != 200:
        diverge_or_fail(profile, "openai-default-encoding-format", response,
                        f"without encoding_format: {response.status_code}: {response.text[:200]}")
    embeddings.float_embeddings(response.json(), 1)


@level("kserve")
@clause("KServe create_embedding: usage.prompt_tokens = total_tokens = the tokens of all inputs (attention mask "
        "sum: special tokens counted, padding not)")
def test_openai_usage_counts_the_prompt_tokens(client, openai_target):
    """usage counts each text's tokenized length (the --reference-model's tokenizer), summed."""
    if openai_target.reference is None:
        pytest.skip("needs a tokenizer: pass --reference-model")
    texts = openai_target.texts(3)
    body, _ = embed_floats(client, openai_target, texts, len(texts))
    usage = embeddings.check_usage(body)
    expected = sum(openai_target.reference.token_lengths(texts))
    assert (usage["prompt_tokens"], usage["total_tokens"]) == (expected, expected), \
        f"usage {usage}, the texts tokenize to {expected} tokens"


def expect_openai_error(response, *, profile: str, divergence: str, what: str, codes: range) -> dict:
    """A status in `codes` with an OpenAI error body; the error object."""
    problem = embeddings.openai_error(json_body(response))
    if response.status_code in codes and problem is None:
        return json_body(response)["error"]
    diverge_or_fail(profile, divergence, response,
                    f"{what}: expected {codes.start}-{codes.stop - 1} with an OpenAI error, got {response.status_code}"
                    f"{'' if problem is None else ' (' + problem + ')'}: {response.text[:200]}")
    return {}


@level("kserve")
@clause("KServe create_embedding / OpenAI API reference, Errors: token-id input is refused (the model's tokenizer "
        "is not OpenAI's) with a 4xx OpenAI error that says so")
@pytest.mark.parametrize("ids", [[101, 7592, 102], [[101, 7592, 102]]], ids=["ids", "id-lists"])
def test_openai_token_id_input_is_refused_with_an_openai_error(client, openai_target, profile, ids):
    """input as token ids (one list, or a list of lists) gets a 4xx OpenAI error naming tokens."""
    error = expect_openai_error(embed(client, openai_target, ids), profile=profile, divergence="openai-token-ids",
                                what="token-id input", codes=range(400, 500))
    assert "token" in error["message"].lower(), f"the error does not say token input is refused: {error}"


@level("kserve")
@clause("OpenAI API reference, Errors: an invalid request gets a 4xx {\"error\": {\"message\", \"type\", ...}}")
def test_openai_malformed_json_is_4xx_with_an_openai_error(client, openai_target, profile):
    """A body that is not JSON gets a 4xx OpenAI error."""
    response = client.post(EMBEDDINGS, content=b'{"model": "' + openai_target.model_name.encode() + b'", "input": ',
                           headers={"Content-Type": "application/json"})
    expect_openai_error(response, profile=profile, divergence="openai-malformed-json", what="malformed JSON",
                        codes=range(400, 500))


@level("kserve")
@clause("OpenAI API reference, Embeddings: input is required; Errors: 4xx {\"error\": {\"message\", \"type\", ...}}")
def test_openai_missing_input_is_4xx_with_an_openai_error(client, openai_target, profile):
    """A body without input gets a 4xx OpenAI error."""
    expect_openai_error(embed(client, openai_target, None), profile=profile, divergence="openai-missing-input",
                        what="no 'input'", codes=range(400, 500))


@level("kserve")
@clause("OpenAI API reference, Errors: a model that does not exist gets 404 with an OpenAI error")
def test_openai_unknown_model_is_404_with_an_openai_error(client, openai_target, profile):
    """Embeddings for a model that is not served get 404 with an OpenAI error."""
    response = client.post(EMBEDDINGS, json_body={"model": f"no-such-{openai_target.model_name}",
                                                  "input": openai_target.texts(1), "encoding_format": "float"})
    expect_openai_error(response, profile=profile, divergence="openai-unknown-model", what="unknown model",
                        codes=range(404, 405))


@level("kserve")
@clause("OpenAI API reference, Models: GET /v1/models -> {object: \"list\", data: [{object: \"model\", id}]} "
        "(KServe: under /openai), the served model among them")
def test_openai_models_list_the_model(client, openai_target):
    """GET /openai/v1/models lists the served model."""
    response = client.get(MODELS)
    assert response.status_code == 200, f"{MODELS} answered {response.status_code}: {response.text[:300]}"
    body = json_body(response)
    assert isinstance(body, dict) and body.get("object") == "list" and isinstance(body.get("data"), list), \
        f"not {{object: 'list', data: [...]}}: {response.text[:300]}"
    bad = [m for m in body["data"] if not (isinstance(m, dict) and m.get("object") == "model"
                                           and isinstance(m.get("id"), str))]
    assert not bad, f"model entries without object 'model' and a string id: {bad[:3]}"
    ids = [m["id"] for m in body["data"]]
    assert openai_target.model_name in ids, f"{openai_target.model_name!r} is not listed: {ids}"
