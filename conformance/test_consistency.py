"""Consistency: V1 = V2, alone = in a batch, concurrent requests get their own answers, determinism."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from conformance import semantics
from conformance.checks import clause, json_body, level, needs_task, protocol
from conformance.target import infer_v2, new_request_id, predict_rows, predict_v1

pytestmark = needs_task

CONCURRENT_REQUESTS = 12  # at most 2**BATCH_SIZE
BATCH_SIZE = 4


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


def _answer(client, target, proto: str, texts: list[str], request_id: str | None = None):
    """(status, id, canonical rows or None) of one request, without raising (for threads)."""
    if proto == "v1":
        response = client.post(target.v1_predict_path, json_body={"instances": list(texts)})
    else:
        response = client.post(target.v2_infer_path, json_body=target.v2_body(list(texts), request_id))
    if response.status_code != 200:
        return response.status_code, None, None
    body = json_body(response)
    if proto == "v1":
        rows = semantics.v1_rows(target.task, target.mode, (body or {}).get("predictions"), len(texts))
    else:
        rows = semantics.v2_rows(target.task, target.mode, semantics.find_output(body), len(texts))
    return 200, (body or {}).get("id"), rows


def _distinct_batches(client, target, proto: str) -> list[list[str]]:
    """One batch per concurrent request, all of BATCH_SIZE texts, whose answers differ pairwise.

    Two texts a, b with different answers (found by asking the endpoint) are combined into the binary
    patterns of the request index, so every two requests differ in at least one text and any exchange of
    answers between them shows. A model that answers every text alike gets batches of different sizes.
    """
    pool = list(dict.fromkeys(target.texts(12)))
    alone = [predict_rows(client, target, [text], proto)[0] for text in pool]
    pair = next(((pool[i], pool[j]) for i in range(len(pool)) for j in range(i + 1, len(pool))
                 if semantics.compare_rows(target.task, target.mode, [alone[i]], [alone[j]])), None)
    if pair is None:
        return [[pool[0]] * (index + 1) for index in range(CONCURRENT_REQUESTS)]
    a, b = pair
    return [[a if (index >> bit) & 1 else b for bit in range(BATCH_SIZE)] for index in range(CONCURRENT_REQUESTS)]


def _check_concurrent(client, target, proto: str) -> None:
    batches = _distinct_batches(client, target, proto)
    expected = [predict_rows(client, target, batch, proto) for batch in batches]  # one at a time
    for i in range(len(batches)):
        for j in range(i):
            if not semantics.compare_rows(target.task, target.mode, expected[i], expected[j]):
                pytest.fail(f"cannot tell requests {i} and {j} apart: their batches get the same answer "
                            f"({batches[i]} / {batches[j]})", pytrace=False)
    ids = [new_request_id() if proto == "v2" else None for _ in batches]
    barrier = threading.Barrier(len(batches))

    def one(index: int):
        barrier.wait(timeout=30)
        return _answer(client, target, proto, batches[index], ids[index])

    with ThreadPoolExecutor(max_workers=len(batches)) as pool:
        results = list(pool.map(one, range(len(batches))))
    problems: list[str] = []
    for index, (status, answer_id, rows) in enumerate(results):
        if status != 200:
            problems.append(f"request {index}: status {status}")
            continue
        if proto == "v2" and answer_id != ids[index]:
            problems.append(f"request {index}: sent id {ids[index]}, got {answer_id!r}")
        diff = semantics.compare_rows(target.task, target.mode, rows, expected[index])
        if diff:
            problems.append(f"request {index}: not the answer it gets when sent on its own: {diff[0]}")
    assert not problems, f"{len(batches)} concurrent answers mixed up:\n" + "\n".join(problems)


@level("kserve")
@protocol("v2")
@clause("OIP-REST §Inference Request id + isolation: concurrent requests each get their own answer and id")
def test_concurrent_requests_get_their_own_answers(client, target):
    """Concurrent V2 requests whose answers all differ each get their own id and answer."""
    _check_concurrent(client, target, "v2")


@level("kserve")
@protocol("v1")
@clause("Isolation (V1): concurrent V1 requests each get the answer for their own texts")
def test_concurrent_v1_requests_get_their_own_answers(client, target):
    """Concurrent V1 requests whose answers all differ each get their own answer."""
    _check_concurrent(client, target, "v1")


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
