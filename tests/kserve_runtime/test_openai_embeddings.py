"""Differential on the OpenAI routes: `/openai/v1/embeddings` and `/openai/v1/models` answer like KServe's real
runtime on the same headless tiny BertModel, whole bodies compared; what differs on purpose is named here.

Divergences (each asserted of the real runtime below, so the list stays true):
- `id` and `created` are per answer (a uuid, a clock): compared by type only.
- the top-level `object`: KServe's runtime says "embedding", OpenAI's API (and ours) "list".
- KServe's runtime fails where ours answers: without `encoding_format` (500 "'EmbeddingRequest' object has no
  attribute 'encoding_format'"; the openai client always sends one), token ids (500; ours a 400 naming `input`),
  an unknown model (404 as `{"error": "..."}`, ours in OpenAI's error shape).
"""

from __future__ import annotations

import base64

import httpx
import numpy as np
import pytest

from tests.kserve_runtime.combos import COMBOS as ALL_COMBOS, TEXTS, tolerance
from tests.kserve_runtime.compare import differences

COMBOS = [c for c in ALL_COMBOS if c.task == "text_embedding"][:1]  # the inferred task; KServe gets --task
openai = pytest.importorskip("openai")


def post(url: str, body: dict) -> httpx.Response:
    # A fresh connection per request: after an error answer the runtime closes a kept-alive connection.
    return httpx.post(f"{url}/openai/v1/embeddings", json=body, timeout=60)


def comparable(answer: dict, top_object: str | None = None) -> dict:
    """The answer without its per-answer `id` and `created` (checked for type), `object` as given."""
    assert isinstance(answer.pop("id"), str) and isinstance(answer.pop("created"), int)
    if top_object is not None:
        answer["object"] = top_object
    return answer


@pytest.mark.parametrize("encoding", ["float", "base64"])
def test_embeddings_equal_kserve_runtime(pair, encoding):
    for texts in TEXTS["text_embedding"]:
        body = {"model": "model", "input": texts if len(texts) > 1 else texts[0], "encoding_format": encoding}
        kserve, ours = post(pair.kserve, body), post(pair.ours, body)
        assert kserve.status_code == 200 and ours.status_code == 200, (kserve.text[:300], ours.text[:300])
        theirs = kserve.json()
        assert theirs["object"] == "embedding"  # the divergence named above
        theirs, mine = comparable(theirs, "list"), comparable(ours.json())
        if encoding == "base64":  # decoded: the float32 values may differ in their last bits
            for answer in (theirs, mine):
                for item in answer["data"]:
                    item["embedding"] = np.frombuffer(base64.b64decode(item["embedding"]), dtype="<f4").tolist()
        problems = differences(mine, theirs, tolerance(pair.combo))
        assert not problems, f"{encoding}, {len(texts)} texts: ours differs from KServe's runtime: {problems}"


def test_models_equal_kserve_runtime(pair):
    answers = [httpx.get(f"{url}/openai/v1/models", timeout=60).json() for url in (pair.kserve, pair.ours)]
    for answer in answers:
        assert isinstance(answer["data"][0].pop("created"), int)
    assert answers[0] == answers[1] == {"object": "list", "data": [{"object": "model", "id": "model", "owned_by": ""}]}


def test_the_openai_client_gets_the_same_vectors_from_both(pair):
    texts = TEXTS["text_embedding"][0]
    vectors = []
    for url in (pair.kserve, pair.ours):
        client = openai.OpenAI(base_url=f"{url}/openai/v1", api_key="x", max_retries=0)
        vectors.append(np.asarray([d.embedding for d in client.embeddings.create(model="model", input=texts).data]))
    assert vectors[0].shape == vectors[1].shape == (len(texts), 32)
    assert np.abs(vectors[0] - vectors[1]).max() <= tolerance(pair.combo)


@pytest.mark.parametrize(("body", "kserve_status", "our_status"), [
    ({"model": "model", "input": "hello"}, 500, 200),
    ({"model": "model", "input": [[101, 102]], "encoding_format": "float"}, 500, 400),
    ({"model": "other", "input": "hello", "encoding_format": "float"}, 404, 404),
], ids=["no-encoding-format", "token-ids", "unknown-model"])
def test_where_kserve_runtime_fails_ours_answers(pair, body, kserve_status, our_status):
    kserve, ours = post(pair.kserve, body), post(pair.ours, body)
    assert kserve.status_code == kserve_status, kserve.text[:300]
    assert ours.status_code == our_status, ours.text[:300]
    if our_status >= 400:
        assert set(ours.json()["error"]) == {"message", "type", "param", "code"}
    if body["model"] == "other":
        assert isinstance(kserve.json()["error"], str)  # not OpenAI's shape
