"""Every task and mode, V1 and V2: the served answer equals the same model run directly in
transformers and shaped as KServe's Hugging Face runtime shapes it."""

from __future__ import annotations

import pytest

from tests.serving.compare import as_json, close, flatten, parse_bytes_element, shape_of
from tests.serving.conftest import v1, v2
from tests.serving.reference import KServeReference

TEXTS = {
    "token_classification": ["My name is Wolfgang and I live in Berlin", "My name is Lisa and I live in Paris",
                             "Hello", "EU rejects German call to boycott British lamb ."],
    "sequence_classification": ["Hello, my dog is cute", "I am feeling sad", "a much longer text about "
                                "the capital of France and the river that runs through the city of Paris"],
    "fill_mask": ["The capital of France is [MASK].", "The capital of [MASK] is paris.", "[MASK]"],
}
MODES = {"default": (), "probabilities": ("--return_probabilities",), "logits": ("--return_raw_logits",)}
TOLERANCE = {"default": 0.0, "probabilities": 1.01e-4, "logits": 1e-4}


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
def test_v1_predictions_equal_the_reference(server, http, references, task, mode):
    url = server(task, *MODES[mode])
    texts = TEXTS[task]
    expected = as_json(references(task).predict(texts, mode))
    got = v1(http, url, texts)
    assert close(got, expected, TOLERANCE[mode]), f"{task}/{mode}: served {got!r:.300} expected {expected!r:.300}"


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("task", list(TEXTS))
def test_v2_output_equals_the_reference(server, http, references, task, mode):
    url = server(task, *MODES[mode])
    texts = TEXTS[task]
    if task == "fill_mask" and mode != "default":
        texts = texts[:2]  # one mask each: V2 needs a regular [B, M, V] tensor
    expected = references(task).predict(texts, mode)
    answer = v2(http, url, texts, id="req-7")
    assert answer["id"] == "req-7" and answer["model_name"] == "model"
    assert answer["model_version"] is None and answer["parameters"] is None
    (output,) = answer["outputs"]
    assert output["name"] == "output-0"
    assert output["shape"] == shape_of(expected)
    if task == "fill_mask" and mode == "default":
        assert output["datatype"] == "BYTES"
        got = output["data"]  # decoded tokens, plain strings
    elif mode != "default":
        assert output["datatype"] == "BYTES"
        got = [parse_bytes_element(e) for e in output["data"]]  # KServe's str(dict)
    else:
        assert output["datatype"] == "INT64"
        got = output["data"]
    assert close(got, flatten(expected), TOLERANCE[mode])


def test_token_ids_cover_special_and_padding_positions(server, http, tiny_models):
    """KServe returns S ids per text, S = the request's longest, [CLS]/[SEP]/[PAD] included."""
    url = server("token_classification")
    texts = ["My name is Lisa and I live in Paris", "Hello"]
    reference = KServeReference(tiny_models("token_classification"), "token_classification")
    width = reference.encode(texts)["input_ids"].shape[1]
    rows = v1(http, url, texts)
    assert [len(row[0]) for row in rows] == [width, width]


def test_a_text_alone_and_in_a_batch_gets_the_same_answer(server, http):
    url = server("token_classification")
    texts = TEXTS["token_classification"]
    together = v1(http, url, texts)
    longest = len(together[0][0])
    for text, row in zip(texts, together):
        alone = v1(http, url, [text])[0][0]
        assert row[0][: len(alone)] == alone
        assert len(row[0]) == longest


def test_disable_special_tokens_and_max_length(server, http, tiny_models):
    url = server("token_classification", "--disable_special_tokens", "--max_length", "6")
    texts = ["My name is Wolfgang and I live in Berlin", "Hello"]
    reference = KServeReference(tiny_models("token_classification"), "token_classification",
                                add_special_tokens=False, max_length=6)
    assert v1(http, url, texts) == reference.predict(texts)
    assert len(v1(http, url, texts)[0][0]) == 6


def test_lowercasing_is_on_by_default_and_can_be_disabled(server, http, tiny_models):
    texts = ["My name is Wolfgang and I live in Berlin"]
    cased_dir = tiny_models("token_classification", cased=True)
    lowered = KServeReference(cased_dir, "token_classification", lower_case=True).predict(texts)
    kept = KServeReference(cased_dir, "token_classification", lower_case=False).predict(texts)
    assert v1(http, server("token_classification", cased=True), texts) == lowered
    assert v1(http, server("token_classification", "--disable_lower_case", cased=True), texts) == kept


def test_all_three_raw_logit_spellings_return_logits(server, http):
    texts = ["Hello, my dog is cute"]
    answers = [v1(http, server("sequence_classification", flag), texts)
               for flag in ("--return_raw_logits", "--return_logits", "--disable_postprocess")]
    assert isinstance(answers[0][0], dict)
    assert answers[0] == answers[1] == answers[2]


def test_offsets_mapping_is_a_second_v2_output(server, http, tiny_models):
    url = server("token_classification", "--return_offsets_mapping")
    texts = ["My name is Lisa", "Hello"]
    answer = v2(http, url, texts)
    names = [o["name"] for o in answer["outputs"]]
    assert names == ["output-0", "offset_mapping"]
    offsets = answer["outputs"][1]
    reference = KServeReference(tiny_models("token_classification"), "token_classification")
    encoded = reference.tokenizer(texts, padding=True, return_offsets_mapping=True)
    expected = [v for row in encoded["offset_mapping"] for pair in row for v in pair]
    assert offsets["datatype"] == "INT64" and offsets["shape"] == [2, len(encoded["input_ids"][0]), 2]
    assert offsets["data"] == expected
    # asking for one output by name returns only that one
    only = v2(http, url, texts, outputs=[{"name": "offset_mapping"}])
    assert [o["name"] for o in only["outputs"]] == ["offset_mapping"]


def test_offsets_mapping_on_v1_is_an_outputs_tensor_beside_predictions(server, http, tiny_models):
    """KServe's runtime answers V1 with offsets as {"predictions": [...], "outputs": [offset_mapping tensor]}."""
    url = server("token_classification", "--return_offsets_mapping")
    texts = ["My name is Lisa", "Hello"]
    answer = http.post(f"{url}/v1/models/model:predict", json={"instances": texts}).json()
    assert sorted(answer) == ["outputs", "predictions"]
    reference = KServeReference(tiny_models("token_classification"), "token_classification")
    encoded = reference.tokenizer(texts, padding=True, return_offsets_mapping=True)
    (offsets,) = answer["outputs"]
    assert offsets == {"name": "offset_mapping", "datatype": "INT64", "shape": [2, len(encoded["input_ids"][0]), 2],
                       "data": [v for row in encoded["offset_mapping"] for pair in row for v in pair]}


def test_model_metadata_describes_real_tensors(server, http):
    url = server("token_classification")
    meta = http.get(f"{url}/v2/models/model").json()
    assert meta["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    assert meta["outputs"][0] == {"name": "output-0", "datatype": "INT64", "shape": [-1, 1, -1]}
    assert meta["parameters"]["labels"]["3"] == "B-ORG"


def test_bfloat16_on_cpu_serves_and_agrees_with_a_bfloat16_reference(server, http, tiny_models):
    import torch

    url = server("sequence_classification", "--dtype", "bfloat16")
    texts = TEXTS["sequence_classification"]
    reference = KServeReference(tiny_models("sequence_classification"), "sequence_classification", dtype=torch.bfloat16)
    assert v1(http, url, texts) == reference.predict(texts)
