"""Consistency: V1 = V2, alone = in a batch, concurrent requests get their own answers, determinism."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from conformance import semantics
from conformance.checks import clause, json_body, level, needs_task, protocol
from conformance.target import infer_v2, new_request_id, predict_rows, predict_v1, v2_request

pytestmark = needs_task

CONCURRENT_REQUESTS = 8


@level("kserve")
@protocol("both")
@clause("KServe V1/V2 parity: the same texts give the same predictions over V1 and V2")
def test_v1_and_v2_give_same_predictions(client, target):
    """V1 predictions and V2 outputs agree text by text."""
    texts = target.texts(3)
    v1 = predict_v1(client, target, texts)
    _, v2 = infer_v2(client, target, texts)
    problems = semantics.compare_rows(target.task, target.mode, v1, v2)
    assert not problems, "V1 and V2 disagree:\n" + "\n".join(problems[:10])


@level("kserve")
@clause("Batch invariance: a text alone and inside a batch gets the same answer (token rows: the batched row "
        "is the alone row plus padding positions)")
@pytest.mark.parametrize("proto", ["v1", "v2"])
def test_text_alone_and_in_batch_agree(client, target, proto):
    """Each text of a batch gets the answer it gets when sent alone."""
    texts = target.texts(3)
    batched = predict_rows(client, target, texts, proto)
    alone = [predict_rows(client, target, [text], proto)[0] for text in texts]
    problems = semantics.compare_rows(target.task, target.mode, batched, alone, prefix_ok=True)
    assert not problems, "batched answers differ from single answers:\n" + "\n".join(problems[:10])


@level("kserve")
@protocol("v2")
@clause("OIP-REST §Inference Request id + isolation: concurrent requests each get their own answer and id")
def test_concurrent_requests_get_their_own_answers(client, target):
    """Concurrent V2 requests with different texts and ids each get their own id and answer."""
    texts = target.texts(CONCURRENT_REQUESTS)
    expected = {text: infer_v2(client, target, [text])[1][0] for text in dict.fromkeys(texts)}

    def one(index: int):
        request_id = new_request_id()
        response = client.post(target.v2_infer_path, json_body=v2_request([texts[index]], request_id))
        return index, request_id, response

    with ThreadPoolExecutor(max_workers=CONCURRENT_REQUESTS) as pool:
        results = list(pool.map(one, range(CONCURRENT_REQUESTS)))
    problems: list[str] = []
    for index, request_id, response in results:
        if response.status_code != 200:
            problems.append(f"request {index}: status {response.status_code}")
            continue
        body = json_body(response)
        if body.get("id") != request_id:
            problems.append(f"request {index}: sent id {request_id}, got {body.get('id')!r}")
        rows = semantics.v2_rows(target.task, target.mode, semantics.find_output(body), 1)
        diff = semantics.compare_rows(target.task, target.mode, rows, [expected[texts[index]]])
        if diff:
            problems.append(f"request {index} ({texts[index][:30]!r}): {diff[0]}")
    assert not problems, "concurrent answers mixed up:\n" + "\n".join(problems)


@level("kserve")
@protocol("v1")
@clause("Isolation (V1): concurrent V1 requests each get the answer for their own text")
def test_concurrent_v1_requests_get_their_own_answers(client, target):
    """Concurrent V1 requests with different texts each get their own answer."""
    texts = target.texts(CONCURRENT_REQUESTS)
    expected = {text: predict_v1(client, target, [text])[0] for text in dict.fromkeys(texts)}
    with ThreadPoolExecutor(max_workers=CONCURRENT_REQUESTS) as pool:
        results = list(pool.map(lambda text: client.post(target.v1_predict_path, json_body={"instances": [text]}), texts))
    problems: list[str] = []
    for index, response in enumerate(results):
        if response.status_code != 200:
            problems.append(f"request {index}: status {response.status_code}")
            continue
        rows = semantics.v1_rows(target.task, target.mode, json_body(response).get("predictions"), 1)
        diff = semantics.compare_rows(target.task, target.mode, rows, [expected[texts[index]]])
        if diff:
            problems.append(f"request {index} ({texts[index][:30]!r}): {diff[0]}")
    assert not problems, "concurrent answers mixed up:\n" + "\n".join(problems)


@level("kserve")
@clause("Determinism: repeating a request gives the same answer")
@pytest.mark.parametrize("proto", ["v1", "v2"])
def test_repeated_requests_are_deterministic(client, target, proto):
    """The same request three times gives three equal answers."""
    texts = target.texts(2)
    answers = [predict_rows(client, target, texts, proto) for _ in range(3)]
    for attempt in answers[1:]:
        problems = semantics.compare_rows(target.task, target.mode, attempt, answers[0])
        assert not problems, "answers differ between repeats:\n" + "\n".join(problems[:10])
