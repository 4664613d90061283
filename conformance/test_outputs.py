"""Outputs: golden expectation files (--expect) and differential checks against --reference-model."""

from __future__ import annotations

import pytest

from conformance import semantics
from conformance.checks import clause, json_body, level, needs_task
from conformance.golden import compare_case, select_cases
from conformance.target import infer_v2, predict_v1

pytestmark = needs_task


@level("kserve")
@clause("Golden cases (--expect): the endpoint answers each case of its model and mode as recorded")
@pytest.mark.parametrize("proto", ["v1", "v2"])
def test_outputs_match_golden_expectations(client, target, expectations, proto, pytestconfig):
    """Each golden case for this model and mode gets the recorded answer."""
    if expectations is None:
        pytest.skip("no --expect file")
    cases, why = select_cases(expectations, target.model_name, target.mode, target.task,
                              lower_case=not pytestconfig.getoption("--disable-lower-case"),
                              special_tokens=not pytestconfig.getoption("--disable-special-tokens"))
    if not cases:
        pytest.skip(why)
    problems: list[str] = []
    checked = 0
    for case in cases:
        if proto not in case.protocols():
            continue
        checked += 1
        if proto == "v1":
            rows = predict_v1(client, target, case.inputs)
            problems += compare_case(case, "v1", rows)
        else:
            response = client.post(target.v2_infer_path, json_body=target.v2_body(case.inputs))
            assert response.status_code == 200, f"case {case.id}: infer answered {response.status_code}"
            tensor = semantics.find_output(json_body(response))
            rows = semantics.v2_rows(case.task, case.mode, tensor, len(case.inputs))
            problems += compare_case(case, "v2", rows, tensor)
    if not checked:
        pytest.skip(f"no golden case for protocol {proto}")
    assert not problems, "golden mismatch:\n" + "\n".join(problems[:20])


@level("kserve")
@clause("Differential (--reference-model): outputs equal a local transformers run of the same model "
        "(batch tokenized together, padding, truncation; probabilities within 2e-3)")
@pytest.mark.parametrize("proto", ["v1", "v2"])
def test_outputs_match_reference_model(client, target, proto):
    """A batch of texts gets the same answer as the reference model computed locally."""
    if target.reference is None:
        pytest.skip("no --reference-model")
    texts = target.texts(3)
    rows = predict_v1(client, target, texts) if proto == "v1" else infer_v2(client, target, texts)[1]
    problems = semantics.compare_rows(target.task, target.mode, rows, target.reference.rows(texts, target.mode))
    assert not problems, "differs from the reference model:\n" + "\n".join(problems[:20])
