"""Differential: our predictor answers exactly like KServe's real Hugging Face runtime.

For every task x mode and each shared flag (tests/kserve_runtime/combos.py), the same V1 and V2 requests go
to both servers, on the same tiny model, and the whole JSON bodies must be equal: same keys, nesting, shapes,
datatypes, ids and strings; floats within the tolerance written in combos.py with its reason.
"""

from __future__ import annotations

from tests.kserve_runtime.combos import TEXTS, V2_DATATYPE_DIVERGENCE, tolerance
from tests.kserve_runtime.compare import differences

def both(http, pair, path: str, body: dict) -> tuple:
    answers = []
    for url in (pair.kserve, pair.ours):
        response = http.post(url + path, json=body)
        assert response.status_code == 200, f"{url}{path} answered {response.status_code}: {response.text[:300]}"
        answers.append(response.json())
    return tuple(answers)


def v2_body(texts: list[str], request_id: str) -> dict:
    return {"id": request_id, "inputs": [{"name": "text", "shape": [len(texts)], "datatype": "BYTES", "data": texts}]}


def test_v1_predict_equals_kserve_runtime(pair, http):
    combo = pair.combo
    for texts in TEXTS[combo.task]:
        kserve, ours = both(http, pair, "/v1/models/model:predict", {"instances": texts})
        problems = differences(ours, kserve, tolerance(combo))
        assert not problems, f"{combo.id}, {len(texts)} texts: ours differs from KServe's runtime: {problems}"


def without_datatype_divergence(task: str, kserve: dict) -> dict:
    """KServe's V2 answer with the one datatype we answer differently on purpose (combos.py) replaced,
    after checking the runtime still answers it."""
    if task not in V2_DATATYPE_DIVERGENCE:
        return kserve
    theirs, ours = V2_DATATYPE_DIVERGENCE[task]
    assert [o["datatype"] for o in kserve["outputs"]] == [theirs], kserve["outputs"][0]["datatype"]
    return {**kserve, "outputs": [{**o, "datatype": ours} for o in kserve["outputs"]]}


def test_v2_infer_equals_kserve_runtime(pair, http):
    combo = pair.combo
    for number, texts in enumerate(TEXTS[combo.task]):
        kserve, ours = both(http, pair, "/v2/models/model/infer", v2_body(texts, f"req-{number}"))
        kserve = without_datatype_divergence(combo.task, kserve)
        problems = differences(ours, kserve, tolerance(combo))
        assert not problems, f"{combo.id}, {len(texts)} texts: ours differs from KServe's runtime: {problems}"


def test_v1_bare_string_and_inputs_key_equal_kserve_runtime(pair, http):
    """KServe-runtime behaviour beyond the V1 protocol: a bare string is a batch of one; 'inputs' works."""
    combo = pair.combo
    text = TEXTS[combo.task][1][0]
    for body in ({"instances": text}, {"inputs": [text]}):
        kserve, ours = both(http, pair, "/v1/models/model:predict", body)
        assert not differences(ours, kserve, tolerance(combo)), f"{combo.id} {body}: {differences(ours, kserve, 1)}"
