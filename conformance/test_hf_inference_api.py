"""Entities: the Hugging Face Inference API's token-classification route `POST /models/{name}`, and the
same entities on the KServe routes when a request carries `parameters.aggregation_strategy`.

Checked on token-classification targets whose endpoint serves the route (the built-in predictor does;
KServe's runtime does not, and these checks skip there). What is checked holds for any model: the
answer's schema, offsets that slice back to `word`, scores in [0, 1], and the strategies agreeing with
each other (with nothing ignored, every strategy covers the same tokens; grouped entities start and end
on token boundaries). See docs/entities.md.
"""

from __future__ import annotations

import json
import math

import pytest

from conformance.checks import clause, expect_client_error, expect_still_healthy, json_body, level
from conformance.profiles import known_divergence

STRATEGIES = ("none", "simple", "first", "average", "max")
TOKEN_KEYS = ["entity", "score", "index", "word", "start", "end"]
GROUP_KEYS = ["entity_group", "score", "word", "start", "end"]
HF_SPEC = "HF Inference API §Token Classification (huggingface.js tasks token-classification spec)"
# Longer than a 512-token model's window: entities past the cut need stride windows.
LONG_TEXT = " ".join(["John Carter works for Atlas Motors in Berlin, and Lisa Moreau lives in New York."] * 50)


def hf_path(target) -> str:
    return f"/models/{target.model_name}"


def _is_workbench(client) -> bool:
    """The endpoint is the built-in predictor (server metadata name), which serves the route for token classification."""
    try:
        response = client.get("/v2")
        return response.status_code == 200 and (json_body(response) or {}).get("name") == "workbench"
    except Exception:  # noqa: BLE001 - a V1-only endpoint may not answer /v2 at all
        return False


@pytest.fixture
def hf_target(client, target, profile):
    """The target, when it serves entities for token classification on POST /models/{name}.

    The route is promised under the strict profile and by the built-in predictor: there a 404 fails every
    entity check. The checks skip only where the profile knows the server lacks the route."""
    if target.task is not None and target.task != "token_classification":
        pytest.skip("entities are a token classification route")
    served = target.extra.get("hf_route")
    if served is None:
        response = client.post(hf_path(target), json_body={"inputs": target.texts(1)[0]})
        if response.status_code == 200:
            served = (True, "")
        elif response.status_code in (404, 405) and "does not exist" not in response.text:
            reason = known_divergence(profile, "hf-entity-route", response)
            if reason is not None and not _is_workbench(client):
                served = (False, f"known divergence [{profile}] hf-entity-route: {reason}")
            else:
                served = (True, "")  # promised here: the checks below fail with the status
        elif response.status_code == 400 and "token classification" in response.text:
            served = (False, "the model is not a token classification model")
        else:
            served = (True, "")  # the checks below report what is wrong
        target.extra["hf_route"] = served
    if not served[0]:
        pytest.skip(served[1])
    return target


def entities(client, target, inputs, **parameters):
    body = {"inputs": inputs}
    if parameters:
        body["parameters"] = parameters
    response = client.post(hf_path(target), json_body=body)
    assert response.status_code == 200, f"POST {hf_path(target)} answered {response.status_code}: {response.text[:300]}"
    return response.json()


def check_entity_list(text: str, found, strategy: str) -> None:
    """Schema, offsets and scores of one text's entities."""
    assert isinstance(found, list), f"expected a list of entities, got {type(found).__name__}: {str(found)[:200]}"
    keys = TOKEN_KEYS if strategy == "none" else GROUP_KEYS
    for entity in found:
        assert isinstance(entity, dict) and sorted(entity) == sorted(keys), \
            f"{strategy}: an entity has keys {sorted(entity) if isinstance(entity, dict) else entity}, expected {keys}"
        label = entity["entity" if strategy == "none" else "entity_group"]
        assert isinstance(label, str) and label, f"label must be a non-empty name, got {label!r}"
        assert isinstance(entity["word"], str)
        score = entity["score"]
        assert isinstance(score, (int, float)) and not isinstance(score, bool) and 0.0 <= score <= 1.0, \
            f"score {score!r} is not a number in [0, 1]"
        start, end = entity["start"], entity["end"]
        assert isinstance(start, int) and isinstance(end, int) and 0 <= start <= end <= len(text), \
            f"start/end {start!r}/{end!r} are not character offsets into a {len(text)}-character text"
        assert text[start:end] == entity["word"], \
            f"text[{start}:{end}] is {text[start:end]!r} but word is {entity['word']!r}"
        if strategy == "none":
            assert isinstance(entity["index"], int) and entity["index"] >= 0


@level("workbench")
@clause(f"{HF_SPEC}: one text -> a list of {{entity_group, score, word, start, end}}; a list of texts -> a list "
        "of lists; 'none' -> {entity, score, index, word, start, end} per token; scores in [0, 1]")
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_entity_schema_for_every_strategy(client, hf_target, strategy):
    """Every strategy answers the Inference API's entity schema, for one text and for a list."""
    texts = hf_target.texts(3)
    one = entities(client, hf_target, texts[0], aggregation_strategy=strategy, ignore_labels=[])
    check_entity_list(texts[0], one, strategy)
    many = entities(client, hf_target, texts, aggregation_strategy=strategy, ignore_labels=[])
    assert isinstance(many, list) and len(many) == len(texts), "a list of texts answers one entity list per text"
    for text, found in zip(texts, many):
        check_entity_list(text, found, strategy)
    assert [(e["start"], e["end"]) for e in many[0]] == [(e["start"], e["end"]) for e in one], \
        "the same text answers the same entities alone or in a list"


@level("workbench")
@clause(f"{HF_SPEC}: start/end are character offsets into the input text, so text[start:end] is the entity "
        "(transformers TokenClassificationPipeline docs: 'to highlight words in the original text')")
def test_offsets_slice_back_to_word_with_mixed_case_and_punctuation(client, hf_target):
    """Offsets index the original text, capitals and punctuation included, whatever the server's lowercasing."""
    text = "Dr. ANNA Weber-Smith visited São Paulo, Brazil; then NEW YORK."
    for strategy in STRATEGIES:
        check_entity_list(text, entities(client, hf_target, text, aggregation_strategy=strategy, ignore_labels=[]),
                          strategy)


@level("workbench")
@clause(f"{HF_SPEC} aggregation_strategy: simple/first/average/max group the tokens 'none' labels; with "
        "ignore_labels=[] every token belongs to exactly one group, groups start and end on token boundaries")
def test_strategies_are_consistent_with_each_other(client, hf_target):
    """With nothing ignored, every strategy covers the same characters as the per-token answer, and grouped
    entities are ordered, disjoint, and made of whole tokens."""
    for text in hf_target.texts(3):
        tokens = entities(client, hf_target, text, aggregation_strategy="none", ignore_labels=[])
        assert [t["index"] for t in tokens] == sorted({t["index"] for t in tokens}), "token indices increase"
        starts, ends = {t["start"] for t in tokens}, {t["end"] for t in tokens}
        covered = {i for t in tokens for i in range(t["start"], t["end"])}
        for strategy in STRATEGIES[1:]:
            groups = entities(client, hf_target, text, aggregation_strategy=strategy, ignore_labels=[])
            assert 0 < len(groups) <= len(tokens) or not tokens, f"{strategy}: {len(groups)} groups for {len(tokens)} tokens"
            previous_end = 0
            for group in groups:
                assert group["start"] >= previous_end, f"{strategy}: entities overlap or are out of order: {groups}"
                assert group["start"] in starts and group["end"] in ends, \
                    f"{strategy}: {group} does not start and end on token boundaries"
                previous_end = group["end"]
            grouped = {i for g in groups for i in range(g["start"], g["end"])}
            assert covered <= grouped, f"{strategy}: tokens missing from the groups"


@level("workbench")
@clause(f"{HF_SPEC} ignore_labels: entities with an ignored label are left out (default ['O'])")
def test_ignore_labels_filters_entities(client, hf_target):
    """Ignoring the labels found removes exactly those entities."""
    text = hf_target.texts(1)[0]
    everything = entities(client, hf_target, text, aggregation_strategy="none", ignore_labels=[])
    labels = sorted({t["entity"] for t in everything})
    if not labels:
        pytest.skip("no tokens to label")
    dropped = labels[0]
    kept = entities(client, hf_target, text, aggregation_strategy="none", ignore_labels=[dropped])
    assert [t["index"] for t in kept] == [t["index"] for t in everything if t["entity"] != dropped]
    assert entities(client, hf_target, text, aggregation_strategy="none", ignore_labels=labels) == []


@level("workbench")
@clause(f"{HF_SPEC} stride: a text longer than the model's window is split into overlapping windows and "
        "merged (transformers TokenClassificationPipeline `stride`), not cut off")
def test_stride_reads_a_long_text_to_its_end(client, hf_target):
    """With stride, a text of ~1000 tokens gets ordered, disjoint entities with offsets into the whole text, and
    (with --reference-model) the entities the transformers pipeline gives with the same stride."""
    found = entities(client, hf_target, LONG_TEXT, aggregation_strategy="simple", ignore_labels=[], stride=16)
    check_entity_list(LONG_TEXT, found, "simple")
    assert all(a["end"] <= b["start"] for a, b in zip(found, found[1:])), "merged windows overlap"
    assert found, "no entities for a long text with nothing ignored"
    # Which entities survive the merge of overlapping windows depends on the model (the pipeline keeps the
    # longer of two overlapping entities: a model that labels everything alike loses whole windows), so
    # the entities themselves are compared with the transformers pipeline on the reference model.
    if hf_target.reference is None:
        return
    expected = reference_entities(hf_target.reference, LONG_TEXT, aggregation_strategy="simple",
                                  ignore_labels=[], stride=16)
    got = [(e["entity_group"], e["start"], e["end"]) for e in found]
    want = [(e["entity_group"], e["start"], e["end"]) for e in expected]
    if got != want:
        first = next(i for i in range(max(len(got), len(want))) if got[i:i + 1] != want[i:i + 1])
        pytest.fail(f"differs from the transformers pipeline (stride=16) at entity {first}: got "
                    f"{got[first:first + 2]}, expected {want[first:first + 2]} ({len(got)} vs {len(want)} entities; "
                    f"last ends at {got[-1][2] if got else 0} vs {want[-1][2] if want else 0} of {len(LONG_TEXT)})",
                    pytrace=False)


def reference_entities(reference, text: str, **parameters) -> list[dict]:
    """The transformers token-classification pipeline's answer with the reference model."""
    from transformers import pipeline

    tokenizer = reference.tokenizer  # loads the reference model too
    classifier = pipeline("token-classification", model=reference._network, tokenizer=tokenizer, device="cpu")
    return classifier(text, **parameters)


@level("workbench")
@clause("workbench entities on KServe routes: V1 parameters.aggregation_strategy -> predictions are entity lists; "
        "V2 -> output-0 BYTES [B], one JSON entity list per text, parameters.content_type application/json")
@pytest.mark.parametrize("proto", ["v1", "v2"])
def test_kserve_routes_answer_the_same_entities(client, hf_target, proto):
    """The KServe routes, asked for entities, answer what POST /models/{name} answers."""
    texts = hf_target.texts(2)
    parameters = {"aggregation_strategy": "first", "ignore_labels": []}
    expected = entities(client, hf_target, texts, **parameters)
    if proto == "v1":
        response = client.post(hf_target.v1_predict_path, json_body={"instances": texts, "parameters": parameters})
        assert response.status_code == 200, response.text[:300]
        got = response.json()["predictions"]
    else:
        body = {"inputs": [{"name": "text", "shape": [len(texts)], "datatype": "BYTES", "data": texts}],
                "parameters": parameters}
        response = client.post(hf_target.v2_infer_path, json_body=body)
        assert response.status_code == 200, response.text[:300]
        (output,) = response.json()["outputs"]
        assert output["datatype"] == "BYTES" and output["shape"] == [len(texts)], output
        assert (output.get("parameters") or {}).get("content_type") == "application/json", output.get("parameters")
        got = [json.loads(element) for element in output["data"]]
    assert len(got) == len(expected)
    for text, ours, theirs in zip(texts, got, expected):
        check_entity_list(text, ours, "first")
        assert [(e["entity_group"], e["start"], e["end"]) for e in ours] == \
            [(e["entity_group"], e["start"], e["end"]) for e in theirs]
        assert all(math.isclose(a["score"], b["score"], abs_tol=1e-4) for a, b in zip(ours, theirs))


@level("workbench")
@clause(f"{HF_SPEC}: a bad parameter is a client error, HTTP 400 with {{\"error\": str}}")
@pytest.mark.parametrize("parameters", [{"aggregation_strategy": "no-such-strategy"}, {"ignore_labels": "O"},
                                        {"stride": "eight"}, {"aggregation_strategy": "none", "stride": 4}],
                         ids=["unknown-strategy", "ignore-labels-not-a-list", "stride-not-an-int", "stride-without-aggregation"])
def test_bad_parameters_are_400_with_error(client, hf_target, profile, parameters):
    """Unknown strategies and badly typed parameters get 400 {"error"}; the endpoint keeps serving."""
    response = client.post(hf_path(hf_target), json_body={"inputs": hf_target.texts(1)[0], "parameters": parameters})
    expect_client_error(response, profile=profile, divergence="hf-bad-parameters", what=f"parameters {parameters}")
    expect_still_healthy(client, hf_target)


@level("workbench")
@clause(f"{HF_SPEC}: an unknown model -> 404 with {{\"error\": str}}")
def test_unknown_model_is_404(client, hf_target, profile):
    """POST /models/{name} for a model the endpoint does not serve gets 404 {"error"}."""
    response = client.post("/models/no-such-model-conformance", json_body={"inputs": "Hello"})
    expect_client_error(response, profile=profile, divergence="hf-unknown-model", what="unknown model",
                        allowed=(404,))
