"""Entities (issue 7): `POST /models/{name}` and `parameters.aggregation_strategy` on V1/V2 answer what
transformers' `pipeline("token-classification", aggregation_strategy=...)` answers for the same model,
for every strategy, for ignore_labels, and for texts several times longer than the model's maximum
length (stride windows). Real servers on free ports; the pipeline runs in-process as the reference.

The one intended difference: our `word` is `text[start:end]` (the original text), the pipeline's is
its decoded tokens (lowercased, "##" pieces, spaces around punctuation); `same_word` compares them
loosely, and every answer is checked for `text[start:end] == word` exactly.
"""

from __future__ import annotations

import asyncio
import json
import math

import httpx
import pytest

from workbench.serving.entities import (STRATEGIES, EntityParams, check_for_model, parse_hf_request,
                                        parse_parameters)
from workbench.serving.errors import BadRequest
from workbench.testsupport.servers import served

MAX_POSITIONS = 32
TEXTS = ["My name is Wolfgang and I live in Berlin", "My name is Lisa and I live in Paris",
         "Hello", "EU rejects German call to boycott British lamb .", "John works for a company based in New York"]
# ~4-5 windows of 32 tokens: several times the maximum length.
LONG_TEXT = ("John Carter works for Atlas Motors in Berlin, and Lisa Moreau lives in New York. " * 5).strip()
SCORE_TOLERANCE = 1e-4  # padding in a batch moves the last bits of a float


# --- fixtures -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def short_model(tmp_path_factory):
    from workbench.testsupport.tiny_models import build_tiny_model

    return str(build_tiny_model("token_classification", tmp_path_factory.mktemp("tiny-ner-32"),
                                max_position_embeddings=MAX_POSITIONS))


@pytest.fixture(scope="module")
def cased_model(tmp_path_factory):
    from workbench.testsupport.tiny_models import build_tiny_model

    return str(build_tiny_model("token_classification", tmp_path_factory.mktemp("tiny-ner-32-cased"),
                                cased=True, max_position_embeddings=MAX_POSITIONS))


@pytest.fixture(scope="module")
def url(short_model):
    with served(short_model) as base:
        yield base


@pytest.fixture(scope="module")
def pipelines():
    """(model_dir, lower_case) -> transformers' token-classification pipeline, its tokenizer lowercasing
    exactly as the server's does."""
    from transformers import AutoTokenizer, pipeline

    cache = {}

    def get(model_dir: str, lower_case: bool = True):
        key = (model_dir, lower_case)
        if key not in cache:
            tokenizer = AutoTokenizer.from_pretrained(model_dir, do_lower_case=lower_case)
            cache[key] = pipeline("token-classification", model=model_dir, tokenizer=tokenizer)
        return cache[key]

    return get


# --- helpers --------------------------------------------------------------------------------------

def hf(http, base, inputs, model="model", **parameters):
    body = {"inputs": inputs}
    if parameters:
        body["parameters"] = parameters
    response = http.post(f"{base}/models/{model}", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def loose(word: str) -> str:
    return word.replace("##", "").replace(" ", "").lower()


def same_word(ours: str, theirs: str) -> bool:
    return loose(ours) == loose(theirs)


def assert_same_entities(got: list[dict], expected: list[dict], text: str) -> None:
    assert len(got) == len(expected), f"{len(got)} entities, the pipeline finds {len(expected)}:\n{got}\n{expected}"
    for ours, theirs in zip(got, expected):
        assert list(ours) == list(theirs), f"keys {list(ours)} != the pipeline's {list(theirs)}"
        for key, value in theirs.items():
            if key == "score":
                assert isinstance(ours["score"], float) and 0.0 <= ours["score"] <= 1.0
                assert math.isclose(ours["score"], float(value), abs_tol=SCORE_TOLERANCE), (ours, theirs)
            elif key == "word":
                assert ours["word"] == text[ours["start"]:ours["end"]], ours
                assert same_word(ours["word"], value), (ours, theirs)
            else:
                assert ours[key] == value, (key, ours, theirs)


# --- pure parsing and checks --------------------------------------------------------------------

def test_parameters_default_to_the_inference_apis_simple():
    assert parse_parameters(None) == EntityParams("simple", None, None)
    assert parse_parameters({"aggregation_strategy": None, "stride": None}) == EntityParams()
    assert parse_parameters({"aggregation_strategy": "FIRST", "ignore_labels": [], "stride": 0}) == \
        EntityParams("first", (), 0)


@pytest.mark.parametrize("parameters, message", [
    ({"aggregation_strategy": "mean"}, "unknown aggregation_strategy"),
    ({"aggregation_strategy": 3}, "must be a string"),
    ({"ignore_labels": "O"}, "list of label names"),
    ({"ignore_labels": [1]}, "list of label names"),
    ({"stride": "8"}, "must be an integer"),
    ({"stride": True}, "must be an integer"),
    ({"stride": -1}, "0 or more"),
    ({"aggregation_strategy": "none", "stride": 4}, "needs aggregation"),
    ({"agregation_strategy": "simple"}, "unknown parameters"),
    ([], "must be an object"),
])
def test_bad_parameters_are_clear_errors(parameters, message):
    with pytest.raises(BadRequest, match=message):
        parse_parameters(parameters)


def test_kserve_routes_tolerate_their_own_parameters():
    assert parse_parameters({"aggregation_strategy": "max", "binary_data_output": False}, strict=False).aggregation_strategy == "max"


@pytest.mark.parametrize("body, message", [
    ([], "JSON object"), ({}, "needs 'inputs'"), ({"inputs": 3}, "string or a list"),
    ({"inputs": []}, "empty list"), ({"inputs": ["a", 2]}, r"inputs\[1\]"), ({"inputs": "a", "extra": 1}, "unknown field"),
])
def test_bad_hf_requests_are_clear_errors(body, message):
    with pytest.raises(BadRequest, match=message):
        parse_hf_request(body)


def test_hf_request_single_text_or_list():
    assert parse_hf_request({"inputs": "a", "options": {"wait_for_model": True}})[:2] == (["a"], True)
    assert parse_hf_request({"inputs": ["a", "b"]})[:2] == (["a", "b"], False)


def test_model_checks():
    ok = dict(task="token_classification", is_fast=True, max_length=32, special_tokens=2)
    check_for_model(EntityParams("max", None, 29), **ok)
    with pytest.raises(BadRequest, match="token classification models only"):
        check_for_model(EntityParams(), **{**ok, "task": "fill_mask"})
    for strategy in ("first", "average", "max"):
        with pytest.raises(BadRequest, match="fast tokenizer"):
            check_for_model(EntityParams(strategy), **{**ok, "is_fast": False})
    check_for_model(EntityParams("simple"), **{**ok, "is_fast": False})  # simple works without offsets
    with pytest.raises(BadRequest, match="stride 30 must be less than"):
        check_for_model(EntityParams("simple", None, 30), **ok)


# --- differential against the pipeline ----------------------------------------------------------

@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_equals_the_pipeline(url, http, short_model, pipelines, strategy):
    got = hf(http, url, TEXTS, aggregation_strategy=strategy)
    expected = pipelines(short_model)(TEXTS, aggregation_strategy=strategy)
    assert len(got) == len(TEXTS)
    for text, ours, theirs in zip(TEXTS, got, expected):
        assert_same_entities(ours, theirs, text)


def test_default_strategy_is_simple_and_one_text_gives_one_list(url, http, short_model, pipelines):
    got = hf(http, url, TEXTS[0])
    assert isinstance(got, list) and all(isinstance(e, dict) for e in got)
    assert_same_entities(got, pipelines(short_model)(TEXTS[0], aggregation_strategy="simple"), TEXTS[0])


@pytest.mark.parametrize("ignore", [[], ["O", "LOC", "ORG"], ["B-PER", "I-LOC"]])
@pytest.mark.parametrize("strategy", ["none", "simple"])
def test_ignore_labels_equal_the_pipeline(url, http, short_model, pipelines, strategy, ignore):
    got = hf(http, url, TEXTS, aggregation_strategy=strategy, ignore_labels=ignore)
    expected = pipelines(short_model)(TEXTS, aggregation_strategy=strategy, ignore_labels=ignore)
    for text, ours, theirs in zip(TEXTS, got, expected):
        assert_same_entities(ours, theirs, text)
    if ignore == [] and strategy == "none":  # nothing ignored: one entity per (non-special) token
        tokenizer = pipelines(short_model).tokenizer
        assert [len(row) for row in got] == [min(len(tokenizer.tokenize(text)), MAX_POSITIONS - 2) for text in TEXTS]


@pytest.mark.parametrize("stride", [0, 8, 20])
@pytest.mark.parametrize("strategy", ["simple", "first", "average", "max"])
def test_long_text_with_stride_equals_the_pipeline(url, http, short_model, pipelines, strategy, stride):
    pipe = pipelines(short_model)
    assert len(pipe.tokenizer(LONG_TEXT)["input_ids"]) > 3 * MAX_POSITIONS
    response = http.post(f"{url}/models/model", json={"inputs": [LONG_TEXT],
                                                      "parameters": {"aggregation_strategy": strategy, "stride": stride}})
    assert response.status_code == 200, response.text
    assert response.headers["x-workbench-truncated"] == "false"
    (got,) = response.json()
    expected = pipe(LONG_TEXT, aggregation_strategy=strategy, stride=stride)
    assert_same_entities(got, expected, LONG_TEXT)
    assert max(e["end"] for e in got) > len(LONG_TEXT) * 0.9  # the end of the text was read


def test_truncation_without_stride_is_reported(url, http, short_model, pipelines):
    texts = [LONG_TEXT, "Hello"]
    response = http.post(f"{url}/models/model", json={"inputs": texts})
    assert response.headers["x-workbench-truncated"] == "true,false"
    got = response.json()
    expected = pipelines(short_model)(texts, aggregation_strategy="simple")  # the pipeline cuts off silently
    for text, ours, theirs in zip(texts, got, expected):
        assert_same_entities(ours, theirs, text)
    v1 = http.post(f"{url}/v1/models/model:predict",
                   json={"instances": texts, "parameters": {"aggregation_strategy": "simple"}}).json()
    assert v1["parameters"] == {"aggregation_strategy": "simple", "truncated": [True, False]}
    v2 = http.post(f"{url}/v2/models/model/infer", json=v2_body(texts, aggregation_strategy="simple")).json()
    assert v2["parameters"] == {"truncated": True, "truncated_indices": "[0]"}


# --- the KServe routes ----------------------------------------------------------------------------

def v2_body(texts, **parameters):
    return {"inputs": [{"name": "text", "shape": [len(texts)], "datatype": "BYTES", "data": texts}],
            "parameters": parameters, "id": "ent-1"}


@pytest.mark.parametrize("strategy", ["none", "average"])
def test_v1_and_v2_answer_the_same_entities(url, http, strategy):
    expected = hf(http, url, TEXTS, aggregation_strategy=strategy, ignore_labels=["O", "MISC"])
    v1 = http.post(f"{url}/v1/models/model:predict", json={
        "instances": TEXTS, "parameters": {"aggregation_strategy": strategy, "ignore_labels": ["O", "MISC"]}})
    assert v1.status_code == 200, v1.text
    assert v1.json()["predictions"] == expected
    cut = [False, False, False, True, False]  # TEXTS[3] is 36 tokens, the model takes 32
    assert v1.json()["parameters"] == {"aggregation_strategy": strategy, "truncated": cut}

    v2 = http.post(f"{url}/v2/models/model/infer", json=v2_body(TEXTS, aggregation_strategy=strategy,
                                                                ignore_labels=["O", "MISC"]))
    assert v2.status_code == 200, v2.text
    answer = v2.json()
    assert answer["id"] == "ent-1" and answer["parameters"] == {"truncated": True, "truncated_indices": "[3]"}
    (output,) = answer["outputs"]
    assert output["name"] == "output-0" and output["datatype"] == "BYTES" and output["shape"] == [len(TEXTS)]
    assert output["parameters"] == {"content_type": "application/json", "aggregation_strategy": strategy}
    assert [json.loads(element) for element in output["data"]] == expected


def test_v2_entities_with_stride_and_binary_output(url, http):
    expected = hf(http, url, [LONG_TEXT], stride=8)
    body = v2_body([LONG_TEXT], aggregation_strategy="simple", stride=8, binary_data_output=True)
    response = http.post(f"{url}/v2/models/model/infer", json=body)
    assert response.status_code == 200, response.text
    header_length = int(response.headers["inference-header-content-length"])
    header = json.loads(response.content[:header_length])
    raw = response.content[header_length:]
    length = int.from_bytes(raw[:4], "little")
    assert header["outputs"][0]["parameters"]["binary_data_size"] == len(raw)
    assert json.loads(raw[4:4 + length].decode("utf-8")) == expected[0]


def test_without_aggregation_the_kserve_answers_are_unchanged(url, http):
    plain = http.post(f"{url}/v1/models/model:predict", json={"instances": TEXTS[:2]}).json()
    with_other_parameters = http.post(f"{url}/v1/models/model:predict",
                                      json={"instances": TEXTS[:2], "parameters": {"something": 1}}).json()
    assert with_other_parameters == plain and set(plain) == {"predictions"}
    assert isinstance(plain["predictions"][0][0][0], int)  # label ids, KServe's shape
    v2 = http.post(f"{url}/v2/models/model/infer", json=v2_body(TEXTS[:2], binary_data_output=False)).json()
    assert v2["parameters"] is None and v2["outputs"][0]["datatype"] == "INT64"


# --- lowercasing and offsets ---------------------------------------------------------------------

def test_lowercasing_server_still_gives_original_offsets_and_words(cased_model, http, pipelines):
    """The server lowercases by default, even for a cased model: offsets still index the original text
    and `word` is its slice, capitals kept."""
    with served(cased_model) as base:
        got = hf(http, base, TEXTS, aggregation_strategy="simple", ignore_labels=[])
    expected = pipelines(cased_model, lower_case=True)(TEXTS, aggregation_strategy="simple", ignore_labels=[])
    for text, ours, theirs in zip(TEXTS, got, expected):
        assert_same_entities(ours, theirs, text)
    words = [e["word"] for e in got[1]]
    assert "Lisa" in " ".join(words) and "Paris" in " ".join(words)


@pytest.mark.parametrize("strategy", ["simple", "first"])
def test_cased_model_with_disable_lower_case_equals_the_pipeline(cased_model, http, pipelines, strategy):
    with served(cased_model, "--disable_lower_case") as base:
        got = hf(http, base, TEXTS + [LONG_TEXT], aggregation_strategy=strategy, stride=10)
    expected = pipelines(cased_model, lower_case=False)(TEXTS + [LONG_TEXT], aggregation_strategy=strategy, stride=10)
    for text, ours, theirs in zip(TEXTS + [LONG_TEXT], got, expected):
        assert_same_entities(ours, theirs, text)


# --- errors and batching --------------------------------------------------------------------------

@pytest.mark.parametrize("body, message", [
    ({"inputs": "x", "parameters": {"aggregation_strategy": "mean"}}, "unknown aggregation_strategy"),
    ({"inputs": "x", "parameters": {"stride": 30}}, "must be less than"),
    ({"inputs": "x", "parameters": {"stride": 100}}, "must be less than"),
    ({"inputs": "x", "parameters": {"aggregation_strategy": "none", "stride": 2}}, "needs aggregation"),
    ({"inputs": {"text": "x"}}, "string or a list"),
    ({"inputs": "x", "parameters": {"ignore_labels": "O"}}, "ignore_labels"),
])
def test_bad_requests_answer_400_with_an_error(url, http, body, message):
    response = http.post(f"{url}/models/model", json=body)
    assert response.status_code == 400 and message in response.json()["error"], response.text
    v1 = http.post(f"{url}/v1/models/model:predict", json={"instances": ["x"], "parameters": {"aggregation_strategy": "mean"}})
    assert v1.status_code == 400 and "unknown aggregation_strategy" in v1.json()["error"]


def test_unknown_model_is_404(url, http):
    response = http.post(f"{url}/models/nope", json={"inputs": "x"})
    assert response.status_code == 404 and "nope" in response.json()["error"]


def test_other_tasks_are_told_the_route_serves_token_classification(server, http):
    base = server("sequence_classification")
    response = http.post(f"{base}/models/model", json={"inputs": "I am happy"})
    assert response.status_code == 400 and "token classification" in response.json()["error"]
    v1 = http.post(f"{base}/v1/models/model:predict", json={"instances": ["x"], "parameters": {"aggregation_strategy": "simple"}})
    assert v1.status_code == 400 and "token classification" in v1.json()["error"]


def test_concurrent_entity_and_id_requests_share_the_queue(url, http):
    """Entity windows (different strides at once: the tokenizer's truncation settings are shared state)
    and plain KServe requests batch together; each request gets the answer it gets alone."""
    bodies = [("/models/model", {"inputs": [LONG_TEXT, TEXTS[0]], "parameters": {"stride": 4}}),
              ("/v1/models/model:predict", {"instances": TEXTS}),
              ("/models/model", {"inputs": [LONG_TEXT], "parameters": {"stride": 12, "aggregation_strategy": "max"}}),
              ("/models/model", {"inputs": [TEXTS[1], LONG_TEXT]})]

    def key(answer):
        if isinstance(answer, dict):
            return answer
        return [[(e["entity_group"], e["start"], e["end"]) for e in row] for row in answer]

    alone = [key(http.post(url + path, json=body).json()) for path, body in bodies]

    async def together():
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            return await asyncio.gather(*(client.post(path, json=body) for _ in range(4) for path, body in bodies))

    for index, response in enumerate(asyncio.run(together())):
        assert response.status_code == 200, response.text
        assert key(response.json()) == alone[index % len(bodies)], f"request {index} differs from its answer alone"


def test_huggingface_hub_inference_client_reads_our_answers(url, http, monkeypatch):
    """The Inference API's own Python client, pointed at our route, parses the entities. Offline mode
    (HF_HUB_OFFLINE=1 in these tests) blocks every URL in huggingface_hub, local ones too, so it is lifted
    for this client only: it talks to 127.0.0.1 and nothing else."""
    from huggingface_hub import InferenceClient, constants

    monkeypatch.setattr(constants, "is_offline_mode", lambda: False)
    client = InferenceClient(model=f"{url}/models/model")
    found = client.token_classification(TEXTS[1], aggregation_strategy="first", ignore_labels=["MISC"])
    expected = hf(http, url, TEXTS[1], aggregation_strategy="first", ignore_labels=["MISC"])
    assert [(e.entity_group, e.word, e.start, e.end) for e in found] == \
        [(e["entity_group"], e["word"], e["start"], e["end"]) for e in expected]
